"""Labels from `finding`: the label matrix, the vocabulary with counts, and logged batch relabels."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cxrbank.collection import Collection, Row
from cxrbank.schema import COLUMNS, canonical_finding, expand_labels, is_reviewed

RELABEL_LOG = "relabel.jsonl"


@dataclass
class FindingValue:
    """One distinct stored `finding` value, how often it occurs, and what is wrong with it."""

    value: str
    count: int
    canonical: str | None  # the taxonomy's spelling; None when the taxonomy does not know it
    problem: str  # "" when the value is already canonical


def label_matrix(rows: list[Row]) -> tuple[list[str], np.ndarray]:
    """Labels (sorted) and a rows x labels matrix: 1 present, 0 absent, NaN not reviewed.

    As torchxrayvision does, each `/` token of a finding is a label, so
    "Pneumonia/Viral/COVID-19" is positive for Pneumonia, Viral and COVID-19.
    """
    per_row = [expand_labels(clean_finding(row.get("finding", ""))) for row in rows]
    labels = sorted({label for found in per_row for label in found})
    column = {label: k for k, label in enumerate(labels)}
    matrix = np.zeros((len(rows), len(labels)), dtype=np.float32)
    for i, (row, found) in enumerate(zip(rows, per_row, strict=True)):
        if not is_reviewed(clean_finding(row.get("finding", ""))):
            matrix[i] = np.nan
            continue
        for label in found:
            matrix[i, column[label]] = 1.0
    return labels, matrix


def clean_finding(finding: str) -> str:
    """The finding as labels see it: the canonical spelling when known, else trimmed parts."""
    known = canonical_finding(finding)
    if known:
        return known
    return "/".join(part.strip() for part in (finding or "").split("/")).strip("/")


def label_counts(rows: list[Row]) -> Counter[str]:
    """How many rows carry each label."""
    counts: Counter[str] = Counter()
    for row in rows:
        counts.update(expand_labels(clean_finding(row.get("finding", ""))))
    return counts


def finding_values(rows: list[Row]) -> list[FindingValue]:
    """Every distinct stored finding with its count and the fix it needs, most common first."""
    counts = Counter(row.get("finding", "") for row in rows)
    out = []
    for value, count in counts.most_common():
        canonical = canonical_finding(value)
        if canonical is None:
            problem = "not in the taxonomy"
        elif value != value.strip() or "  " in value:
            problem = "stray whitespace"
        elif canonical != value:
            problem = "not the canonical spelling"
        else:
            problem = ""
        out.append(FindingValue(value=value, count=count, canonical=canonical, problem=problem))
    return out


def parse_where(conditions: list[str]) -> list[tuple[str, str]]:
    """`COLUMN=VALUE` conditions, checked against the known columns."""
    parsed = []
    for condition in conditions:
        column, sep, value = condition.partition("=")
        if not sep or not column:
            raise ValueError(f"--where {condition!r}: expected COLUMN=VALUE")
        if column not in COLUMNS:
            raise ValueError(f"--where {condition!r}: no column {column!r}")
        parsed.append((column, value))
    return parsed


def relabel(
    collection: Collection, old: str, new: str, where: list[tuple[str, str]] | None = None,
    column: str = "finding",
) -> list[str]:
    """Set `column` from `old` to `new` on the rows that match (and `where`), logged.

    `old` is matched exactly, so a stored value with a trailing space is named with its
    space. Returns the changed rows' filenames; each change is one line of
    .cxrbank/logs/relabel.jsonl.
    """
    where = where or []
    log = collection.state_dir / "logs" / RELABEL_LOG
    log.parent.mkdir(parents=True, exist_ok=True)
    changed: list[str] = []
    with collection.editing() as rows:
        for index, row in enumerate(rows):
            if row.get(column, "") != old or any(row.get(c, "") != v for c, v in where):
                continue
            rows[index] = {**row, column: new}
            changed.append(row["filename"])
        if changed:
            _log_changes(log, column, old, new, where, changed)
    return changed


def _log_changes(log: Path, column: str, old: str, new: str, where: list[tuple[str, str]],
                 files: list[str]) -> None:
    at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    with open(log, "a", encoding="utf-8") as handle:
        for filename in files:
            handle.write(json.dumps({"at": at, "filename": filename, "column": column,
                                     "from": old, "to": new, "where": dict(where)}) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def check_new_finding(new: str, allow_new: bool = False) -> str:
    """The new value if the taxonomy knows it in that spelling (or, with `allow_new`, does not
    know it at all and it has no stray whitespace), else a ValueError saying why.

    A spelling the taxonomy maps to another one is refused even with `allow_new`: it would be
    one finding under two names."""
    canonical = canonical_finding(new)
    if canonical is None:
        if not allow_new:
            raise ValueError(f"{new!r} is not a finding in the taxonomy (cxrbank/schema.py)")
        if new != clean_finding(new) or "  " in new:
            raise ValueError(f"{new!r} has stray whitespace: use {clean_finding(new)!r}")
        return new
    if canonical != new:
        raise ValueError(f"{new!r} is not the canonical spelling: use {canonical!r}")
    return new

