"""Facts extraction on real clinical notes: per-field precision and recall, with the misses.

    python bench/facts.py [--metadata ../shared/data/cxr-dev/metadata.csv] [--misses N]

Precision: of the values the extractor outputs, the share equal to the curated value (rows whose
curated value is blank, or `todo` for finding, are not counted). Recall: over the rows whose notes
state the curated value (the age number next to "year/old/aged", a sex word or pronoun, a name of
the finding, a modality or view word), the share extracted correctly.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cxrbank.schema import (  # noqa: E402
    SYNONYMS,
    canonical_finding,
    normalize_modality,
    normalize_sex,
    normalize_view,
)
from extract.factrules import number_value  # noqa: E402
from extract.facts import extract_facts  # noqa: E402

FIELDS = ("age", "sex", "finding", "view", "modality", "offset")
VIEW_WORDS = {
    "PA": r"\bPA\b|postero-?anterior", "AP": r"\bAP\b|antero-?posterior",
    "AP Supine": r"supine", "AP Erect": r"erect|upright", "L": r"\blateral\b",
    "Axial": r"axial|transverse", "Coronal": r"coronal",
}
MODALITY_WORDS = {"X-ray": r"x-?ray|radiograph|cxr|film", "CT": r"\bCT\b|computed tomograph"}


def curated(row: dict[str, str], name: str) -> object:
    value = (row.get(name) or "").strip()
    if not value:
        return None
    if name in ("age", "offset"):
        return int(float(value))
    if name == "sex":
        return normalize_sex(value) or None
    if name == "finding":
        found = canonical_finding(value)
        return None if found in (None, "", "todo") else found
    if name == "view":
        return normalize_view(value) or None
    if name == "modality":
        return normalize_modality(value) or None
    return value


def states(text: str, name: str, truth: object) -> bool:
    """Whether the notes state the curated value at all (the recall denominator)."""
    if truth is None:
        return False
    if name == "age":
        for m in re.finditer(r"\b([a-z-]+|\d{1,3})\b", text, re.IGNORECASE):
            if number_value(m.group(1)) == truth:
                near = text[max(0, m.start() - 12):m.end() + 16].casefold()
                if re.search(r"year|yr|\byo\b|y/o|old|aged?\b", near):
                    return True
        return False
    if name == "sex":
        words = (r"\b(man|male|boy|woman|female|girl|lady|he|she|his|her)\b")
        found = {normalize_sex(w) or ("M" if w.casefold() in ("he", "his") else "F")
                 for w in re.findall(words, text, re.IGNORECASE)}
        return truth in found
    if name == "finding":
        names = [k for k, v in SYNONYMS.items() if v == truth and len(k) > 2]
        return any(re.search(rf"\b{re.escape(k)}\b", text, re.IGNORECASE) for k in names)
    if name == "view":
        return bool(re.search(VIEW_WORDS[str(truth)], text, re.IGNORECASE))
    if name == "modality":
        return bool(re.search(MODALITY_WORDS[str(truth)], text, re.IGNORECASE))
    if name == "offset":
        return bool(re.search(rf"\b{truth}\b|day", text, re.IGNORECASE))
    return False


def supplementary(rows: list[dict[str, str]], outputs: list) -> str:
    """Two readings of precision beside the strict one: each distinct note counted once (a
    patient with eight images of one note weighs one), and a view right when it is the curated
    view's family ("AP" for "AP Supine")."""
    lines = []
    for name in FIELDS:
        pairs = {}
        for row, facts in zip(rows, outputs, strict=True):
            value, truth = getattr(facts, name), curated(row, name)
            if value is not None and truth is not None:
                pairs[(row.get("clinical_notes") or "", repr(truth))] = value == truth
        if pairs:
            right = sum(pairs.values())
            lines.append(f"  {name:9} {right}/{len(pairs)} = {right / len(pairs):.3f}")
    family = {"AP Supine": "AP", "AP Erect": "AP"}
    right = output = 0
    for row, facts in zip(rows, outputs, strict=True):
        truth = curated(row, "view")
        if facts.view is not None and truth is not None:
            output += 1
            right += facts.view in (truth, family.get(str(truth)))
    view = f"{right}/{output} = {right / output:.3f}" if output else "-"
    return ("precision, each distinct note once:\n" + "\n".join(lines)
            + f"\nview precision, the family's general view counted right: {view}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metadata", type=Path,
                        default=ROOT.parent / "shared/data/cxr-dev/metadata.csv")
    parser.add_argument("--misses", type=int, default=15, help="misses listed per field")
    args = parser.parse_args()
    with args.metadata.open(newline="", encoding="utf-8", errors="replace") as f:
        rows = list(csv.DictReader(f))
    started = time.perf_counter()
    outputs = [extract_facts(row.get("clinical_notes") or "")[0] for row in rows]
    elapsed = time.perf_counter() - started
    print(f"{len(rows)} rows, {elapsed / max(1, len(rows)) * 1000:.1f} ms per note\n")
    print(f"{'field':10} {'precision':>16} {'recall (stated)':>18} {'output':>7}")
    report = []
    for name in FIELDS:
        correct = output = stated = hit = 0
        misses = []
        for i, (row, facts) in enumerate(zip(rows, outputs, strict=True)):
            truth = curated(row, name)
            value = getattr(facts, name)
            if value is not None and truth is not None:
                output += 1
                correct += value == truth
            text = row.get("clinical_notes") or ""
            if states(text, name, truth):
                stated += 1
                hit += value == truth
            if value != truth and ((value is not None and truth is not None) or states(
                    text, name, truth)):
                misses.append(f"  row {i} pid {row['patientid']}: got {value!r} "
                              f"({facts.evidence.get(name, '')!r}) want {truth!r}")
        precision = f"{correct}/{output} = {correct / output:.3f}" if output else "-"
        recall = f"{hit}/{stated} = {hit / stated:.3f}" if stated else "-"
        print(f"{name:10} {precision:>16} {recall:>18} {output:>7}")
        report.append((name, misses))
    print(f"\n{supplementary(rows, outputs)}")
    for name, misses in report:
        if misses:
            print(f"\nmisses for {name} ({len(misses)}):")
            print("\n".join(misses[: args.misses]))


if __name__ == "__main__":
    main()
