"""`cxrbank release`: frozen, verifiable releases whose changelog says exactly what changed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from curation.release import changelog, licence_flags
from cxrbank.cli import main
from cxrbank.collection import Collection
from tests.fixtures.upstream import make_upstream_checkout


def collection_at(tmp_path: Path) -> Collection:
    src = make_upstream_checkout(tmp_path / "src", "newest")
    CliRunner().invoke(main, ["import", str(src), "--root", str(tmp_path / "c")])
    collection = Collection.open(tmp_path / "c")
    with collection.editing() as rows:
        for row in rows:  # a clean collection: fix the fixture's deliberate licence gaps
            row["license"] = row["license"] or "CC BY-NC-ND 4.0"
    return collection


def release(collection: Collection, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["release", *args, "--root", str(collection.root)])
    return result.exit_code, result.output


def test_release_writes_manifest_snapshot_and_changelog(tmp_path: Path) -> None:
    collection = collection_at(tmp_path)
    code, output = release(collection, "v0.1")
    assert code == 0, output
    folder = collection.root / "releases" / "v0.1"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["rows"] == 8 and manifest["previous"] is None
    paths = {entry["path"] for entry in manifest["files"]}
    assert "metadata.csv" in paths and "images/case00.jpg" in paths
    assert manifest["labels"]["COVID-19"] == {"0": 4, "1": 3}
    assert (folder / "metadata.csv").read_bytes() == collection.metadata_path.read_bytes()
    text = (folder / "CHANGELOG.md").read_text()
    assert "## Rows added: 8" in text
    assert "CC BY-NC-ND 4.0: 3 rows — no derivatives (ND)" in text


def test_second_release_changelog_says_exactly_the_one_change(tmp_path: Path) -> None:
    collection = collection_at(tmp_path)
    release(collection, "v0.1")
    with collection.editing() as rows:
        rows[2]["finding"] = "Pneumonia/Bacterial/Klebsiella"
    code, _ = release(collection, "v0.2")
    assert code == 0
    text = (collection.root / "releases" / "v0.2" / "CHANGELOG.md").read_text()
    assert "since v0.1" in text
    assert "## Rows added: 0" in text and "## Rows removed: 0" in text
    assert "## Rows relabelled: 1\n- case02.jpg: Pneumonia/Bacterial/Streptococcus -> " \
           "Pneumonia/Bacterial/Klebsiella\n" in text


def test_verify_catches_a_modified_image_and_a_release_never_changes(tmp_path: Path) -> None:
    collection = collection_at(tmp_path)
    release(collection, "v0.1")
    assert release(collection, "v0.1", "--verify")[0] == 0
    with collection.editing() as rows:  # later work on the collection does not break v0.1
        rows[0]["clinical_notes"] = "edited after the release"
    assert release(collection, "v0.1", "--verify")[0] == 0
    (collection.images_dir / "case01.png").write_bytes(b"tampered")
    code, output = release(collection, "v0.1", "--verify")
    assert code == 1
    assert "Error: images/case01.png: modified (sha256 differs from the manifest)" in output
    code, output = release(collection, "v0.1")
    assert code == 1 and "exists already" in output


def test_bad_version_and_invalid_collection_are_refused(tmp_path: Path) -> None:
    collection = collection_at(tmp_path)
    code, output = release(collection, "../../etc")
    assert code == 2 and "is not a release name" in output
    (collection.images_dir / "case00.jpg").unlink()
    code, output = release(collection, "v1")
    assert code == 1 and "validation errors" in output
    assert not (collection.root / "releases" / "v1").exists()


def test_licence_flags_and_changelog_from_nothing() -> None:
    assert licence_flags("CC BY-NC-SA 4.0") == ["non-commercial (NC)"]
    assert licence_flags("CC BY 4.0") == []
    assert licence_flags("") == ["no licence stated"]
    text = changelog("v1", None, [], [])
    assert "first release" in text and "- none" in text


def test_release_with_a_bad_name_is_a_usage_error_saying_what_a_name_may_contain(
        tmp_path: Path) -> None:
    collection = collection_at(tmp_path)
    for bad in ("../x", "v0.1/../../y", "", "latest"):
        code, output = release(collection, bad)
        assert code == 2, output
        errors = [line for line in output.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1 and "is not a release name: digits separated by dots" in errors[0]
        assert "Traceback" not in output
    assert not (collection.root / "releases").exists()
    assert not (tmp_path / "x").exists()


def test_an_interrupted_release_leaves_no_trace_that_blocks_the_next(
        tmp_path: Path, monkeypatch) -> None:
    import curation.release as releases

    collection = collection_at(tmp_path)

    def killed(*args: object, **kwargs: object) -> str:
        raise KeyboardInterrupt("killed while writing CHANGELOG.md")

    with monkeypatch.context() as patch:
        patch.setattr(releases, "changelog", killed)
        with pytest.raises(KeyboardInterrupt):
            releases.make_release(collection, "v1")
    assert (collection.root / "releases" / ".v1.partial" / "manifest.json").is_file()
    assert releases.list_releases(collection) == []
    code, output = release(collection, "v1")
    assert code == 0, output
    code, output = release(collection, "v1.1")
    assert code == 0, output
    assert sorted(p.name for p in (collection.root / "releases").iterdir()) == ["v1", "v1.1"]
    manifest = json.loads((collection.root / "releases" / "v1.1" / "manifest.json").read_text())
    assert manifest["previous"] == "v1"


def test_release_is_refused_while_a_patient_spans_partitions(tmp_path: Path) -> None:
    from tests.fixtures.twoclass_cxr import make_twoclass_collection

    collection = make_twoclass_collection(tmp_path / "c", per_class=6)
    placed = dict(line.split("\t")[:3:2] for line in
                  (tmp_path / "c" / "splits" / "partition.tsv").read_text().splitlines()[1:])
    with collection.editing() as rows:
        test_row = next(r for r in rows if placed[r["filename"]] == "test")
        train_row = next(r for r in rows if placed[r["filename"]] == "train")
        test_row["patientid"] = train_row["patientid"]
    code, output = release(collection, "v1")
    assert code == 1
    assert (f"Error: 1 patient(s) span several partitions in splits/partition.tsv (first: "
            f"{train_row['patientid']} in test, train; ids changed or merged since the split): "
            "run `cxrbank split` first") in output
