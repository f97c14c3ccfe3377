"""Which file a JATS graphic uses when several files share its name: one lookup for both
`figures --jats` and `ingest --jats`."""

from __future__ import annotations

import csv
import io
import json

from PIL import Image

from extract.jats import best_graphic, graphic_files
from tests.fixtures.casereport import encode, radiograph_array
from tests.fixtures.cli import run

XML = ('<?xml version="1.0"?><article xmlns:xlink="http://www.w3.org/1999/xlink"><body>'
       '<p>A 60-year-old man with COVID-19 pneumonia.</p>'
       '<fig id="f1"><label>Figure 1</label><caption><p>Chest radiograph on admission.</p>'
       '</caption><graphic xlink:href="figs/case.g001"/></fig></body></article>')


def _encode(arr, fmt: str, size: tuple[int, int] | None = None) -> bytes:
    im = Image.fromarray(arr)
    if size:
        im = im.resize(size)
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    return buf.getvalue()


def _folder(tmp_path):
    arr = radiograph_array(7)
    (tmp_path / "article.nxml").write_text(XML)
    (tmp_path / "case.g001.gif").write_bytes(_encode(arr, "GIF", (100, 100)))
    (tmp_path / "case.g001.jpg").write_bytes(encode(arr))
    (tmp_path / "case.g001.tif").write_bytes(_encode(arr, "TIFF"))
    return arr


def test_largest_lossless_file_wins_over_jpeg_and_gif_thumbnail():
    arr = radiograph_array(7)
    gif, jpg = _encode(arr, "GIF", (100, 100)), encode(arr)
    png, tif = _encode(arr, "PNG"), _encode(arr, "TIFF")
    assert best_graphic([gif, jpg]) == jpg
    assert best_graphic([gif, jpg, png]) == png
    assert best_graphic([jpg, png, tif, gif]) == tif
    assert best_graphic([tif[:200], jpg]) == jpg  # a damaged file is passed over
    assert best_graphic([_encode(arr, "GIF"), jpg]) == jpg  # same size: gif last


def test_graphic_files_finds_the_name_with_any_extension_beside_the_article(tmp_path):
    _folder(tmp_path)
    (tmp_path / "other.jpg").write_bytes(encode(radiograph_array(8)))
    images = graphic_files(tmp_path, ["figs/case.g001", "missing"])
    assert list(images) == ["figs/case.g001"]
    assert images["figs/case.g001"][:4] in (b"II*\x00", b"MM\x00*")


def test_figures_and_ingest_both_take_the_tiff_not_the_thumbnail(tmp_path):
    arr = _folder(tmp_path)
    code, _, _ = run("figures", "--jats", str(tmp_path / "article.nxml"), "--out",
                     str(tmp_path / "out"))
    assert code == 0
    (record,) = json.loads((tmp_path / "out" / "figures.json").read_text())
    assert (record["width"], record["height"]) == (arr.shape[1], arr.shape[0])
    assert record["file"].endswith(".tif")
    code, _, _ = run("ingest", "--jats", str(tmp_path / "article.nxml"), "--root",
                     str(tmp_path / "col"))
    assert code == 0
    (row,) = csv.DictReader((tmp_path / "col" / "metadata.csv").open())
    assert (row["width"], row["height"]) == (str(arr.shape[1]), str(arr.shape[0]))
    assert row["filename"].endswith((".tif", ".tiff"))
