"""Local search helpers of the stratifier: LD's terms, swap partners of similar patients, and
the exact pair descent.

Similar patients (equal image counts, labels differing in one place) are the partners whose
swap moves a single unit of a single label from one fold to another without disturbing the
rest: the fine corrections LD needs once every fold is within an image of its share.
"""

from __future__ import annotations

import numpy as np

NEIGHBOUR_CLASSES = 12  # nearest signature classes a patient's similar partners come from


def similar_classes(signature: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Signature class of each row and, per class, its NEIGHBOUR_CLASSES nearest classes
    (squared euclidean distance of the signatures, itself first)."""
    classes, inverse = np.unique(signature, axis=0, return_inverse=True)
    norms = (classes**2).sum(axis=1)
    nearest = np.empty((len(classes), min(NEIGHBOUR_CLASSES, len(classes))), dtype=np.int64)
    for start in range(0, len(classes), 512):
        block = classes[start : start + 512]
        dist = norms[start : start + 512, None] + norms[None, :] - 2.0 * block @ classes.T
        dist[np.arange(len(block)), np.arange(start, start + len(block))] = -1.0
        nearest[start : start + 512] = np.argsort(dist, axis=1, kind="stable")[:, : nearest.shape[1]]
    return inverse.reshape(-1), nearest


def similar_partners(
    classes: tuple[np.ndarray, np.ndarray], free: np.ndarray, visit: np.ndarray, count: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """(len(visit), count) free patients like each visited one: a random member of one of its
    nearest signature classes (see similar_classes, computed over `free`)."""
    inverse, nearest = classes
    order = np.argsort(inverse, kind="stable")
    starts = np.searchsorted(inverse[order], np.arange(nearest.shape[0]))
    sizes = np.bincount(inverse, minlength=nearest.shape[0])
    lookup = np.full(int(free.max()) + 1 if len(free) else 1, -1, dtype=np.int64)
    lookup[free] = np.arange(len(free))
    own = inverse[lookup[visit]]
    pick = nearest[own[:, None], rng.integers(0, nearest.shape[1], (len(visit), count))]
    member = starts[pick] + (rng.random(pick.shape) * sizes[pick]).astype(np.int64)
    return free[order[member]]


def ld_gaps(pos: np.ndarray, size: np.ndarray, ratio: np.ndarray) -> np.ndarray:
    """|p/n - P/N| per (subset, label) for positives pos among size examples: LD's terms."""
    return np.abs(pos / np.maximum(size - pos, 1.0) - ratio)


def _fold_cost(
    pos: np.ndarray, size: np.ndarray, dev: np.ndarray, ratio: np.ndarray, scale: np.ndarray,
    weights: np.ndarray, mu: float,
) -> np.ndarray:
    """Each fold's share of the polish objective: weighted LD terms plus mu times the
    weighted squared deviation (the last axis is the term or the dimension)."""
    return ld_gaps(pos, size, ratio) @ scale + mu * (weights * dev**2).sum(axis=-1)


def pair_descent(
    positives: np.ndarray, examples: np.ndarray, values: np.ndarray, weights: np.ndarray,
    deviation: np.ndarray, where: np.ndarray, free: np.ndarray, ratio: np.ndarray,
    scale: np.ndarray, mu: float, rng: np.random.Generator, budget: int,
) -> tuple[float, int]:
    """Best folds for each pair of free patients given all others (moving one alone is a
    pair placement too), over all pairs in a seeded order until no pair lowers the polish
    objective or `budget` pairs were tried; where and deviation in place. Returns the
    objective and the pairs tried."""
    k = deviation.shape[0]
    onehot = np.eye(k)[where]
    pos, size = onehot.T @ positives, onehot.T @ examples
    pairs = np.array([(p, q) for i, p in enumerate(free.tolist()) for q in free[i + 1 :].tolist()])
    same = np.eye(k, dtype=bool)
    tried = 0
    while tried < budget:
        changes = 0
        for p, q in pairs[rng.permutation(len(pairs))[: budget - tried]].tolist():
            tried += 1
            a, b = where[p], where[q]
            rest = [pos.copy(), size.copy(), deviation.copy()]
            for arrays, c in zip(rest, (positives, examples, values), strict=True):
                arrays[a] -= c[p]
                arrays[b] -= c[q]
            base = _fold_cost(*rest, ratio, scale, weights, mu)
            first = _fold_cost(rest[0] + positives[p], rest[1] + examples[p], rest[2] + values[p],
                               ratio, scale, weights, mu) - base
            second = _fold_cost(rest[0] + positives[q], rest[1] + examples[q], rest[2] + values[q],
                                ratio, scale, weights, mu) - base
            both = _fold_cost(rest[0] + positives[p] + positives[q], rest[1] + examples[p] + examples[q],
                              rest[2] + values[p] + values[q], ratio, scale, weights, mu) - base
            total = np.where(same, both[:, None], first[:, None] + second[None, :])
            x, y = np.unravel_index(int(total.argmin()), total.shape)
            if total[x, y] < total[a, b] - 1e-15:
                for arrays, c in zip((pos, size, deviation), (positives, examples, values), strict=True):
                    arrays[a] -= c[p]
                    arrays[b] -= c[q]
                    arrays[x] += c[p]
                    arrays[y] += c[q]
                where[p], where[q] = x, y
                changes += 1
        if not changes:
            break
    return float(_fold_cost(pos, size, deviation, ratio, scale, weights, mu).sum()), tried
