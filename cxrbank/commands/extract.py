"""The `facts` and `imagetype` commands: thin wrappers over extract.facts and extract.imagetype."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import click

from cxrbank.commands.common import (
    EXIT_PARTIAL,
    CxrbankError,
    emit_json,
    root_option,
    say_error,
)


@click.command("facts")
@click.argument("text", required=False)
@click.option("--panel", metavar="LETTER",
              help="Treat TEXT as a figure caption and give the facts of this panel.")
@click.option("--case-text", "case_file", type=click.File("rb"),
              help="With --panel: a file of case text that fills what the caption leaves out.")
@root_option
def facts_cmd(text: str | None, panel: str | None, case_file, root: Path) -> None:
    """Patient facts in TEXT (or stdin with `-` or no TEXT), as JSON.

    One JSON object for one patient; a JSON list when the text describes several
    ("Patient 1 … Patient 2 …"). Fields not found are null; `evidence` holds the span each
    field came from.
    """
    from extract.facts import extract_facts, facts_for_panel

    if panel is not None and not re.fullmatch(r"[A-Za-z]", panel):
        raise click.UsageError(f"--panel takes one letter (A, B, …), not {panel!r}")
    if case_file is not None and panel is None:
        raise click.UsageError("--case-text needs --panel")
    if text is None or text == "-":
        text = _text_of(sys.stdin.buffer.read(), "-")
    if panel:
        case_text = _text_of(case_file.read(), case_file.name) if case_file else ""
        emit_json(facts_for_panel(text, panel, case_text).to_dict())
        return
    found = extract_facts(text)
    emit_json(found[0].to_dict() if len(found) == 1 else [f.to_dict() for f in found])


def _text_of(data: bytes, name: str) -> str:
    """Bytes read as UTF-8 text; binary input (NULs, or mostly undecodable or control bytes) is
    refused rather than searched for facts."""
    head = data[:8192]
    text = head.decode("utf-8", errors="replace")
    odd = sum(1 for c in text if c == "\ufffd" or (ord(c) < 32 and c not in "\t\n\r\f"))
    if b"\x00" in head or odd > 0.05 * max(1, len(text)):
        raise CxrbankError(f"{name}: binary input, not text")
    return data.decode("utf-8", errors="replace")


@click.command("imagetype")
@click.argument("files", nargs=-1, required=True,
                type=click.Path(path_type=Path))
@root_option
def imagetype_cmd(files: tuple[Path, ...], root: Path) -> None:
    """Classify each FILE as X-ray, CT or other: one JSON line per file.

    A file that cannot be read or decoded gets one `Error:` line on stderr; the others are
    still classified, and the exit status is 1.
    """
    from extract.imagetype import ImageTypeError, classify_file

    failed = False
    for path in files:
        try:
            kind, score = classify_file(path)
        except (ImageTypeError, OSError) as exc:
            say_error(f"{path}: {exc}")
            failed = True
            continue
        click.echo(json.dumps({"file": str(path), "type": kind, "score": round(score, 4)}))
    if failed:
        sys.exit(EXIT_PARTIAL)
