"""The real client of metadata.csv: torchxrayvision's COVID19_Dataset loads a cxrbank collection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cxrbank.cli import main
from cxrbank.collection import Collection
from tests.fixtures.upstream import make_upstream_checkout

xrv = pytest.importorskip("torchxrayvision", reason="torchxrayvision is in the dev extra")


def test_covid19_dataset_reads_a_cxrbank_collection(tmp_path: Path) -> None:
    src = make_upstream_checkout(tmp_path / "src", "2020")
    CliRunner().invoke(main, ["import", str(src), "--root", str(tmp_path / "c")])
    collection = Collection.open(tmp_path / "c")
    dataset = xrv.datasets.COVID19_Dataset(
        imgpath=str(collection.images_dir), csvpath=str(collection.metadata_path),
        views=["PA", "AP", "AP Supine"],
    )
    # PA/AP rows that are reviewed: case00 (COVID), case01 (COVID, AP Supine), case02 (Strep),
    # case06 (COVID), case07 (Herpes); case04 has no view, case05 is todo, case03 is CT.
    assert len(dataset) == 5
    assert "COVID-19" in dataset.pathologies and "Streptococcus" in dataset.pathologies
    covid = dataset.pathologies.index("COVID-19")
    by_file = dict(zip(dataset.csv["filename"], dataset.labels[:, covid], strict=True))
    assert by_file == {"case00.jpg": 1.0, "case01.png": 1.0, "case02.jpg": 0.0,
                       "case06.jpg": 1.0, "case07.png": 0.0}
    sample = dataset[0]
    assert sample["img"].shape[0] == 1 and np.isfinite(sample["img"]).all()
