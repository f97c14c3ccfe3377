"""Retraining after each release: train on exactly a release's rows, compare two releases' models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cxrbank.cli import main

torch = pytest.importorskip("torch", reason="training needs the train extra")

from models.train import load_checkpoint  # noqa: E402
from tests.fixtures.twoclass_cxr import make_twoclass_collection  # noqa: E402


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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
