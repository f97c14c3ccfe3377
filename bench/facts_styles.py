"""Facts on notes written in the collection's styles: a regression guard beside bench/facts.py.

    python bench/facts_styles.py [--notes bench/data/facts_styles.jsonl] [--misses]

bench/data/facts_styles.jsonl holds 159 notes a reviewer wrote in the styles of the COVID-19
image data collection (SIRM translations with Italian abbreviations, Eurorad histories with
captions, Radiopaedia presentation/imaging/discussion, journal case reports, non-COVID cases,
normal studies), about 40% of them traps: negations, differentials, past diseases, relatives,
several patients or modalities, durations, typos and '?' for lost characters. Each has the value
a careful curator would write per field; null means the note does not say (any output is
wrong), "?" is not scored. The rules were corrected against these notes, so the figures are a
guard against regressions, not an estimate on unseen notes (bench/facts.py on real notes is).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from extract.facts import extract_facts  # noqa: E402

FIELDS = ("age", "sex", "finding", "view", "modality")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=Path, default=ROOT / "bench/data/facts_styles.jsonl")
    parser.add_argument("--misses", action="store_true", help="list wrong and missed values")
    args = parser.parse_args()
    notes = [json.loads(line) for line in args.notes.read_text(encoding="utf-8").splitlines()
             if line.strip()]
    counts = {name: [0, 0, 0, 0] for name in FIELDS}  # right, output, found, stated
    lines = []
    for i, note in enumerate(notes):
        facts = extract_facts(note["text"])[0]
        for name in FIELDS:
            want, got = note[name], getattr(facts, name)
            if want == "?":
                continue
            c = counts[name]
            if got is not None:
                c[1] += 1
                c[0] += got == want
                if got != want:
                    lines.append(f"  #{i} {name}: got {got!r} want {want!r} | {note['text'][:100]}")
            if want is not None:
                c[3] += 1
                c[2] += got == want
                if got is None:
                    lines.append(f"  #{i} {name}: missed {want!r} | {note['text'][:100]}")
    print(f"{len(notes)} notes in the collection's styles")
    print(f"{'field':9} {'precision':>18} {'recall (stated)':>20}")
    for name, (right, output, found, stated) in counts.items():
        precision = f"{right}/{output} = {right / output:.3f}" if output else "-"
        recall = f"{found}/{stated} = {found / stated:.3f}" if stated else "-"
        print(f"{name:9} {precision:>18} {recall:>20}")
    if args.misses and lines:
        print("\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
