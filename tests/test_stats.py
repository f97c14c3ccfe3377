"""`cxrbank stats`: upstream's label table and the counts users know."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from curation.stats import label_table
from cxrbank.cli import main
from tests.fixtures.upstream import make_upstream_checkout


def test_label_table_counts_like_torchxrayvision() -> None:
    rows = [{"finding": f} for f in ("Pneumonia/Viral/COVID-19", "Pneumonia/Viral/SARS",
                                     "No Finding", "todo")]
    assert label_table(rows) == {
        "COVID-19": {0: 2, 1: 1}, "No Finding": {0: 2, 1: 1}, "Pneumonia": {0: 1, 1: 2},
        "SARS": {0: 2, 1: 1}, "Viral": {0: 1, 1: 2},
    }


def test_stats_command_prints_the_table_and_counts(tmp_path: Path) -> None:
    src = make_upstream_checkout(tmp_path / "src")
    runner = CliRunner()
    runner.invoke(main, ["import", str(src), "--root", str(tmp_path / "c")])
    text = runner.invoke(main, ["stats", "--root", str(tmp_path / "c")]).stdout
    assert text.startswith("8 images of 7 patients (1 not yet reviewed)")
    assert "'COVID-19': {0: 4, 1: 3}" in text
    stats = json.loads(runner.invoke(main, ["stats", "--root", str(tmp_path / "c"), "--json"]).stdout)
    assert stats["modality"] == {"X-ray": 7, "CT": 1}
    assert stats["labels"]["Pneumonia"] == {"0": 1, "1": 6}
    assert stats["patients"] == 7
