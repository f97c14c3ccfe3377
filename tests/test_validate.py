"""`cxrbank validate`: each real problem one line with row and column, exit 1 on errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cxrbank.cli import main
from cxrbank.collection import Collection
from tests.fixtures.upstream import make_upstream_checkout


def imported(tmp_path: Path) -> Collection:
    src = make_upstream_checkout(tmp_path / "src", "newest")
    CliRunner().invoke(main, ["import", str(src), "--root", str(tmp_path / "c")])
    return Collection.open(tmp_path / "c")


def run_validate(collection: Collection, *args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(main, ["validate", "--root", str(collection.root), "--json", *args])
    return result.exit_code, json.loads(result.stdout)


def messages(report: dict) -> list[str]:
    return [f"{p['level']} {p['row']} {p['column']} {p['message']}" for p in report["problems"]]


def test_a_clean_import_has_no_errors_only_warnings(tmp_path: Path) -> None:
    code, report = run_validate(imported(tmp_path))
    assert code == 0
    assert report["errors"] == 0
    assert any("no licence stated" in m for m in messages(report))
    assert any("1 rows not yet reviewed" in m for m in messages(report))


def test_contradictory_sex_and_unknown_vocabulary_are_errors(tmp_path: Path) -> None:
    collection = imported(tmp_path)
    with collection.editing() as rows:
        rows[1]["sex"] = "F"  # patient 1 was M in row 1
        rows[2]["view"] = "Oblique"
        rows[3]["finding"] = "Scurvy"
        rows[4]["age"] = "sixty"
    code, report = run_validate(collection)
    assert code == 1
    found = messages(report)
    assert any(m.startswith("error 1 sex patient 1 has contradictory sex") for m in found)
    assert any(m.startswith("error 3 view 'Oblique'") for m in found)
    assert any(m.startswith("error 4 finding not in the taxonomy") for m in found)
    assert any(m.startswith("error 5 age 'sixty' is not a number") for m in found)


def test_implausible_clinical_values_are_named(tmp_path: Path) -> None:
    collection = imported(tmp_path)
    with collection.editing() as rows:
        rows[1]["pO2_saturation"] = "165"  # upstream's column also holds PaO2 in mmHg
        rows[2]["temperature"] = "100.8"  # Fahrenheit
        rows[3]["width"] = "0"
    code, report = run_validate(collection)
    found = messages(report)
    assert any(m.startswith("warning 2 pO2_saturation 165 is outside 0-100") for m in found)
    assert any(m.startswith("warning 3 temperature 100.8 is outside 30-45") for m in found)
    assert any(m.startswith("error 4 width 0 is outside") for m in found)
    assert code == 1


def test_missing_and_unreferenced_files_are_errors(tmp_path: Path) -> None:
    collection = imported(tmp_path)
    (collection.images_dir / "case00.jpg").unlink()
    (collection.images_dir / "stray.png").write_bytes(b"x")
    code, report = run_validate(collection)
    assert code == 1
    found = messages(report)
    assert any("file missing: images/case00.jpg" in m for m in found)
    assert any("images/stray.png is not referenced by any row" in m for m in found)


def test_pediatric_rows_follow_the_policy(tmp_path: Path) -> None:
    collection = imported(tmp_path)
    with collection.editing() as rows:
        rows[2]["age"] = "9"
    _, report = run_validate(collection)
    assert any("pediatric row (age 9)" in m for m in messages(report))
    _, report = run_validate(collection, "--allow-pediatric")
    assert not any("pediatric" in m for m in messages(report))


def test_one_patient_id_over_two_radiopaedia_cases_is_reported(tmp_path: Path) -> None:
    collection = imported(tmp_path)
    with collection.editing() as rows:
        for row, rid in ((rows[0], "111"), (rows[1], "222")):
            row["url"] = "https://radiopaedia.org/cases/x"
            row["other_notes"] = f"Case courtesy of Dr A, Radiopaedia.org, rID: {rid}"
    _, report = run_validate(collection)
    assert any("patient id 1 is used for different cases rID 111 (row 1), rID 222 (row 2)" in m
               for m in messages(report))


def test_human_output_is_one_line_per_problem_and_a_summary(tmp_path: Path) -> None:
    collection = imported(tmp_path)
    result = CliRunner().invoke(main, ["validate", "--root", str(collection.root)])
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == "8 rows: 0 errors, 4 warnings"
    assert all(line.startswith(("warning: ", "error: ")) for line in lines[:-1])


@pytest.mark.realdata
def test_real_upstream_slice_shows_its_known_defects(tmp_path: Path, shared_data: Path) -> None:
    CliRunner().invoke(main, ["import", str(shared_data / "cxr-dev"), "--root", str(tmp_path), "--link"])
    code, report = run_validate(Collection.open(tmp_path))
    assert code == 1
    found = messages(report)
    assert any("patient id 380 is used for different cases" in m for m in found)
    assert any("patient 380 has contradictory sex" in m for m in found)


def test_the_repository_metadata_csv_is_a_valid_collection() -> None:
    root = Path(__file__).resolve().parent.parent
    result = CliRunner().invoke(main, ["validate", "--root", str(root)])
    assert result.exit_code == 0, result.output


def test_unchanged_image_files_are_not_read_again_and_changed_ones_are(tmp_path: Path,
                                                                        monkeypatch) -> None:
    import os

    import curation.validate as validate

    collection = imported(tmp_path)
    with collection.editing() as rows:
        for row in rows:
            row["sha256"] = validate.file_sha256(collection.image_path(row))
    assert run_validate(collection)[1]["errors"] == 0
    hashed: list[str] = []
    real = validate.file_sha256
    monkeypatch.setattr(validate, "file_sha256", lambda path: hashed.append(path.name) or real(path))
    assert run_validate(collection)[1]["errors"] == 0
    assert hashed == []
    row = collection.read_rows()[0]
    path = collection.image_path(row)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # same size, other bytes, a later mtime
    path.write_bytes(bytes(data))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    found = messages(run_validate(collection)[1])
    assert hashed == [row["filename"]]
    assert any(m.startswith("error 1 sha256") for m in found)


def test_validate_does_not_hold_the_state_database_while_it_reads_files(tmp_path: Path) -> None:
    import contextlib as cl

    import curation.validate as validate

    collection = imported(tmp_path)
    row = collection.read_rows()[0]
    with validate.FileChecks(collection) as checks:
        checks.of(collection.image_path(row))
        with cl.closing(collection.state()) as other:  # a crawl binding a patient meanwhile
            other.execute("PRAGMA busy_timeout=100")
            other.execute("INSERT INTO patients (key, patientid, created) VALUES ('k', '99', 'now')")


def test_an_image_file_that_cannot_be_read_is_one_error(tmp_path: Path, monkeypatch) -> None:
    import curation.validate as validate

    collection = imported(tmp_path)
    name = collection.read_rows()[0]["filename"]

    def denied(path: Path) -> str:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(validate, "file_sha256", denied)
    code, report = run_validate(collection)
    assert code == 1
    assert any(m.startswith("error 1 filename") and "cannot be read (Permission denied)" in m
               for m in messages(report)), name
