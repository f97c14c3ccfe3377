"""The stratifier: a fold per patient that balances many count dimensions at once.

A greedy pass places patients, rarest dimension first, each in the fold whose deficit it fills
best; then single-patient moves and pairwise swaps lower the weighted squared deviation of every
fold's totals from its share. Pure numpy; curation/split.py builds the count vectors.
"""

from __future__ import annotations

import numpy as np

SIZE_WEIGHT = 32.0  # how much more equal images per fold weigh than one label's balance
HEADCOUNT_WEIGHT = 8.0  # the same for equal patients per fold
PATIENT_WEIGHT = 0.5  # how much balance over patients weighs beside balance over images
LD_EXPONENT = 4.0  # (S/N)**4/S**2 = (S/N**2)**2, the squared LD sensitivity (dim_weights)
RARE_WEIGHT = 0.01  # how much a rare label's relative spread weighs beside LD
MAX_PASSES = 12  # improvement passes, fewer for large collections (PASS_BUDGET)
PASS_BUDGET = 60_000  # patient visits over all passes: keeps 50,000 patients near 5 s
SWAP_CANDIDATES = 48  # partners tried per patient in a swap pass
SAME_SIZE_SHARE = 0.5  # of them with as many images (swaps that keep fold sizes)


def dim_weights(counts: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Weights of each dimension's squared deviation, chosen so that their sum tracks LD.

    A share dimension d (a label's images, say) deviates by U = p - P*s/S in a fold of s of
    the S images; then p/n - P/N = S*U/(n*N) ~ k*S*U/N**2, so d weighs (S/N_d**2)**2 (N_d
    floored at a tenth of S, for labels nearly everyone has), plus RARE_WEIGHT/T_d**2 so that
    rare labels still reach every fold. The count dimensions 0 and 1 (images and patients per
    fold) weigh SIZE_WEIGHT and HEADCOUNT_WEIGHT times their relative deviation from S/k.
    """
    totals = counts.sum(axis=0)
    whole = np.where(base >= 0, totals[np.maximum(base, 0)], totals)
    negatives = np.maximum(whole - totals, np.maximum(whole / 10.0, 1.0))
    weights = (whole / negatives) ** LD_EXPONENT / np.maximum(whole, 1.0) ** 2
    weights += RARE_WEIGHT / np.maximum(totals, 1.0) ** 2
    count_dims = base < 0
    weights[count_dims] = 1.0 / np.maximum(totals[count_dims], 1.0) ** 2
    weights[:2] *= (SIZE_WEIGHT, HEADCOUNT_WEIGHT)[: len(weights)]
    weights[base > 0] *= PATIENT_WEIGHT
    weights[totals == 0] = 0.0
    return weights


def stratify(
    counts: np.ndarray, folds: int, seed: int, fixed: np.ndarray | None = None,
    weights: np.ndarray | None = None, base: np.ndarray | None = None,
) -> np.ndarray:
    """A fold per patient (a row of counts); rows with fixed >= 0 keep that fold.

    A dimension with base[d] = b >= 0 is balanced as a share of dimension b (its deviation in a
    fold is its count minus its overall share of that fold's b), one with base -1 as a count
    (deviation from 1/k of the whole). Minimises sum over d, f of weights[d] * dev[f, d]**2:
    greedily, patients of the rarest dimension first, then by moves and swaps (`improve`).
    Column 0 is each patient's image count and column 1 its patient count (1), as
    curation.split.patient_table builds them.
    """
    n, d = counts.shape
    rng = np.random.default_rng(seed)
    fixed = np.full(n, -1) if fixed is None else np.asarray(fixed)
    base = np.full(d, -1) if base is None else np.asarray(base)
    weights = dim_weights(counts, base) if weights is None else weights
    totals = counts.sum(axis=0)
    share = base >= 0
    values = counts.copy()
    prevalence = totals[share] / np.maximum(totals[base[share]], 1.0)
    values[:, share] -= counts[:, base[share]] * prevalence
    target = np.where(share, 0.0, totals / folds)
    perm = rng.permutation(folds)  # ties between equal folds go to a seeded order
    slot = np.argsort(perm)[np.maximum(fixed, 0)]
    where = np.where(fixed >= 0, slot, -1)
    deviation = np.tile(-target, (folds, 1))
    for f in range(folds):
        deviation[f] += values[where == f].sum(axis=0)
    wv2 = 2.0 * values * weights
    free = np.flatnonzero(where < 0)
    present = (counts > 0) & share
    rarity = np.where(present, present.sum(axis=0), n + 1).min(axis=1, initial=n + 1)
    order = free[np.lexsort((rng.random(len(free)), -counts[free, 0], rarity[free]))]
    for p in order:
        f = int(np.argmin(deviation @ wv2[p]))
        deviation[f] += values[p]
        where[p] = f
    improve(values, weights, deviation, where, free, rng)
    return perm[where]


def improve(
    values: np.ndarray, weights: np.ndarray, deviation: np.ndarray, where: np.ndarray,
    free: np.ndarray, rng: np.random.Generator,
) -> None:
    """Lower the weighted squared deviation by moving single free patients, then by swapping
    pairs of free patients between folds (SWAP_CANDIDATES tried for each); in place."""
    wv2 = 2.0 * values * weights
    own = (wv2 * values).sum(axis=1)  # the cost a patient adds to any fold by itself
    tolerance = 1e-12 * own
    n_free = len(free)
    for _ in range(min(MAX_PASSES, max(1, PASS_BUDGET // max(n_free, 1)))):
        changes = 0
        gains = wv2[free] @ deviation.T
        gains -= gains[np.arange(n_free), where[free]][:, None] - own[free][:, None]
        hopeful = free[(gains < -tolerance[free][:, None]).any(axis=1)]
        for p in hopeful[rng.permutation(len(hopeful))].tolist():
            gain = deviation @ wv2[p]
            a = where[p]
            delta = gain - gain[a] + own[p]
            delta[a] = 0.0
            b = int(delta.argmin())
            if delta[b] < -tolerance[p]:
                deviation[a] -= values[p]
                deviation[b] += values[p]
                where[p] = b
                changes += 1
        if n_free > 1:
            visit = free[rng.permutation(n_free)]
            partners = swap_partners(values[:, 0], free, visit, rng)
            for p, q in zip(visit.tolist(), partners, strict=True):
                a, b = where[p], where[q]
                step = values[p] - values[q]
                delta = ((weights * step) * (deviation[b] - deviation[a] + step)).sum(axis=1)
                delta[b == a] = 0.0
                best = int(delta.argmin())
                if delta[best] < -tolerance[p]:
                    deviation[a] -= step[best]
                    deviation[b[best]] += step[best]
                    where[p], where[q[best]] = b[best], a
                    changes += 1
        if not changes:
            break


def swap_partners(
    images: np.ndarray, free: np.ndarray, visit: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """(len(visit), SWAP_CANDIDATES) free patients to try swapping with each visited one:
    SAME_SIZE_SHARE of them with as many images (a swap that keeps fold sizes), the rest any."""
    by_size = free[np.argsort(images[free], kind="stable")]
    sizes = images[by_size]
    low = np.searchsorted(sizes, images[visit], side="left")
    high = np.searchsorted(sizes, images[visit], side="right")
    same = int(SWAP_CANDIDATES * SAME_SIZE_SHARE)
    pick = low[:, None] + (rng.random((len(visit), same)) * (high - low)[:, None]).astype(np.int64)
    anyone = rng.integers(0, len(free), (len(visit), SWAP_CANDIDATES - same))
    return np.concatenate([by_size[pick], free[anyone]], axis=1)
