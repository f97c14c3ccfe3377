"""`cxrbank stats`: the upstream-style label table and counts by modality, view, sex, source, licence."""

from __future__ import annotations

from collections import Counter
from typing import Any

from curation.labels import clean_finding
from cxrbank.collection import Row
from cxrbank.schema import expand_labels, is_reviewed, label_vocabulary


def label_table(rows: list[Row]) -> dict[str, dict[int, int]]:
    """For every label, how many reviewed rows have it (1) and do not (0).

    Counted as torchxrayvision's COVID19_Dataset does: rows with finding `todo` are left out,
    each `/` token of a finding is a label; a finding in another spelling the taxonomy knows
    counts as its canonical one (as `cxrbank labels` counts it).
    """
    findings = [clean_finding(row["finding"]) for row in rows]
    reviewed = [finding for finding in findings if is_reviewed(finding)]
    table: dict[str, dict[int, int]] = {}
    for label in label_vocabulary(reviewed):
        positives = sum(1 for finding in reviewed if label in expand_labels(finding))
        table[label] = {0: len(reviewed) - positives, 1: positives}
    return table


def _counts(rows: list[Row], column: str) -> dict[str, int]:
    counter = Counter(row[column].strip() or "(blank)" for row in rows)
    return dict(sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))


def collection_stats(rows: list[Row]) -> dict[str, Any]:
    """Everything `cxrbank stats` reports, as plain data."""
    return {
        "rows": len(rows),
        "patients": len({row["patientid"] for row in rows if row["patientid"]}),
        "todo": sum(1 for row in rows if not is_reviewed(row["finding"])),
        "labels": label_table(rows),
        "finding": _counts(rows, "finding"),
        "modality": _counts(rows, "modality"),
        "view": _counts(rows, "view"),
        "sex": _counts(rows, "sex"),
        "source": _counts(rows, "source"),
        "license": _counts(rows, "license"),
    }


def format_stats(stats: dict[str, Any]) -> str:
    """The human report: the label table as upstream's README prints it, then the counts."""
    lines = [
        f"{stats['rows']} images of {stats['patients']} patients ({stats['todo']} not yet reviewed)",
        "",
        "labels: " + repr(stats["labels"]),
    ]
    for key in ("modality", "view", "sex", "source", "license", "finding"):
        lines.append("")
        lines.append(f"{key}:")
        width = max((len(name) for name in stats[key]), default=0)
        lines.extend(f"  {name.ljust(width)}  {count}" for name, count in stats[key].items())
    return "\n".join(lines)
