"""`cxrbank dedup`, `labels`, `relabel` in-process: output, --apply, --undo, logs and exit codes."""

from __future__ import annotations

import contextlib
import json

from click.testing import CliRunner

from cxrbank.cli import main
from cxrbank.collection import Collection, NewImage
from cxrbank.schema import blank_row
from tests.fixtures.dedup_images import TRANSFORMS, encoded, radiograph


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def build(tmp_path) -> Collection:
    """Six rows: a film copied across two ids of one Radiopaedia case, an exact copy, others."""
    collection = Collection.create(tmp_path / "col")
    film = radiograph(1)
    case = "Case courtesy of Dr X, Radiopaedia.org, rID: 13553"
    files = [
        ("big.png", encoded(film), {"patientid": "87", "sex": "F", "other_notes": case,
                                    "license": "CC BY-NC-SA"}),
        ("small.jpg", encoded(TRANSFORMS["resize"](film), "JPEG", 80),
         {"patientid": "462", "sex": "F", "other_notes": case, "license": "CC BY-NC-SA"}),
        ("462-later.png", encoded(radiograph(2)), {"patientid": "462", "offset": "6"}),
        ("twin-a.png", encoded(radiograph(3)), {"patientid": "5"}),
        ("twin-b.png", encoded(radiograph(3)), {"patientid": "5"}),
        ("alone.png", encoded(radiograph(4)), {"patientid": "6"}),
    ]
    rows = []
    for name, data, values in files:
        (collection.images_dir / name).write_bytes(data)
        rows.append({**blank_row(), "finding": "Pneumonia/Viral/COVID-19", "modality": "X-ray",
                     **values, "folder": "images", "filename": name})
    with collection.lock():
        collection.write_rows(rows)
    with contextlib.closing(collection.state()) as db:
        db.execute("INSERT INTO patients (key, patientid, created) VALUES"
                   " ('radiopaedia:rID:13553:b', '462', 'now')")
    return collection


def test_dedup_json_lists_groups_with_keep_drop_reason_patients(tmp_path):
    collection = build(tmp_path)
    result = run("dedup", "--json", "--root", str(collection.root))
    assert result.exit_code == 0, result.output
    groups = {g["keep"]: g for g in json.loads(result.output)["groups"]}
    assert set(groups) == {"big.png", "twin-a.png"}
    assert groups["big.png"]["drop"] == ["small.jpg"]
    assert groups["big.png"]["reason"].startswith("largest resolution")
    assert groups["big.png"]["patients"] == ["462", "87"]
    assert groups["big.png"]["relation"] == "alias"
    assert "rID:13553" in groups["big.png"]["relation_why"]
    assert groups["twin-a.png"]["kinds"] == ["exact"]


def test_dedup_text_report_names_each_group(tmp_path):
    collection = build(tmp_path)
    result = run("dedup", "--root", str(collection.root))
    assert result.exit_code == 0
    assert "keep big.png (largest resolution (320x360); near)" in result.output
    assert "  drop small.jpg" in result.output
    assert "2 duplicate groups, 2 rows to drop" in result.output


def test_apply_removes_rows_moves_files_merges_alias_and_blocks_readding(tmp_path):
    collection = build(tmp_path)
    small = (collection.images_dir / "small.jpg").read_bytes()
    result = run("dedup", "--apply", "--root", str(collection.root))
    assert result.exit_code == 0, result.output
    rows = collection.read_rows()
    assert [r["filename"] for r in rows] == ["big.png", "462-later.png", "twin-a.png", "alone.png"]
    assert all(collection.image_path(r).is_file() for r in rows)
    assert not (collection.images_dir / "small.jpg").exists()
    assert len(list((collection.state_dir / "removed").rglob("small.jpg"))) == 1
    assert {r["filename"]: r["patientid"] for r in rows}["462-later.png"] == "87"
    assert collection.patient_id("radiopaedia:rID:13553:b") == "87"
    added = collection.add_images([NewImage(small, "small-again.jpg", {"patientid": "9"})])
    assert added.added == [] and "removed earlier" in added.skipped[0][1]


def test_undo_restores_rows_files_ids_and_state_exactly(tmp_path):
    collection = build(tmp_path)
    before = collection.metadata_path.read_bytes()
    run("dedup", "--apply", "--root", str(collection.root))
    result = run("dedup", "--undo", "last", "--root", str(collection.root))
    assert result.exit_code == 0, result.output
    assert collection.metadata_path.read_bytes() == before
    assert (collection.images_dir / "small.jpg").is_file()
    assert collection.removed_hashes() == set()
    assert collection.patient_id("radiopaedia:rID:13553:b") == "462"
    again = run("dedup", "--undo", "last", "--root", str(collection.root))
    assert again.exit_code == 1 and "no dedup --apply log left" in again.output


def test_undo_of_a_named_log_twice_is_refused(tmp_path):
    collection = build(tmp_path)
    applied = json.loads(run("dedup", "--apply", "--json", "--root", str(collection.root)).output)
    log = applied["applied"]["log"]
    assert run("dedup", "--undo", log, "--root", str(collection.root)).exit_code == 0
    result = run("dedup", "--undo", log, "--root", str(collection.root))
    assert result.exit_code == 1 and "already undone" in result.output


def test_apply_and_undo_together_is_a_usage_error(tmp_path):
    collection = build(tmp_path)
    result = run("dedup", "--apply", "--undo", "last", "--root", str(collection.root))
    assert result.exit_code == 2


def test_dedup_outside_a_collection_is_one_error_line(tmp_path):
    result = run("dedup", "--root", str(tmp_path))
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1


def test_labels_json_counts_labels_and_flags_values_to_fix(tmp_path):
    collection = build(tmp_path)
    with collection.editing() as rows:
        rows[5]["finding"] = "Pneumonia/Viral/Herpes "
    result = run("labels", "--json", "--root", str(collection.root))
    out = json.loads(result.output)
    assert out["labels"]["Pneumonia"] == 6 and out["labels"]["COVID-19"] == 5
    assert out["labels"]["Herpes"] == 1
    fixes = [f for f in out["findings"] if f["problem"]]
    assert fixes == [{"value": "Pneumonia/Viral/Herpes ", "count": 1,
                      "canonical": "Pneumonia/Viral/Herpes", "problem": "stray whitespace"}]


def test_relabel_fixes_the_trailing_space_and_logs_it(tmp_path):
    collection = build(tmp_path)
    with collection.editing() as rows:
        rows[5]["finding"] = "Pneumonia/Viral/Herpes "
    result = run("relabel", "Pneumonia/Viral/Herpes ", "Pneumonia/Viral/Herpes",
                 "--root", str(collection.root))
    assert result.exit_code == 0, result.output
    assert "1 rows" in result.output
    assert collection.read_rows()[5]["finding"] == "Pneumonia/Viral/Herpes"
    assert (collection.state_dir / "logs" / "relabel.jsonl").read_text().count("\n") == 1
    labels = json.loads(run("labels", "--json", "--root", str(collection.root)).output)
    assert all(not f["problem"] for f in labels["findings"])


def test_relabel_with_where_and_failures(tmp_path):
    collection = build(tmp_path)
    root = str(collection.root)
    result = run("relabel", "Pneumonia/Viral/COVID-19", "Pneumonia/Viral/SARS", "--where",
                 "patientid=5", "--json", "--root", root)
    assert json.loads(result.output)["changed"] == [
        "twin-a.png", "twin-b.png"]
    assert run("relabel", "Nothing here", "No Finding", "--root", root).exit_code == 1
    assert run("relabel", "todo", "Martian flu", "--root", root).exit_code == 2
    assert run("relabel", "todo", "No Finding", "--where", "nocolumn=1", "--root", root).exit_code == 2
    before = collection.read_rows()
    for blank in ("", "  "):
        for extra in ((), ("--allow-new",)):
            result = run("relabel", "Pneumonia/Viral/COVID-19", blank, *extra, "--root", root)
            assert result.exit_code == 2 and "blank" in result.output
    assert collection.read_rows() == before


def test_apply_drops_a_copy_but_keeps_conflicting_patient_ids_apart(tmp_path):
    collection = build(tmp_path)
    with collection.editing() as rows:
        rows[4]["patientid"], rows[4]["sex"], rows[3]["sex"] = "8", "M", "F"
    out = json.loads(run("dedup", "--apply", "--json", "--root", str(collection.root)).output)
    assert out["applied"]["ids_to_review"] == ["twin-a.png"]
    kept = {r["filename"]: r["patientid"] for r in collection.read_rows()}
    assert "twin-b.png" not in kept and kept["twin-a.png"] == "5"
    assert "8" not in kept.values()


def _files(collection: Collection) -> set[str]:
    return {p.name for p in collection.images_dir.iterdir()}


def _interrupted_apply(collection: Collection, monkeypatch, target: object, name: str) -> None:
    """`dedup --apply` stopped by Ctrl-C where `target.name` is first called."""
    import curation.dedup_apply as dedup_apply
    from curation.dedup import find_duplicates

    def interrupted(*args):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(target if target is not None else dedup_apply, name, interrupted)
        with contextlib.suppress(KeyboardInterrupt), collection.lock():
            dedup_apply.apply_report(collection, find_duplicates(collection))


def test_apply_interrupted_while_moving_files_is_finished_by_the_next_apply(tmp_path, monkeypatch):
    collection = build(tmp_path)
    before = collection.metadata_path.read_bytes()
    _interrupted_apply(collection, monkeypatch, None, "_sha")
    rows = {r["filename"] for r in collection.read_rows()}
    assert rows < _files(collection)  # rows gone, a file not yet moved aside
    result = run("dedup", "--apply", "--root", str(collection.root))
    assert result.exit_code == 0, result.output
    assert "interrupted apply finished" in result.output
    assert "applied: nothing to do" in result.output
    assert _files(collection) == rows
    assert len(list(collection.state_dir.joinpath("logs").glob("dedup-*.jsonl"))) == 1
    assert run("dedup", "--undo", "last", "--root", str(collection.root)).exit_code == 0
    assert collection.metadata_path.read_bytes() == before


def test_apply_interrupted_before_rows_were_written_is_closed_and_redone(tmp_path, monkeypatch):
    collection = build(tmp_path)
    before = collection.metadata_path.read_bytes()
    _interrupted_apply(collection, monkeypatch, collection, "write_rows")
    assert collection.metadata_path.read_bytes() == before
    result = run("dedup", "--apply", "--root", str(collection.root))
    assert "interrupted before any change" in result.output
    assert len(collection.read_rows()) == 4
    assert run("dedup", "--undo", "last", "--root", str(collection.root)).exit_code == 0
    assert collection.metadata_path.read_bytes() == before


def test_interrupted_apply_merges_an_alias_whose_rows_were_all_dropped(tmp_path, monkeypatch):
    collection = build(tmp_path)
    with collection.editing() as rows:  # patient 462 is then only the dropped copy
        rows[:] = [r for r in rows if r["filename"] != "462-later.png"]
    (collection.images_dir / "462-later.png").unlink()
    _interrupted_apply(collection, monkeypatch, None, "_sha")
    assert run("dedup", "--apply", "--root", str(collection.root)).exit_code == 0
    assert collection.patient_id("radiopaedia:rID:13553:b") == "87"


def test_a_log_line_torn_by_a_crash_does_not_block_later_applies(tmp_path, monkeypatch):
    collection = build(tmp_path)
    before = collection.metadata_path.read_bytes()
    _interrupted_apply(collection, monkeypatch, collection, "write_rows")
    log = next(collection.state_dir.joinpath("logs").glob("dedup-*.jsonl"))
    with open(log, "a", encoding="utf-8") as handle:
        handle.write('{"op": "drop", "ind')
    assert run("dedup", "--apply", "--root", str(collection.root)).exit_code == 0
    assert run("dedup", "--undo", "last", "--root", str(collection.root)).exit_code == 0
    assert collection.metadata_path.read_bytes() == before

