"""Dedup verification split by candidate-graph components gives the same groups as one pass."""

from __future__ import annotations

import numpy as np

from curation import hashing, verification
from curation.dedup import different_days, match_rows
from tests.fixtures.dedup_images import TRANSFORMS, encoded, radiograph


def _films() -> tuple[list[dict], list[hashing.Fingerprint]]:
    rows, fps = [], []
    for patient in range(6):
        for day in (0, 3):
            film = radiograph(patient, day)
            for name, transform in [("orig", lambda image: image), *TRANSFORMS.items()]:
                rows.append({"patientid": str(patient), "offset": str(day)})
                fps.append(hashing.fingerprint(encoded(transform(film)), f"{patient}-{day}-{name}"))
    return rows, fps


def _summary(result) -> tuple:
    groups, matches, held = result
    return (groups, [(m.a, m.b, m.kind, m.score) for m in matches],
            [(m.a, m.b, m.kind, m.score) for m in held])


def test_split_verification_matches_the_single_pass(monkeypatch):
    rows, fps = _films()

    def apart(a: int, b: int) -> bool:
        return different_days(rows[a], rows[b])

    monkeypatch.setattr(verification, "PARALLEL_FROM", 10**9)
    single = _summary(match_rows(fps, apart))
    monkeypatch.setattr(verification, "PARALLEL_FROM", 0)
    split = _summary(match_rows(fps, apart))
    assert split == single
    assert single[0] and single[2]  # copies were grouped and follow-ups held apart


def test_halves_keep_each_component_whole_and_balance_them():
    pairs = np.array([[0, 1], [1, 2], [3, 4], [5, 6], [6, 7], [7, 8], [9, 10]])
    second = verification.halves(np.arange(len(pairs)), pairs)
    assert second[0] == second[1]  # 0-1-2 is one component
    assert second[3] == second[4] == second[5]  # 5-6-7-8 too
    assert second.sum() in (3, 4)  # 7 candidates in halves of 3 and 4
