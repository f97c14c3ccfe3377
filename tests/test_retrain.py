"""Retraining after each release: train on exactly a release's rows, compare two releases' models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cxrbank.cli import main
from cxrbank.collection import Collection

torch = pytest.importorskip("torch", reason="training needs the train extra")

from models.train import load_checkpoint  # noqa: E402
from tests.fixtures.torch_threads import one_torch_thread  # noqa: E402, F401
from tests.fixtures.twoclass_cxr import make_twoclass_collection  # noqa: E402


def cli(*args: str) -> dict:
    result = CliRunner().invoke(main, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


TRAIN = ("train", "--arch", "tiny", "--size", "32", "--epochs", "2", "--batch-size", "16",
         "--device", "cpu", "--labels", "COVID-19", "--no-augment")


def test_train_on_a_release_then_compare_two_releases(tmp_path: Path) -> None:
    root = tmp_path / "c"
    collection = make_twoclass_collection(root, per_class=12)
    cli("release", "v1", "--root", str(root))
    with collection.editing() as rows:  # after v1: one more unreviewed row becomes todo
        rows[0]["finding"] = "todo"
    cli("release", "v2", "--root", str(root))
    with collection.editing() as rows:  # the working collection moves on; releases do not
        for row in rows:
            row["finding"] = "todo"

    first = cli(*TRAIN, "--release", "v1", "--root", str(root), "--out", str(tmp_path / "v1"))
    second = cli(*TRAIN, "--release", "v2", "--root", str(root), "--out", str(tmp_path / "v2"))
    assert load_checkpoint(first["best_checkpoint"])["release"] == "v1"
    config = json.loads((tmp_path / "v2" / "run.json").read_text())
    assert config["release"] == "v2"
    assert config["split_hash"] == json.loads(
        (root / "releases" / "v2" / "manifest.json").read_text())["split_hash"]

    comparison = cli("evaluate", "--compare", first["best_checkpoint"], second["best_checkpoint"],
                     "--bootstrap", "0", "--root", str(root))
    assert comparison["release"] == "v2"
    assert comparison["old"]["release"] == "v1" and comparison["new"]["release"] == "v2"
    covid = comparison["labels"]["COVID-19"]
    assert covid["change"] == pytest.approx(covid["new_auc"] - covid["old_auc"])


def test_train_on_a_missing_release_is_one_error(tmp_path: Path) -> None:
    root = tmp_path / "c"
    make_twoclass_collection(root, per_class=4)
    result = CliRunner().invoke(main, [*TRAIN, "--release", "v9", "--root", str(root)])
    assert result.exit_code == 1
    assert result.output.strip().startswith("Error:") and "release v9" in result.output


def test_compare_leaves_out_the_old_models_training_patients_and_keeps_its_own_evaluation(
        tmp_path: Path) -> None:
    root = tmp_path / "c"
    make_twoclass_collection(root, per_class=12)
    cli("release", "v1", "--root", str(root))
    path = root / "splits" / "partition.tsv"
    lines = path.read_text().splitlines()
    moved = [line.split("\t")[0] for line in lines[1:] if "\ttrain\t" in line][:4]
    path.write_text("\n".join([lines[0]] + [
        line.replace("\ttrain\t", "\ttest\t") if line.split("\t")[0] in moved else line
        for line in lines[1:]]) + "\n")  # a new split: 4 of v1's training patients now test
    cli("release", "v2", "--root", str(root))
    old = cli(*TRAIN, "--release", "v1", "--root", str(root), "--out", str(tmp_path / "v1"))
    new = cli(*TRAIN, "--release", "v2", "--root", str(root), "--out", str(tmp_path / "v2"))
    own = cli("evaluate", old["best_checkpoint"], "--release", "v1", "--bootstrap", "0",
              "--root", str(root))
    own_file = tmp_path / "v1" / "best-test.metrics.json"
    own_bytes = own_file.read_bytes()
    assert own["evaluated_release"] == "v1" and own["excluded"] is None

    comparison = cli("evaluate", "--compare", old["best_checkpoint"], new["best_checkpoint"],
                     "--bootstrap", "0", "--root", str(root))
    assert comparison["excluded"] == {
        "rows": 4, "patients": 4,
        "why": "in the training or validation partition of release v1 (best.pt's)"}
    frontal = {r["filename"] for r in Collection.open(root).read_rows()
               if r["view"] in ("PA", "AP") and r["modality"] == "X-ray"}
    v2_test = {line.split("\t")[0] for line in (root / "releases" / "v2" / "partition.tsv")
               .read_text().splitlines() if "\ttest\t" in line}
    assert comparison["rows"] == len((v2_test & frontal) - set(moved)) > 0
    assert own_file.read_bytes() == own_bytes  # the old model's own evaluation is kept
    report = json.loads((tmp_path / "v1" / "best-test-compare-v2.metrics.json").read_text())
    assert report["release"] == "v1" and report["evaluated_release"] == "v2"
    assert report["excluded"]["rows"] == 4
    card = (tmp_path / "v1" / "best-test-compare-v2.model-card.md").read_text()
    assert "- Release: v1" in card and "- Evaluated on: release v2" in card
    assert "- Left out: 4 images of 4 patients in the training or validation partition" in card
    tested = json.loads((tmp_path / "v2" / "best-test-compare-v2.metrics.json").read_text())
    assert tested["rows"] == comparison["rows"]

    text = CliRunner().invoke(main, ["evaluate", "--compare", old["best_checkpoint"],
                                     new["best_checkpoint"], "--bootstrap", "0", "--root",
                                     str(root)]).output
    assert "left out 4 images of 4 patients in the training or validation partition of " \
           "release v1 (best.pt's)" in text
