"""The decoded-image cache after a crash: a torn index line never maps images to other pixels."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

import models.data as data
from tests.fixtures.twoclass_cxr import make_twoclass_collection


def test_a_torn_index_line_is_cut_off_and_every_image_keeps_its_own_pixels(tmp_path):
    collection = make_twoclass_collection(tmp_path / "c", per_class=2)
    files = [(collection.image_path(r), r["sha256"]) for r in collection.read_rows()[:4]]
    data.ensure_cached(files[:2], tmp_path / "cache", 32)
    index = tmp_path / "cache" / "32px" / "index.txt"
    index.write_bytes(index.read_bytes()[:-30])  # power lost while the last line was written
    for _ in range(2):  # the run after the crash, and the one after that
        result = data.ensure_cached(files, tmp_path / "cache", 32)
        for (path, _), slot in zip(files, result.slots, strict=True):
            np.testing.assert_array_equal(result.pixels[slot], data.decode_image(path, 32))
    assert result.decoded == 0
    lines = index.read_bytes().split(b"\n")
    assert lines[-1] == b"" and [len(line) for line in lines[:-1]] == [64] * 4
    assert (tmp_path / "cache" / "32px" / "pixels.u8").stat().st_size == 4 * 32 * 32


def test_index_lines_beyond_the_pixels_or_not_hashes_are_not_trusted(tmp_path):
    collection = make_twoclass_collection(tmp_path / "c", per_class=2)
    files = [(collection.image_path(r), r["sha256"]) for r in collection.read_rows()[:3]]
    data.ensure_cached(files[:2], tmp_path / "cache", 32)
    index = tmp_path / "cache" / "32px" / "index.txt"
    index.write_bytes(index.read_bytes() + files[2][1].encode() + b"\n")  # no pixels for it
    result = data.ensure_cached(files, tmp_path / "cache", 32)
    assert result.decoded == 1 and result.slots == [0, 1, 2]
    np.testing.assert_array_equal(result.pixels[2], data.decode_image(files[2][0], 32))
    index.write_bytes(b"garbage\n" + index.read_bytes())
    result = data.ensure_cached(files, tmp_path / "cache", 32)
    assert result.decoded == 3 and result.slots == [0, 1, 2]
    np.testing.assert_array_equal(result.pixels[1], data.decode_image(files[1][0], 32))
