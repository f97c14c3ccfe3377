"""Dedup verification groups (union-find that keeps rows apart) and its split by connected
components of the candidate graph: two halves verified at once, their matches merged in order."""

from __future__ import annotations

import copy
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np


class Components:
    """Union-find over rows that refuses to join two rows that must stay apart."""

    def __init__(self, n: int, apart: Callable[[int, int], bool]) -> None:
        self.parent = list(range(n))
        self.members: dict[int, list[int]] = {i: [i] for i in range(n)}
        self.apart = apart

    def root(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def together(self, a: int, b: int) -> bool:
        return self.root(a) == self.root(b)

    def must_stay_apart(self, a: int, b: int) -> bool:
        ra, rb = self.root(a), self.root(b)
        return any(self.apart(x, y) for x in self.members[ra] for y in self.members[rb])

    def join(self, a: int, b: int) -> bool:
        """Join the groups of a and b; False when that would join a must-stay-apart pair."""
        ra, rb = self.root(a), self.root(b)
        if ra == rb:
            return True
        if self.must_stay_apart(a, b):
            return False
        self.parent[rb] = ra
        self.members[ra].extend(self.members.pop(rb))
        return True

    def groups(self) -> list[list[int]]:
        return sorted(sorted(g) for g in self.members.values() if len(g) > 1)


PARALLEL_FROM = 2000  # candidates before a second process is worth its start
Verify = Callable[[np.ndarray, Any], list[tuple[int, Any]]]
_JOB: tuple[Verify, np.ndarray, Any] | None = None  # what the forked process verifies


def _run_job() -> list[tuple[int, Any]]:
    verify, order, parts = _JOB
    return verify(order, parts)


def halves(order: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """For each candidate of order, which of two halves it falls in (bool): whole connected
    components of the candidate graph go to one half, with about as many candidates each."""
    parent = np.arange(int(pairs.max()) + 1)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in pairs[order].tolist():
        ri, rj = root(i), root(j)
        if ri != rj:
            parent[rj] = ri
    label = np.array([root(int(i)) for i in pairs[order, 0]])
    names, sizes = np.unique(label, return_counts=True)
    load = [0, 0]
    side = {}
    for k in np.argsort(-sizes, kind="stable"):  # largest first, each to the lighter half
        lighter = int(load[1] < load[0])
        side[int(names[k])] = lighter
        load[lighter] += int(sizes[k])
    return np.array([side[int(x)] == 1 for x in label], dtype=bool)


def by_components(order: np.ndarray, pairs: np.ndarray, parts: Any, verify: Verify,
                  ) -> list[tuple[int, Any]]:
    """verify(order, parts)'s (k, match) list, computed as two independent halves at once
    where there are many candidates (each half on its own copy of parts). Candidates of
    different components never change each other's outcome, so the result is the same."""
    global _JOB  # handed to the forked process by inheritance
    if (len(order) < max(PARALLEL_FROM, 2) or (os.cpu_count() or 1) < 2
            or "fork" not in multiprocessing.get_all_start_methods()):
        return verify(order, copy.deepcopy(parts))
    second = halves(order, pairs)
    mine, theirs = np.nonzero(~second)[0], np.nonzero(second)[0]
    _JOB = (verify, order[theirs], copy.deepcopy(parts))
    try:
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
            future = pool.submit(_run_job)
            found = [(int(mine[k]), m) for k, m in verify(order[mine], copy.deepcopy(parts))]
            found += [(int(theirs[k]), m) for k, m in future.result()]
    finally:
        _JOB = None
    return sorted(found, key=lambda item: item[0])
