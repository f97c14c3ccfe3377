"""The collection on disk: one writer, atomic writes, stable patient ids."""

from __future__ import annotations

import csv
import io
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from cxrbank.collection import (
    Collection,
    CollectionError,
    NewImage,
    safe_stem,
    sniff_image_extension,
)
from cxrbank.schema import COLUMNS


def png_bytes(seed: int, size: tuple[int, int] = (16, 12)) -> bytes:
    image = Image.new("L", size, color=seed % 256)
    image.putpixel((seed % size[0], 0), 255 - seed % 256)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def test_create_writes_a_header_only_metadata_csv(tmp_path: Path) -> None:
    collection = Collection.create(tmp_path / "c")
    header = collection.metadata_path.read_text().splitlines()
    assert header == [",".join(COLUMNS)]
    assert collection.read_rows() == []


def test_open_refuses_a_folder_without_metadata(tmp_path: Path) -> None:
    with pytest.raises(CollectionError, match="not a collection"):
        Collection.open(tmp_path)


def test_add_images_writes_file_then_row_with_provenance(tmp_path: Path) -> None:
    collection = Collection.create(tmp_path)
    result = collection.add_images([NewImage(png_bytes(1), "../../etc/passwd.jpg",
                                             {"patientid": "1", "finding": "todo"})])
    (row,) = result.added
    assert row["filename"] == "passwd.png"  # extension from the content, name sanitised
    assert (tmp_path / "images" / "passwd.png").read_bytes() == png_bytes(1)
    assert (row["width"], row["height"]) == ("16", "12")
    assert len(row["sha256"]) == 64
    assert collection.read_rows()[0]["filename"] == "passwd.png"


def test_same_bytes_twice_are_skipped_not_duplicated(tmp_path: Path) -> None:
    collection = Collection.create(tmp_path)
    collection.add_images([NewImage(png_bytes(2), "a", {"patientid": "1"})])
    result = collection.add_images([NewImage(png_bytes(2), "b", {"patientid": "1"})])
    assert result.added == []
    assert result.skipped == [("b", "already in the collection as a.png")]
    assert len(collection.read_rows()) == 1


def test_non_image_bytes_are_skipped_with_a_reason(tmp_path: Path) -> None:
    collection = Collection.create(tmp_path)
    result = collection.add_images([NewImage(b"<html>", "x.png", {})])
    assert result.skipped == [("x.png", "not an image file")]
    assert not any((tmp_path / "images").iterdir())


def test_write_rows_refuses_a_row_pointing_at_a_missing_file(tmp_path: Path) -> None:
    collection = Collection.create(tmp_path)
    before = collection.metadata_path.read_bytes()
    with pytest.raises(CollectionError, match="missing file"), collection.lock():
        collection.write_rows([{"filename": "ghost.png", "folder": "images"}])
    assert collection.metadata_path.read_bytes() == before


def test_patient_ids_are_stable_and_never_reused(tmp_path: Path) -> None:
    collection = Collection.create(tmp_path)
    first = collection.patient_id("radiopaedia:75526")
    second = collection.patient_id("doi:10.1/x:patient 1")
    assert first != second
    assert collection.patient_id("radiopaedia:75526") == first
    assert Collection.open(tmp_path).patient_id("doi:10.1/x:patient 1") == second


def test_new_patient_ids_continue_after_ids_in_metadata(tmp_path: Path) -> None:
    collection = Collection.create(tmp_path)
    collection.add_images([NewImage(png_bytes(3), "a", {"patientid": "41"})])
    assert collection.patient_id("new") == "42"


def test_sniff_and_safe_stem() -> None:
    assert sniff_image_extension(png_bytes(0)) == ".png"
    assert sniff_image_extension(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == ".webp"
    assert sniff_image_extension(b"%PDF-1.7") is None
    assert safe_stem("../a b/c?.JPG") == "c"
    assert safe_stem("") == "image"


def _writer(root: str, start: int, count: int) -> None:
    collection = Collection(root)
    for i in range(start, start + count):
        collection.add_images([NewImage(png_bytes(i, (20, 20 + i % 7)), f"w{i}", {"patientid": str(i)})])


def test_two_concurrent_writers_never_lose_a_row(tmp_path: Path) -> None:
    Collection.create(tmp_path)
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_writer, args=(str(tmp_path), s, 15)) for s in (0, 100)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    rows = Collection.open(tmp_path).read_rows()
    assert sorted(int(r["patientid"]) for r in rows) == [*range(15), *range(100, 115)]


REWRITER = """
import sys
from cxrbank.collection import Collection
collection = Collection(sys.argv[1])
flip = 0
print("ready", flush=True)
while True:
    with collection.lock():
        rows = collection.read_rows()
        for row in rows:
            row["clinical_notes"] = ("note %d " % flip) * 5
        collection.write_rows(rows)
    flip += 1
"""


def test_kill_9_during_writes_leaves_a_complete_metadata_csv(tmp_path: Path) -> None:
    collection = Collection.create(tmp_path)
    (tmp_path / "images" / "x.png").write_bytes(png_bytes(0))
    rows = [{"patientid": str(i), "finding": "todo", "folder": "images", "filename": "x.png",
             "modality": "X-ray"} for i in range(10_000)]
    with collection.lock():
        collection.write_rows(rows)
    for delay in (0.3, 0.55, 0.8):
        process = subprocess.Popen([sys.executable, "-c", REWRITER, str(tmp_path)],
                                   stdout=subprocess.PIPE)
        assert process.stdout is not None
        process.stdout.readline()
        time.sleep(delay)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        with open(collection.metadata_path, newline="") as handle:
            parsed = list(csv.DictReader(handle))
        assert len(parsed) == 10_000
        notes = {row["clinical_notes"] for row in parsed}
        assert len(notes) == 1  # all old or all new, never a mix
    leftovers = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert len(leftovers) <= 1  # at most the temp file of the write that was killed
