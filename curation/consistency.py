"""Validate checks across rows: ages against offsets, one image labelled twice, duplicates left, licences."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterator

from cxrbank.collection import Collection, Row

LABEL_COLUMNS = ("finding", "view", "modality")
RESTRICTIONS = {"ND": "no derivatives", "NC": "non-commercial"}


def _number(text: str) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def check_age_direction(collection: Collection, rows: list[Row], policy) -> Iterator:
    """A patient younger at a later offset: the age moves the wrong way."""
    from curation.validate import ERROR, Problem  # noqa: PLC0415 - validate imports this module

    timeline: dict[str, list[tuple[float, float, int]]] = defaultdict(list)
    for number, row in enumerate(rows, 1):
        offset, age = _number(row.get("offset", "")), _number(row.get("age", ""))
        if row.get("patientid") and offset is not None and age is not None:
            timeline[row["patientid"]].append((offset, age, number))
    for patient, points in timeline.items():
        points.sort()
        for (o1, a1, n1), (o2, a2, n2) in itertools.pairwise(points):
            if o2 > o1 and a2 < a1 - 0.5:
                yield Problem(ERROR, n2, "age",
                              f"patient {patient} is {a2:g} at offset {o2:g} but {a1:g} at the earlier"
                              f" offset {o1:g} (row {n1}): age moves the wrong way")
                break


def check_duplicates(collection: Collection, rows: list[Row], policy) -> Iterator:
    """Duplicates left in the collection, the same image labelled differently, and one
    patient's near-identical images on different days.

    Same bytes are found from the sha256 column; near duplicates among the images that
    `cxrbank dedup` has fingerprinted already (validate decodes no image itself).
    """
    from curation import dedup  # noqa: PLC0415
    from curation.fingerprints import cached_fingerprints  # noqa: PLC0415
    from curation.validate import ERROR, WARNING, Problem  # noqa: PLC0415

    fps = cached_fingerprints(collection, rows)
    groups, matches, held = dedup.match_rows(
        fps, lambda a, b: dedup.different_days(rows[a], rows[b]))
    kind_of = {m.b: m.kind for m in matches} | {m.a: m.kind for m in matches}
    same_bytes: dict[str, list[int]] = defaultdict(list)
    for index, fp in enumerate(fps):
        if fp is None and rows[index].get("sha256"):
            same_bytes[rows[index]["sha256"]].append(index)
    for members in same_bytes.values():
        if len(members) > 1:
            groups.append(members)
            kind_of.update(dict.fromkeys(members, "exact"))
    for members in groups:
        first = members[0]
        for other in members[1:]:
            kind = kind_of.get(other, "near")
            yield Problem(ERROR, other + 1, "filename",
                          f"{rows[other]['filename']} is a duplicate ({kind}) of row {first + 1}"
                          f" ({rows[first]['filename']}): run `cxrbank dedup --apply`")
            for column in LABEL_COLUMNS:
                if rows[other].get(column, "").strip() != rows[first].get(column, "").strip():
                    yield Problem(ERROR, other + 1, column,
                                  f"the same image is labelled {rows[other].get(column)!r} here and"
                                  f" {rows[first].get(column)!r} in row {first + 1}")
    for match in held:
        a, b = rows[match.a], rows[match.b]
        yield Problem(WARNING, match.b + 1, "offset",
                      f"near-identical to row {match.a + 1} ({a['filename']}) of the same patient"
                      f" {a['patientid']} on another day ({a.get('offset') or a.get('date')} vs"
                      f" {b.get('offset') or b.get('date')}): one image labelled as two studies?")


def check_licence_terms(collection: Collection, rows: list[Row], policy) -> Iterator:
    """Licences that restrict redistribution (ND, NC): one line per licence, for release notes."""
    from curation.validate import WARNING, Problem  # noqa: PLC0415

    restricted: dict[str, list[int]] = defaultdict(list)
    for number, row in enumerate(rows, 1):
        words = (row.get("license") or "").upper().replace("-", " ").split()
        if any(term in words for term in RESTRICTIONS):
            restricted[row["license"].strip()].append(number)
    for licence, numbers in restricted.items():
        words = licence.upper().replace("-", " ").split()
        terms = " and ".join(name for term, name in RESTRICTIONS.items() if term in words)
        yield Problem(WARNING, numbers[0], "license",
                      f"{licence} ({terms}) on {len(numbers)} rows: name them in the release notes")


CHECKS = [check_age_direction, check_duplicates, check_licence_terms]
