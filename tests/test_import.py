"""`cxrbank import`: upstream checkouts of either layout into a collection, nothing dropped silently."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cxrbank.cli import main
from cxrbank.collection import Collection
from tests.fixtures.upstream import CASES, make_upstream_checkout


@pytest.mark.parametrize("layout", ["2020", "newest"])
def test_import_maps_findings_views_and_fills_provenance(tmp_path: Path, layout: str) -> None:
    src = make_upstream_checkout(tmp_path / "src", layout, trailing_comma=True)
    result = CliRunner().invoke(main, ["import", str(src), "--root", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    rows = Collection.open(tmp_path / "c").read_rows()
    assert len(rows) == len(CASES)
    by_file = {row["filename"]: row for row in rows}
    assert by_file["case00.jpg"]["finding"] == "Pneumonia/Viral/COVID-19"
    assert by_file["case02.jpg"]["finding"] == "Pneumonia/Bacterial/Streptococcus"
    assert by_file["case07.png"]["finding"] == "Pneumonia/Viral/Herpes"  # trailing space gone
    assert by_file["case01.png"]["view"] == "AP Supine"
    assert by_file["case04.jpg"]["view"] == ""  # "?" means unknown
    assert by_file["case00.jpg"]["age"] == "65"
    assert by_file["case00.jpg"]["source"] == "paper"
    assert all(len(row["sha256"]) == 64 and row["width"] == "64" for row in rows)
    assert "" not in Collection.open(tmp_path / "c").header()  # the trailing-comma column dropped
    if layout == "2020":
        assert "upstream finding: COVID-19, ARDS" in by_file["case06.jpg"]["other_notes"]


def test_import_reports_rows_it_cannot_map(tmp_path: Path) -> None:
    src = make_upstream_checkout(tmp_path / "src")
    (src / "images" / "case03.png").unlink()
    text = (src / "metadata.csv").read_text().replace(",Streptococcus,", ",Scurvy,")
    (src / "metadata.csv").write_text(text)
    result = CliRunner().invoke(main, ["import", str(src), "--root", str(tmp_path / "c"), "--json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["imported"] == len(CASES) - 1
    assert any("case03.png is missing" in p for p in report["problems"])
    assert any("'Scurvy' is not in the taxonomy" in p for p in report["problems"])
    rows = Collection.open(tmp_path / "c").read_rows()
    scurvy = next(r for r in rows if r["filename"] == "case02.jpg")
    assert scurvy["finding"] == "todo" and "upstream finding: Scurvy" in scurvy["other_notes"]


def test_import_twice_adds_nothing_the_second_time(tmp_path: Path) -> None:
    src = make_upstream_checkout(tmp_path / "src")
    runner = CliRunner()
    runner.invoke(main, ["import", str(src), "--root", str(tmp_path / "c")])
    result = runner.invoke(main, ["import", str(src), "--root", str(tmp_path / "c"), "--link"])
    assert result.exit_code == 0
    assert "imported 0 rows" in result.stdout
    assert len(Collection.open(tmp_path / "c").read_rows()) == len(CASES)


def test_import_of_a_folder_that_is_not_a_checkout_is_one_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["import", str(tmp_path), "--root", str(tmp_path / "c")])
    assert result.exit_code == 1
    assert result.output.strip().startswith("Error:") and "no metadata.csv" in result.output


@pytest.mark.realdata
def test_import_of_the_real_cxr_dev_slice(tmp_path: Path, shared_data: Path) -> None:
    result = CliRunner().invoke(main, ["import", str(shared_data / "cxr-dev"), "--root",
                                       str(tmp_path), "--link", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["imported"] == 245
    rows = Collection.open(tmp_path).read_rows()
    assert {row["modality"] for row in rows} == {"X-ray", "CT"}
    assert all(row["finding"].startswith(("Pneumonia", "No Finding", "todo", "ARDS")) for row in rows)
    radiopaedia = [row for row in rows if row["source"] == "radiopaedia"]
    assert radiopaedia and all(row["source_id"].isdigit() for row in radiopaedia if "rID" in row["other_notes"])


def test_import_stopped_after_metadata_was_replaced_keeps_the_files_its_rows_name(
        tmp_path: Path, monkeypatch) -> None:
    import cxrbank.collection as collection_module
    from cxrbank.upstream import import_upstream

    src = make_upstream_checkout(tmp_path / "src")
    collection = Collection.create(tmp_path / "c")
    real = collection_module.fsync_dir

    def interrupted(folder: Path) -> None:
        if folder == collection.root:  # metadata.csv's folder, right after the rename
            raise KeyboardInterrupt
        real(folder)

    monkeypatch.setattr(collection_module, "fsync_dir", interrupted)
    with pytest.raises(KeyboardInterrupt):
        import_upstream(src, collection)
    monkeypatch.undo()
    rows = collection.read_rows()
    assert rows and all(collection.image_path(row).is_file() for row in rows)


def test_import_never_overwrites_or_deletes_a_file_already_in_images(tmp_path: Path,
                                                                     monkeypatch) -> None:
    from cxrbank.upstream import import_upstream

    src = make_upstream_checkout(tmp_path / "src")
    collection = Collection.create(tmp_path / "c")
    mine = collection.images_dir / "case00.jpg"
    mine.write_bytes(b"mine, not in any row")

    def full(rows) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(collection, "write_rows", full)
    with pytest.raises(OSError):
        import_upstream(src, collection)
    assert mine.read_bytes() == b"mine, not in any row"
    assert sorted(p.name for p in collection.images_dir.iterdir()) == ["case00.jpg"]
    monkeypatch.undo()
    report = import_upstream(src, collection)
    assert mine.read_bytes() == b"mine, not in any row"
    assert any("images/case00.jpg is already there without a row" in p for p in report.problems)
