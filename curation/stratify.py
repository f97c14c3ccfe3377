"""The stratifier: a fold per patient that balances many count dimensions at once.

A greedy pass places patients, rarest dimension first, each in the fold whose deficit it fills
best; single-patient moves and pairwise swaps then lower the weighted squared deviation of every
fold's totals from its share; a last polish makes moves and swaps that lower LD itself (Sechidis
et al. 2011) with the squared deviation as a penalty: moves of the patients some move helps
(`movable`), swaps with random partners and with similar ones (curation/refine.py). New patients
beside fixed ones (a grown collection) are placed against the whole collection's targets: several
seeded tries, each polished to convergence with a lighter penalty and a lighter weight on LD over
patients, the one with the lowest polish objective kept. When the free patients are few (a small
collection, or a small addition), an exact descent over pairs of them with seeded restarts
follows, full split or not. Pure numpy;
curation/split.py builds the count vectors.
"""

from __future__ import annotations

import numpy as np

from curation.refine import ld_gaps, pair_descent, similar_classes, similar_partners

SIZE_WEIGHT = 32.0  # how much more equal images per fold weigh than one label's balance
HEADCOUNT_WEIGHT = 8.0  # the same for equal patients per fold
PATIENT_WEIGHT = 0.5  # how much balance over patients weighs beside balance over images
LD_EXPONENT = 4.0  # (S/N)**4/S**2 = (S/N**2)**2, the squared LD sensitivity (dim_weights)
RARE_WEIGHT = 0.01  # how much a rare label's relative spread weighs beside LD
MAX_PASSES = 12  # improvement passes, fewer for large collections (PASS_BUDGET)
PASS_BUDGET = 60_000  # patient visits over all passes: keeps 50,000 patients near 5 s
SWAP_CANDIDATES = 48  # partners tried per patient in a swap pass
SIMILAR_CANDIDATES = 24  # of them, in the LD polish, patients like it (curation.refine)
POLISH_PASSES = 6  # LD polish passes (curation.stratify.polish), at most POLISH_BUDGET visits each
POLISH_BUDGET = 15_000
MOVE_CHUNK = 2_048  # patients whose moves are weighed at once (movable)
POLISH_MU = 1.0  # weight of the squared deviation beside LD in the polish
SAME_SIZE_SHARE = 0.5  # of them with as many images (swaps that keep fold sizes)
INCREMENTAL_MU = 0.1  # POLISH_MU when placing new patients beside fixed ones
INCREMENTAL_PASSES = 20  # polish passes then (the few free patients allow more)
# LD over patients weighs this much less when placing new patients beside fixed ones: near the
# integer floor, image and patient balance pull apart, and the split is measured over images
# (what a model trains on). At 50,000 patients plus 10%: image LD 0.92-1.07x a full rebalance
# (1.18-1.22x at full weight), patient LD 1.3-1.75x (bench/split.py).
INCREMENTAL_PATIENT_SHARE = 0.4
RESTART_VISITS = 8_000  # placements of new patients tried: this // free patients, at most
MAX_RESTARTS = 16  # ... MAX_RESTARTS, the best by the polish objective kept
PAIR_LIMIT = 2_000  # pairs of free patients up to which the exact pair descent runs
PAIR_BUDGET = 6_000  # pair placements tried over all its starts ...
PAIR_STARTS = 32  # ... and at most this many starts


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
    ld: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
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
    free = np.flatnonzero(where < 0)
    present = (counts > 0) & share
    rarity = np.where(present, present.sum(axis=0), n + 1).min(axis=1, initial=n + 1)
    if not len(free):
        return perm[where]
    if len(free) == n:
        place(counts, values, weights, deviation, where, free, rarity, rng, ld, POLISH_MU)
        refine_small(counts, values, weights, deviation, where, free, ld, POLISH_MU, rng)
        return perm[where]
    if ld is not None:
        ld = (ld[0], ld[1], np.where(ld[1] == 1, ld[2] * INCREMENTAL_PATIENT_SHARE, ld[2]))
    tries = int(np.clip(RESTART_VISITS // max(len(free), 1), 1, MAX_RESTARTS))
    best = None
    for child in rng.spawn(tries):
        trial_where, trial_deviation = where.copy(), deviation.copy()
        place(counts, values, weights, trial_deviation, trial_where, free, rarity, child, ld,
              INCREMENTAL_MU, INCREMENTAL_PASSES)
        score = objective(counts, weights, trial_deviation, trial_where, ld, INCREMENTAL_MU)
        if best is None or score < best[0]:
            best = (score, trial_where, trial_deviation)
    where, deviation = best[1], best[2]
    refine_small(counts, values, weights, deviation, where, free, ld, INCREMENTAL_MU, rng)
    return perm[where]


def place(
    counts: np.ndarray, values: np.ndarray, weights: np.ndarray, deviation: np.ndarray,
    where: np.ndarray, free: np.ndarray, rarity: np.ndarray, rng: np.random.Generator,
    ld: tuple[np.ndarray, np.ndarray, np.ndarray] | None, mu: float,
    polish_passes: int | None = None,
) -> None:
    """Give every free patient a fold: greedily (rarest dimension first, then larger patients),
    then by moves and swaps (`improve`) and the LD polish (`polish`); in place."""
    wv2 = 2.0 * values * weights
    order = free[np.lexsort((rng.random(len(free)), -counts[free, 0], rarity[free]))]
    for p in order:
        f = int(np.argmin(deviation @ wv2[p]))
        deviation[f] += values[p]
        where[p] = f
    improve(values, weights, deviation, where, free, rng)
    if ld is not None and len(ld[0]) and len(free) > 1:
        polish(counts, values, weights, deviation, where, free, rng, *ld, mu, polish_passes)


def objective(
    counts: np.ndarray, weights: np.ndarray, deviation: np.ndarray, where: np.ndarray,
    ld: tuple[np.ndarray, np.ndarray, np.ndarray] | None, mu: float,
) -> float:
    """What the polish lowers, for the whole collection: the weighted LD terms plus mu times
    the weighted squared deviation."""
    score = mu * float((weights * deviation**2).sum())
    if ld is None or not len(ld[0]):
        return score
    terms = _ld_setup(counts, where, deviation.shape[0], *ld)
    if terms is None:
        return score
    pos, size, ratio, scale = terms[2:]
    return score + float((ld_gaps(pos, size, ratio) @ scale).sum())


def refine_small(
    counts: np.ndarray, values: np.ndarray, weights: np.ndarray, deviation: np.ndarray,
    where: np.ndarray, free: np.ndarray, ld: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
    mu: float, rng: np.random.Generator,
) -> None:
    """When there are at most PAIR_LIMIT pairs of free patients: the exact pair descent of
    curation.refine from the polished folds, then from seeded random folds while PAIR_BUDGET
    pair placements last (at most PAIR_STARTS starts), the lowest polish objective kept; in
    place."""
    pairs = len(free) * (len(free) - 1) // 2
    if ld is None or not len(ld[0]) or not 0 < pairs <= PAIR_LIMIT:
        return
    k = deviation.shape[0]
    terms = _ld_setup(counts, where, k, *ld)
    if terms is None:
        return
    positives, examples, _, _, ratio, scale = terms
    fixed_deviation = deviation - np.eye(k)[where[free]].T @ values[free]
    best, budget = None, PAIR_BUDGET
    for start in range(PAIR_STARTS):
        if budget <= 0:
            break
        trial_where = where.copy()
        if start:
            trial_where[free] = rng.integers(0, k, len(free))
        trial_deviation = fixed_deviation + np.eye(k)[trial_where[free]].T @ values[free]
        score, tried = pair_descent(positives, examples, values, weights, trial_deviation,
                                    trial_where, free, ratio, scale, mu, rng, budget)
        budget -= tried
        if best is None or score < best[0]:
            best = (score, trial_where, trial_deviation)
    where[:] = best[1]
    deviation[:] = best[2]


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


def _ld_setup(
    counts: np.ndarray, where: np.ndarray, k: int, ld_dims: np.ndarray, ld_base: np.ndarray,
    ld_weight: np.ndarray,
) -> tuple[np.ndarray, ...] | None:
    """Per patient positives and examples of each informative LD term, their per-fold sums,
    the overall ratios and the terms' weights; None when no term is informative."""
    positives = counts[:, ld_dims]
    examples = counts[:, ld_base]
    total_pos = positives.sum(axis=0)
    total_neg = examples.sum(axis=0) - total_pos
    keep = (total_pos > 0) & (total_neg > 0)
    if not keep.any():
        return None
    positives, examples = positives[:, keep], examples[:, keep]
    ratio = total_pos[keep] / total_neg[keep]
    groups = ld_base[keep]
    scale = np.array([ld_weight[keep][i] / (k * (groups == g).sum()) for i, g in enumerate(groups)])
    pos = np.zeros((k, len(ratio)))
    size = np.zeros((k, len(ratio)))
    np.add.at(pos, where, positives)
    np.add.at(size, where, examples)
    return positives, examples, pos, size, ratio, scale


def movable(
    positives: np.ndarray, examples: np.ndarray, pos: np.ndarray, size: np.ndarray,
    ratio: np.ndarray, scale: np.ndarray, gain: np.ndarray, own: np.ndarray, where: np.ndarray,
    free: np.ndarray,
) -> np.ndarray:
    """The free patients whose move to some fold lowers the polish objective now (gain: the
    squared-deviation part of each patient's move into each fold, own: its self term)."""
    before = ld_gaps(pos, size, ratio) @ scale
    out = []
    for start in range(0, len(free), MOVE_CHUNK):
        chunk = free[start : start + MOVE_CHUNK]
        c, s, a = positives[chunk][:, None], examples[chunk][:, None], where[chunk]
        delta = ld_gaps(pos + c, size + s, ratio) @ scale - before
        delta += (ld_gaps(pos[a] - c[:, 0], size[a] - s[:, 0], ratio) @ scale - before[a])[:, None]
        g = gain[chunk]
        delta += g - g[np.arange(len(chunk)), a][:, None] + own[chunk][:, None]
        delta[np.arange(len(chunk)), a] = 0.0
        out.append(chunk[(delta < -1e-15).any(axis=1)])
    return np.concatenate(out) if out else free[:0]


def polish(
    counts: np.ndarray, values: np.ndarray, weights: np.ndarray, deviation: np.ndarray,
    where: np.ndarray, free: np.ndarray, rng: np.random.Generator, ld_dims: np.ndarray,
    ld_base: np.ndarray, ld_weight: np.ndarray, mu: float = POLISH_MU,
    passes: int | None = None,
) -> None:
    """Moves and swaps of free patients that lower LD itself: over each dimension of ld_dims,
    a share of dimension ld_base (images or patients), weighted by ld_weight, plus mu times
    the weighted squared deviation (which keeps sizes, sexes and sources in line); in place.
    At most `passes` passes (default POLISH_PASSES, fewer when POLISH_BUDGET runs out), each
    visiting at most POLISH_BUDGET patients."""
    k = deviation.shape[0]
    terms = _ld_setup(counts, where, k, ld_dims, ld_base, ld_weight)
    if terms is None:
        return
    positives, examples, pos, size, ratio, scale = terms
    classes = similar_classes(np.concatenate([counts[free, :1], positives[free]], axis=1))
    wv2 = 2.0 * values * weights
    own = (wv2 * values).sum(axis=1)
    n_free = len(free)
    if passes is None:
        passes = min(POLISH_PASSES, max(1, POLISH_BUDGET // max(n_free, 1)))
    for _ in range(passes):
        changes = 0
        hopeful = movable(positives, examples, pos, size, ratio, scale,
                          mu * (wv2 @ deviation.T), mu * own, where, free)
        for p in hopeful[rng.permutation(len(hopeful))[:POLISH_BUDGET]].tolist():
            a, c, s = where[p], positives[p], examples[p]
            before = ld_gaps(pos, size, ratio) @ scale
            added = ld_gaps(pos + c, size + s, ratio) @ scale - before
            removed = ld_gaps(pos[a] - c, size[a] - s, ratio) @ scale - before[a]
            gain = deviation @ wv2[p]
            delta = added + removed + mu * (gain - gain[a] + own[p])
            delta[a] = 0.0
            b = int(delta.argmin())
            if delta[b] < -1e-15:
                deviation[a] -= values[p]
                deviation[b] += values[p]
                pos[a] -= c
                pos[b] += c
                size[a] -= s
                size[b] += s
                where[p] = b
                changes += 1
        visit = free[rng.permutation(n_free)[:POLISH_BUDGET]]
        partners = np.concatenate([
            swap_partners(counts[:, 0], free, visit, rng)[:, : SWAP_CANDIDATES - SIMILAR_CANDIDATES],
            similar_partners(classes, free, visit, SIMILAR_CANDIDATES, rng),
        ], axis=1)
        for p, q in zip(visit.tolist(), partners, strict=True):
            a, b = where[p], where[q]
            step = values[p] - values[q]
            step_c = positives[p] - positives[q]
            step_s = examples[p] - examples[q]
            ld = (
                ld_gaps(pos[a] - step_c, size[a] - step_s, ratio)
                - ld_gaps(pos[a], size[a], ratio)
                + ld_gaps(pos[b] + step_c, size[b] + step_s, ratio)
                - ld_gaps(pos[b], size[b], ratio)
            ) @ scale
            sq = 2.0 * ((weights * step) * (deviation[b] - deviation[a] + step)).sum(axis=1)
            delta = ld + mu * sq
            delta[b == a] = 0.0
            best = int(delta.argmin())
            if delta[best] < -1e-15:
                partner, target = q[best], b[best]
                deviation[a] -= step[best]
                deviation[target] += step[best]
                pos[a] -= step_c[best]
                pos[target] += step_c[best]
                size[a] -= step_s[best]
                size[target] += step_s[best]
                where[p], where[partner] = target, a
                changes += 1
        if not changes:
            break
