"""Dedup verification split by connected components of the candidate graph: two independent
halves are verified at once (one in a forked process), their matches merged in order."""

from __future__ import annotations

import copy
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np

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
    if (len(order) < PARALLEL_FROM or (os.cpu_count() or 1) < 2
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
