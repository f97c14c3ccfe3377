"""Damaged or hostile collections: every reader ends with one `Error:` line or reports the rows."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from cxrbank.cli import main
from cxrbank.collection import Collection, read_csv_rows, rows_to_csv
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


def licensed(tmp_path: Path) -> Collection:
    collection = imported(tmp_path)
    with collection.editing() as rows:
        for row in rows:
            row["license"] = row["license"] or "CC BY 4.0"
    return collection


def validate_errors(collection: Collection) -> list[str]:
    result = run("validate", "--root", str(collection.root), "--json")
    return [f"{p['row']} {p['column']} {p['message']}" for p in json.loads(result.stdout)["problems"]
            if p["level"] == "error"]


def set_row(collection: Collection, index: int, **values: str) -> None:
    rows = collection.read_rows()
    rows[index].update(values)
    with collection.lock():
        collection.metadata_path.write_bytes(rows_to_csv(rows))  # no file checks: hostile rows


def test_rows_pointing_outside_the_collection_fail_validate_and_release(tmp_path: Path) -> None:
    collection = licensed(tmp_path)
    assert validate_errors(collection) == []
    other = tmp_path / "other" / "images"
    other.mkdir(parents=True)
    name = collection.read_rows()[1]["filename"]
    (collection.images_dir / name).rename(other / name)
    set_row(collection, 0, folder="/etc", filename="hostname")
    set_row(collection, 1, folder="../other/images")
    errors = validate_errors(collection)
    assert "1 folder /etc/hostname resolves outside the collection" in errors
    assert f"2 folder ../other/images/{name} resolves outside the collection" in errors
    result = run("release", "v1", "--root", str(collection.root))
    assert_one_error(result, "validation errors")
    assert not (collection.root / "releases" / "v1").exists()


def test_a_symlink_escaping_the_collection_is_an_error(tmp_path: Path) -> None:
    collection = licensed(tmp_path)
    row = collection.read_rows()[2]
    outside = tmp_path / "secret.jpg"
    (collection.images_dir / row["filename"]).rename(outside)
    (collection.images_dir / row["filename"]).symlink_to(outside)
    errors = validate_errors(collection)
    assert f"3 folder images/{row['filename']} resolves outside the collection" in errors


def test_damaged_images_fail_validate_and_release(tmp_path: Path) -> None:
    collection = licensed(tmp_path)
    rows = collection.read_rows()
    (collection.images_dir / rows[0]["filename"]).write_bytes(b"garbage, not an image")
    (collection.images_dir / rows[1]["filename"]).write_bytes(b"")
    with open(collection.images_dir / rows[2]["filename"], "ab") as handle:
        handle.write(b"\x00")
    errors = validate_errors(collection)
    assert any(e.startswith("1 sha256 images/") for e in errors)
    assert any(e.startswith("1 filename images/") and "not a readable image" in e for e in errors)
    assert f"2 filename images/{rows[1]['filename']} is empty (0 bytes)" in errors
    assert any(e.startswith("3 sha256 images/") and "does not match" in e for e in errors)
    assert not any(e.startswith("3 filename") for e in errors)  # one byte more still opens
    result = run("release", "v1", "--root", str(collection.root))
    assert_one_error(result, "validation errors")


def test_a_corrupt_manifest_is_one_error_line_for_verify_and_the_next_release(tmp_path: Path) -> None:
    collection = licensed(tmp_path)
    assert run("release", "v0.1", "--root", str(collection.root)).exit_code == 0
    (collection.root / "releases" / "v0.1" / "manifest.json").write_text("{bad\n")
    result = run("release", "v0.1", "--verify", "--root", str(collection.root))
    assert_one_error(result, "releases/v0.1/manifest.json: not valid JSON")
    result = run("release", "v0.3", "--root", str(collection.root))
    assert_one_error(result, "releases/v0.1/manifest.json: not valid JSON")
    assert not (collection.root / "releases" / "v0.3").exists()


def test_release_refuses_a_split_that_misses_rows(tmp_path: Path) -> None:
    collection = licensed(tmp_path)
    rows = collection.read_rows()
    (collection.root / "splits").mkdir()
    lines = ["filename\tpatientid\tpartition\tfold"]
    lines += [f"{r['filename']}\t{r['patientid']}\ttrain\t0" for r in rows[:-2]]
    (collection.root / "splits" / "partition.tsv").write_text("\n".join(lines) + "\n")
    result = run("release", "v0.2", "--root", str(collection.root))
    assert_one_error(result, f"2 of {len(rows)} rows are not in splits/partition.tsv",
                     "run `cxrbank split` first")
    assert not (collection.root / "releases" / "v0.2").exists()
    lines += [f"{r['filename']}\t{r['patientid']}\ttest\t1" for r in rows[-2:]]
    (collection.root / "splits" / "partition.tsv").write_text("\n".join(lines) + "\n")
    result = run("release", "v0.2", "--root", str(collection.root))
    assert result.exit_code == 0, result.output


def test_release_refuses_a_split_that_a_later_id_merge_made_leak(tmp_path: Path) -> None:
    collection = licensed(tmp_path)
    rows = collection.read_rows()
    (collection.root / "splits").mkdir()
    lines = ["filename\tpatientid\tpartition\tfold"]
    lines += [f"{r['filename']}\t{r['patientid']}\t{'test' if i == 0 else 'train'}\t0"
              for i, r in enumerate(rows)]
    (collection.root / "splits" / "partition.tsv").write_text("\n".join(lines) + "\n")
    with collection.editing() as edited:  # dedup merged two ids after the split
        edited[0]["patientid"] = edited[1]["patientid"]
    result = run("release", "v0.5", "--root", str(collection.root))
    assert_one_error(result, "patient(s) span several partitions", "run `cxrbank split` first")


def test_release_accepts_a_split_of_one_modality(tmp_path: Path) -> None:
    collection = licensed(tmp_path)
    with collection.editing() as rows:
        rows[0]["modality"], rows[0]["view"] = "CT", "Axial"
    patients = len({r["patientid"] for r in collection.read_rows()[1:]})
    result = run("split", "--modality", "X-ray", "--folds", str(min(patients, 5)), "--ratios",
                 "60,20,20" if min(patients, 5) == 5 else "1,1,1", "--root", str(collection.root))
    assert result.exit_code == 0, result.output
    result = run("release", "v0.4", "--root", str(collection.root))
    assert result.exit_code == 0, result.output


def hostile_checkout(tmp_path: Path) -> Path:
    """An upstream checkout with a row outside it, and a filename used twice (first one missing)."""
    import csv  # noqa: PLC0415

    src = make_upstream_checkout(tmp_path / "src", "newest")
    with open(src / "metadata.csv", encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        header, rows = list(reader.fieldnames or []), list(reader)
    escaping = {**rows[0], "folder": "/etc", "filename": "folderx.jpg"}
    (tmp_path / "folderx.jpg").write_bytes((src / "images" / rows[0]["filename"]).read_bytes())
    twice = {**rows[1], "folder": "elsewhere"}  # same filename as rows[1], image not there
    rows = [rows[0], twice, *rows[1:4], escaping, *rows[4:]]
    escaping["folder"] = str(tmp_path)
    with open(src / "metadata.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    return src


def test_import_reports_rows_outside_the_checkout_and_imports_the_rest(tmp_path: Path) -> None:
    src = hostile_checkout(tmp_path)
    root = tmp_path / "c"
    result = run("import", str(src), "--root", str(root))
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert "row 6: image " in result.output and "folderx.jpg lies outside the checkout; not imported" \
        in result.output
    assert "row 2: image elsewhere/" in result.output
    assert "row 3: filename" in result.output and "also used by row 2; not imported" in result.output
    rows = Collection.open(root).read_rows()
    assert len(rows) == 7 and "folderx.jpg" not in {r["filename"] for r in rows}
    assert sorted(p.name for p in (root / "images").iterdir()) == sorted(r["filename"] for r in rows)
    assert run("validate", "--root", str(root)).exit_code == 0


def test_a_second_identical_import_reports_the_same_rows_and_exit_status(tmp_path: Path) -> None:
    src = hostile_checkout(tmp_path)
    root = tmp_path / "c"
    first = run("import", str(src), "--root", str(root))
    second = run("import", str(src), "--root", str(root))
    assert first.exit_code == second.exit_code == 1
    problems = [line for line in first.output.splitlines() if line.startswith("row ") and "not imported" in line]
    assert problems and all(line in second.output for line in problems)
    assert "(7 already present, 3 not imported)" in second.output
