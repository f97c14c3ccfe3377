"""extract.captions: caption starts, whole captions, panel parts and layout pairing."""

from __future__ import annotations

import pymupdf
import pytest

from extract.captions import caption_parts, find_captions, pair_captions, parse_caption_start
from extract.records import Region


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("Figure 1. Chest radiograph", "Figure 1"),
        ("Fig. 2: Axial CT", "Figure 2"),
        ("FIGURE 3 Lateral view", "Figure 3"),
        ("Fig 1 Chest radiograph", "Figure 1"),
        ("Fig 12. CT", "Figure 12"),
        ("Supplementary Figure S2. Extra views", "Supplementary Figure S2"),
        ("Figure S3: Extra", "Supplementary Figure S3"),
        ("Figura 4. Radiografía de tórax", "Figure 4"),
        ("Abb. 5: Röntgenthorax", "Figure 5"),
        ("Рис. 6. Рентгенограмма", "Figure 6"),
        ("Figure 7-27. Stainless steel nut.", "Figure 7-27"),
        ("Figure 2", "Figure 2"),
    ],
)
def test_caption_start_forms(text, label):
    assert parse_caption_start(text)[0] == label


@pytest.mark.parametrize(
    "text",
    ["Figure 1 shows bilateral opacities", "Figures are available online", "Figurehead 2.",
     "Configure 1.", "Table 1. Patient data", "Fig 1a"],
)
def test_running_text_and_other_labels_are_not_caption_starts(text):
    assert parse_caption_start(text) is None


def test_fig_1_never_matches_fig_12():
    assert parse_caption_start("Fig 12. CT")[1] == "12"


def test_bold_label_without_delimiter_starts_a_caption():
    assert parse_caption_start("Figure 1 chest radiograph", bold=True)[0] == "Figure 1"
    assert parse_caption_start("Figure 1 chest radiograph") is None


@pytest.mark.parametrize(
    ("caption", "shared", "parts"),
    [
        ("Figure 1. Imaging. (A) PA radiograph. (B) Axial CT.", "Figure 1. Imaging.",
         {"A": "PA radiograph", "B": "Axial CT"}),
        ("Figure 1. Imaging. a, PA radiograph. b, Axial CT.", "Figure 1. Imaging.",
         {"A": "PA radiograph", "B": "Axial CT"}),
        ("Figure 5. Left: PA radiograph. Right: axial CT.", None,
         {"A": "PA radiograph", "B": "axial CT"}),
        ("Figure 5. Day 3 radiograph (left) and day 7 radiograph (right).", None,
         {"A": "Day 3 radiograph", "B": "day 7 radiograph"}),
        ("Figure 9. Chest radiograph (A) on day 1; (B) on day 4; (C) on day 9.",
         "Figure 9. Chest radiograph", {"A": "on day 1", "B": "on day 4", "C": "on day 9"}),
    ],
)
def test_caption_parts_per_panel(caption, shared, parts):
    got_shared, got = caption_parts(caption)
    assert got == parts
    assert got_shared == (caption if shared is None else shared)


def test_caption_without_panels_has_no_parts():
    assert caption_parts("Figure 2. Axial CT image (arrow) shows a nodule.") == (
        "Figure 2. Axial CT image (arrow) shows a nodule.", {})


def _page_dict(lines: list[tuple[float, str, str]]) -> dict:
    doc = pymupdf.open()
    page = doc.new_page()
    for y, text, font in lines:
        page.insert_text((72, y), text, fontsize=9, fontname=font)
    return page.get_text("dict")


def test_multi_line_caption_taken_to_its_block_end():
    page = _page_dict([
        (300, "Figure 1. Posteroanterior chest radiograph shows bilateral", "helv"),
        (311, "ground-glass opacities in the lower zones.", "helv"),
        (340, "The patient was discharged on day 12 after full recovery of", "helv"),
    ])
    (cap,) = find_captions(page, 1)
    assert cap.text == ("Figure 1. Posteroanterior chest radiograph shows bilateral "
                        "ground-glass opacities in the lower zones.")
    assert cap.label == "Figure 1" and cap.page == 1


def test_label_set_as_its_own_block_joins_the_caption_text():
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_textbox((72, 300, 120, 320), "Figure 3.", fontsize=10, fontname="hebo")
    page.insert_textbox((122, 301, 540, 340), "Axial CT image shows crazy paving in both lower "
                        "lobes.", fontsize=8)
    page.insert_text((72, 420), "Unrelated body text that follows much further down.")
    (cap,) = find_captions(page.get_text("dict"), 1)
    assert cap.text == "Figure 3. Axial CT image shows crazy paving in both lower lobes."


def test_two_captions_in_one_block_are_split():
    page = _page_dict([
        (300, "Figure 1. Radiograph on admission.", "helv"),
        (311, "Figure 2. CT on day 3.", "helv"),
    ])
    assert [c.text for c in find_captions(page, 1)] == [
        "Figure 1. Radiograph on admission.", "Figure 2. CT on day 3."]


def _cap(box, label="Figure 1"):
    from extract.records import Caption

    return Caption(1, box, label, label[-1], label)


def test_pairs_caption_below_not_previous_caption_above():
    regions = [Region((72, 200, 300, 400), "image")]
    caps = [_cap((72, 180, 300, 195), "Figure 1"), _cap((72, 405, 300, 420), "Figure 2")]
    body = [(72, 120, 540, 178)]
    assert pair_captions(regions, caps, body) == [1]


def test_pairs_caption_above_when_body_text_blocks_below():
    regions = [Region((72, 200, 300, 400), "image")]
    caps = [_cap((72, 180, 300, 195), "Figure 1"), _cap((72, 480, 300, 495), "Figure 2")]
    body = [(72, 410, 540, 470)]
    assert pair_captions(regions, caps, body) == [0]


def test_two_figures_side_by_side_get_their_own_captions():
    regions = [Region((54, 100, 290, 300), "image"), Region((322, 100, 558, 300), "image")]
    caps = [_cap((54, 306, 290, 330), "Figure 6"), _cap((322, 306, 558, 330), "Figure 7")]
    assert pair_captions(regions, caps, []) == [0, 1]


def test_spanning_caption_below_two_panels_pairs_both():
    regions = [Region((54, 100, 290, 300), "image"), Region((300, 100, 540, 300), "image")]
    caps = [_cap((54, 306, 558, 330), "Figure 2")]
    assert pair_captions(regions, caps, []) == [0, 0]


def test_caption_beside_figure():
    regions = [Region((54, 100, 254, 300), "image")]
    caps = [_cap((268, 100, 558, 130), "Figure 6")]
    assert pair_captions(regions, caps, [(54, 320, 558, 400)]) == [0]


def test_top_row_of_a_grid_follows_the_grid_to_its_caption():
    regions = [Region((54, 100, 250, 250), "image"), Region((54, 258, 250, 400), "image")]
    caps = [_cap((54, 70, 558, 92), "Figure 1"), _cap((54, 406, 558, 420), "Figure 2")]
    assert pair_captions(regions, caps, [(54, 30, 558, 68)]) == [1, 1]


def test_short_caption_under_the_left_panel_still_claims_the_right_one():
    regions = [Region((72, 72, 272, 294), "image"), Region((290, 72, 490, 294), "image")]
    caps = [_cap((72, 302, 260, 312), "Figure 1")]
    assert pair_captions(regions, caps, []) == [0, 0]


def test_figure_across_both_columns_with_a_one_column_caption():
    regions = [Region((54, 570, 300, 740), "image"), Region((330, 570, 558, 740), "image")]
    caps = [_cap((54, 746, 290, 770), "Figure 3")]
    assert pair_captions(regions, caps, [(322, 450, 558, 560)]) == [0, 0]
