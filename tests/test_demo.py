"""`cxrbank demo`: the whole loop offline, leaving a valid collection, a release, a checkpoint and a card."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cxrbank.cli import main

pytest.importorskip("torch", reason="the demo trains a model (train extra)")


def test_demo_runs_every_stage_and_leaves_its_artefacts(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = CliRunner().invoke(main, ["demo", "--out", str(out), "--epochs", "2", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["failed"] == []
    assert report["stages"][0]["name"] == "ingest the issue's DOIs"
    for name, path in report["artefacts"].items():
        assert Path(path).is_file(), name
    rows = (out / "collection" / "metadata.csv").read_text().splitlines()
    assert len(rows) > 20
    assert "No Finding" in "\n".join(rows) and "Pneumonia/Viral/COVID-19" in "\n".join(rows)
    manifest = json.loads((out / "collection" / "releases" / "v0.1" / "manifest.json").read_text())
    assert manifest["split_hash"]
    card = (out / "runs" / "tiny" / "best-test.model-card.md").read_text()
    assert "v0.1" in card and "DeGrave" in card
    validate = CliRunner().invoke(main, ["validate", "--root", str(out / "collection")])
    assert validate.exit_code == 0, validate.output


def test_demo_refuses_a_folder_that_is_not_its_own(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    result = CliRunner().invoke(main, ["demo", "--out", str(tmp_path)])
    assert result.exit_code == 1 and "is not a demo folder" in result.output
    assert (tmp_path / "precious.txt").read_text() == "keep me"
