"""Damaged or hostile collections: every reader ends with one `Error:` line or reports the rows."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from cxrbank.cli import main
from cxrbank.collection import Collection, read_csv_rows
from tests.fixtures.upstream import make_upstream_checkout


def imported(tmp_path: Path) -> Collection:
    src = make_upstream_checkout(tmp_path / "src", "newest")
    CliRunner().invoke(main, ["import", str(src), "--root", str(tmp_path / "c")])
    return Collection.open(tmp_path / "c")


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("Error:")]


def assert_one_error(result, *fragments: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    lines = error_lines(result.output)
    assert len(lines) == 1, result.output
    for fragment in fragments:
        assert fragment in lines[0]


def test_binary_metadata_is_one_error_line_for_every_reader(tmp_path: Path) -> None:
    root = tmp_path / "x"
    root.mkdir()
    (root / "metadata.csv").write_bytes(b"patientid,finding\n\xb0\xff\x00garbage\n")
    for command in ("validate", "stats", "labels"):
        result = run(command, "--root", str(root))
        assert_one_error(result, "metadata.csv: not UTF-8 (byte 0xb0 at offset 18, line 2)")


def test_one_latin1_character_names_its_byte_and_line(tmp_path: Path) -> None:
    collection = imported(tmp_path)
    text = collection.metadata_path.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    lines[2] = "caf\u00e9" + lines[2]
    data = "".join(lines).encode("latin-1")
    collection.metadata_path.write_bytes(data)
    offset = data.index("\u00e9".encode("latin-1"))
    result = run("validate", "--root", str(collection.root))
    assert_one_error(result, f"byte 0xe9 at offset {offset}, line 3")


def test_import_of_a_latin1_checkout_is_refused_with_nothing_copied(tmp_path: Path) -> None:
    src = make_upstream_checkout(tmp_path / "src", "newest")
    text = (src / "metadata.csv").read_text(encoding="utf-8")
    (src / "metadata.csv").write_bytes(text.replace("COVID-19", "COVID-19 \u00e9", 1).encode("cp1252"))
    result = run("import", str(src), "--root", str(tmp_path / "c"))
    assert_one_error(result, "not UTF-8")
    assert list((tmp_path / "c" / "images").iterdir()) == []


def test_a_field_over_csv_default_limit_is_read(tmp_path: Path) -> None:
    collection = imported(tmp_path)
    with collection.editing() as rows:
        rows[0]["clinical_notes"] = "A" * 2_000_000
    assert read_csv_rows(collection.metadata_path)[1][0]["clinical_notes"] == "A" * 2_000_000
    result = run("validate", "--root", str(collection.root), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["errors"] == 0


def test_a_field_beyond_16_mb_is_one_error_line(tmp_path: Path) -> None:
    root = tmp_path / "x"
    root.mkdir()
    (root / "metadata.csv").write_text("patientid,clinical_notes\n1," + "A" * (17 << 20) + "\n")
    result = run("stats", "--root", str(root))
    assert_one_error(result, "line 2: not readable as CSV (field larger than field limit")


def test_extra_values_and_short_header_are_reported_plainly(tmp_path: Path) -> None:
    collection = imported(tmp_path)
    lines = collection.metadata_path.read_text().splitlines()
    lines[2] += ",extra,fields"
    collection.metadata_path.write_text("\n".join(lines) + "\n")
    result = run("validate", "--root", str(collection.root), "--json")
    problems = [f"{p['row']} {p['message']}" for p in json.loads(result.stdout)["problems"]]
    assert result.exit_code == 1
    assert any(p.startswith("2 39 values but the header has 37 columns") for p in problems)

    header = lines[0].split(",")
    short = [",".join(header[:10])] + [",".join(line.split(",")[:10]) for line in lines[1:]]
    collection.metadata_path.write_text("\n".join(short) + "\n")
    report = json.loads(run("validate", "--root", str(collection.root), "--json").stdout)
    missing = {p["column"] for p in report["problems"] if "provenance column missing" in p["message"]}
    assert "in_icu" not in missing and "sha256" in missing
    assert any("missing in_icu" in p["message"] for p in report["problems"])
