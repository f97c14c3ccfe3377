"""extract.captionpairs.pair_captions: one caption per figure when captions sit above figures."""

from __future__ import annotations

import io
import itertools
import random

import numpy as np
import pymupdf
from PIL import Image

from extract.captionpairs import _min_cost_matching, pair_captions
from extract.pdf import extract_figures
from extract.records import Caption, Region


def _cap(box, label):
    return Caption(1, box, label, label.split()[-1], f"{label}. text")


def test_captions_above_two_stacked_figures_pair_one_to_one():
    regions = [Region((150, 76, 450, 376), "image"), Region((150, 401, 450, 701), "image")]
    caps = [_cap((150, 60, 450, 70), "Figure 1"), _cap((150, 385, 450, 395), "Figure 2")]
    assert pair_captions(regions, caps, []) == [0, 1]


def test_captions_above_three_stacked_figures_pair_in_a_chain():
    regions = [Region((150, 76, 450, 226), "image"), Region((150, 251, 450, 401), "image"),
               Region((150, 426, 450, 576), "image")]
    caps = [_cap((150, 60, 450, 70), "Figure 1"), _cap((150, 235, 450, 245), "Figure 2"),
            _cap((150, 410, 450, 420), "Figure 3")]
    assert pair_captions(regions, caps, []) == [0, 1, 2]


def test_two_rows_of_one_figure_keep_their_caption_below():
    # rows 25 pt apart (two clusters), caption below; a caption above is cut off by body text
    regions = [Region((72, 300, 300, 400), "image"), Region((72, 425, 300, 525), "image")]
    caps = [_cap((72, 60, 300, 70), "Figure 1"), _cap((72, 531, 300, 541), "Figure 2")]
    assert pair_captions(regions, caps, [(72, 80, 540, 280)]) == [1, 1]


def test_an_unpaired_table_caption_takes_no_image():
    regions = [Region((72, 300, 300, 400), "image"), Region((72, 425, 300, 525), "image")]
    caps = [_cap((72, 531, 300, 541), "Figure 1"), Caption(1, (72, 160, 300, 170), "Table", "", "")]
    assert pair_captions(regions, caps, []) == [0, 0]


def _jpeg(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    arr = rng.integers(40, 200, (256, 256), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def test_pdf_with_captions_above_figures_keeps_both_captions():
    doc = pymupdf.open()
    page = doc.new_page()
    y = 60
    texts = ["Chest radiograph on admission shows right lower lobe consolidation.",
             "Axial CT on day 6 shows bilateral ground-glass opacities."]
    for k, text in enumerate(texts, start=1):
        page.insert_text((150, y + 8), f"Figure {k}. {text}", fontname="helv", fontsize=8)
        y += 16
        page.insert_image(pymupdf.Rect(150, y, 450, y + 300), stream=_jpeg(k))
        y += 309
    figures = extract_figures(doc.tobytes())
    assert [(f.label, f.caption) for f in figures] == [
        ("Figure 1", f"Figure 1. {texts[0]}"), ("Figure 2", f"Figure 2. {texts[1]}")]


def _best(cost):
    """(pairs, total) of the best matching by brute force: most pairs, then least cost."""
    rows, cols = len(cost), len(cost[0])
    for k in range(min(rows, cols), 0, -1):
        totals = [
            sum(cost[r][c] for r, c in zip(rs, cs, strict=True))
            for rs in itertools.combinations(range(rows), k)
            for cs in itertools.permutations(range(cols), k)
            if all(cost[r][c] is not None for r, c in zip(rs, cs, strict=True))
        ]
        if totals:
            return k, min(totals)
    return 0, 0


def test_matching_pairs_the_most_captions_at_the_least_distance():
    rng = random.Random(7)
    for _ in range(200):
        rows, cols = rng.randint(1, 4), rng.randint(1, 4)
        cost = [[None if rng.random() < 0.4 else rng.randint(0, 100) for _ in range(cols)]
                for _ in range(rows)]
        got = _min_cost_matching(cost)
        assert len(set(got.values())) == len(got)
        assert (len(got), sum(cost[r][c] for r, c in got.items())) == _best(cost)
