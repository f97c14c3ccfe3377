"""extract.captions.caption_parts: trailing panel letters, letter marks, grouped marks."""

from __future__ import annotations

import pymupdf
import pytest

from extract.captions import caption_parts, parse_caption_start
from extract.pdf import extract_figures
from tests.fixtures.casereport import composite_array, encode

TRAILING = ("Figure 1. Posteroanterior chest radiograph (A) and axial CT image (B) of a "
            "62-year-old woman with COVID-19 pneumonia on day 4.")


@pytest.mark.parametrize(
    ("caption", "parts"),
    [
        (TRAILING, {"A": "Posteroanterior chest radiograph", "B": "axial CT image"}),
        ("Figure 2. Initial chest radiograph (a) and follow-up radiograph (b)",
         {"A": "Initial chest radiograph", "B": "follow-up radiograph"}),
        ("Figure 3. A 45-year-old man. Chest radiograph (A), CT (B); MRI (C) on day 3.",
         {"A": "Chest radiograph", "B": "CT", "C": "MRI"}),
        ("Figure 4. Chest radiographs (A) and (B) show bilateral opacities.",
         {"A": "Chest radiographs", "B": "Chest radiographs"}),
        ("Figure 5. Radiographs (A, B) and CT (C) of a 45-year-old man.",
         {"A": "Radiographs", "B": "Radiographs", "C": "CT"}),
        ("Figure 6. Axial (a,b), coronal (c,d) and sagittal (e) CT images show patchy "
         "opacities.", {"A": "Axial", "B": "Axial", "C": "coronal", "D": "coronal",
                        "E": "sagittal"}),
        ("Figure 7. Radiographs of a 30-year-old man (a-c). The first one shows clear lungs "
         "(a). Two days later opacities appeared (b). They cleared by day 9 (c).",
         {"A": "The first one shows clear lungs", "B": "Two days later opacities appeared",
          "C": "They cleared by day 9"}),
    ],
)
def test_marks_closing_their_clauses_take_the_text_before_them(caption, parts):
    assert caption_parts(caption) == (caption, parts)


@pytest.mark.parametrize(
    ("caption", "parts"),
    [
        ("Figure 1. A 40-year-old woman. Chest radiograph (A) shows clear lungs. Axial CT (B) "
         "shows ground-glass opacities in the right lower lobe.",
         {"A": "Chest radiograph shows clear lungs",
          "B": "Axial CT shows ground-glass opacities in the right lower lobe"}),
        ("Figure 2. Chest radiograph(A)shows bilateral opacities, and CT(B)shows consolidation.",
         {"A": "Chest radiograph shows bilateral opacities", "B": "CT shows consolidation"}),
    ],
)
def test_one_mark_inside_each_clause_gives_the_panel_its_clause(caption, parts):
    assert caption_parts(caption) == (caption, parts)


def test_summary_groups_give_way_to_one_mark_per_panel():
    caption = ("Figure 3. Patient 1 (A, B) and patient 2 (C, D). (A) Radiograph on day 2. (B) CT "
               "on day 3. (C) Radiograph on day 1. (D) CT on day 7.")
    assert caption_parts(caption)[1] == {"A": "Radiograph on day 2", "B": "CT on day 3",
                                         "C": "Radiograph on day 1", "D": "CT on day 7"}


def test_leading_marks_still_take_the_text_after_them():
    caption = "Figure 9. Chest radiograph (A) on day 1; (B) on day 4; (C) on day 9."
    assert caption_parts(caption)[1] == {"A": "on day 1", "B": "on day 4", "C": "on day 9"}


@pytest.mark.parametrize(
    ("caption", "shared", "parts"),
    [
        ("Fig. 1 a Chest radiograph on admission shows bilateral opacities. b Axial CT on day 3 "
         "shows ground-glass opacities", "Fig. 1",
         {"A": "Chest radiograph on admission shows bilateral opacities",
          "B": "Axial CT on day 3 shows ground-glass opacities"}),
        ("Fig. 2 a, Axial CT shows consolidation; b, chest radiograph on day 9 shows clearing.",
         "Fig. 2", {"A": "Axial CT shows consolidation",
                    "B": "chest radiograph on day 9 shows clearing"}),
        ("Figure 3. a) X-ray on day 1. b) CT on day 2.", "Figure 3.",
         {"A": "X-ray on day 1", "B": "CT on day 2"}),
        ("Figure 4. (A, B) Chest radiographs on days 1 and 3. (C) CT on day 5.", "Figure 4.",
         {"A": "Chest radiographs on days 1 and 3", "B": "Chest radiographs on days 1 and 3",
          "C": "CT on day 5"}),
        ("Figure 6. (A) and (B) Chest radiographs on days 1 and 3. (C) CT.", "Figure 6.",
         {"A": "Chest radiographs on days 1 and 3", "B": "Chest radiographs on days 1 and 3",
          "C": "CT"}),
        ("Figure 5. (A–C) Axial CT on days 1, 5 and 9. (D) Radiograph.", "Figure 5.",
         {"A": "Axial CT on days 1, 5 and 9", "B": "Axial CT on days 1, 5 and 9",
          "C": "Axial CT on days 1, 5 and 9", "D": "Radiograph"}),
    ],
)
def test_letter_marks_after_the_label_and_grouped_marks(caption, shared, parts):
    assert caption_parts(caption) == (shared, parts)


@pytest.mark.parametrize(
    ("caption", "parts"),
    [
        ("Figure 1. Upper left: PA radiograph. Upper right: lateral view. Lower left: axial "
         "CT. Lower right: coronal CT.",
         {"A": "PA radiograph", "B": "lateral view", "C": "axial CT", "D": "coronal CT"}),
        ("Figure 2. Top: CT day 1. Bottom-left: CT day 5. Bottom-right: X-ray.",
         {"A": "CT day 1", "B": "CT day 5", "C": "X-ray"}),
        ("Figure 3. CT (top) and radiograph (bottom).", {"A": "CT", "B": "radiograph"}),
    ],
)
def test_grid_positions_name_panels_in_reading_order(caption, parts):
    assert caption_parts(caption) == (caption, parts)


@pytest.mark.parametrize(
    "caption",
    [
        "Figure 2. Axial CT image (arrow) shows a nodule.",
        "Figure 2. Influenza (A) pneumonia in a 40-year-old man.",
        "Figure 3. Chest radiograph, i.e. a view b shows opacities. A CT was normal.",
        "Figure 4. Chest radiograph. A small effusion. B-lines were seen on ultrasound.",
        "Figure 5. Radiograph (A) of a 45-year-old man; clearing (C) on day 9.",
    ],
)
def test_captions_naming_no_panels_are_not_split(caption):
    assert caption_parts(caption) == (caption, {})


def test_fig_label_followed_by_a_first_panel_mark_starts_a_caption():
    assert parse_caption_start("Fig. 1 a Chest radiograph shows opacities.")[0] == "Figure 1"
    assert parse_caption_start("Fig. 2 a, Axial CT shows consolidation")[0] == "Figure 2"
    assert parse_caption_start("Figure 1 a shows the opacities") is None
    assert parse_caption_start("Figure 1 b Chest radiograph") is None


def _pdf(caption: str, label_bold: bool = False) -> bytes:
    arr, _ = composite_array(3, (1, 2))
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_image(pymupdf.Rect(72, 72, 540, 300), stream=encode(arr, "PNG"))
    page.insert_textbox(pymupdf.Rect(72, 306, 540, 350), caption, fontsize=8, fontname="helv")
    return doc.tobytes()


def test_trailing_letters_give_each_panel_its_own_text():
    figures = extract_figures(_pdf(TRAILING))
    assert [(f.panel, f.panel_caption) for f in figures] == [
        ("A", "Posteroanterior chest radiograph"), ("B", "axial CT image")]


def test_non_bold_fig_label_with_bare_letter_marks_is_found_and_split():
    figures = extract_figures(_pdf(
        "Fig. 1 a Chest radiograph shows bilateral opacities. b Axial CT shows ground-glass "
        "opacities."))
    assert [(f.label, f.panel, f.panel_caption) for f in figures] == [
        ("Figure 1", "A", "Chest radiograph shows bilateral opacities"),
        ("Figure 1", "B", "Axial CT shows ground-glass opacities")]


def test_panel_facts_read_the_same_parts_as_the_figure_extractor():
    from extract.facts import facts_for_panel

    a, b = (facts_for_panel(TRAILING, letter) for letter in "AB")
    assert (a.modality, a.view, b.modality, b.view) == ("X-ray", "PA", "CT", "Axial")
    assert (a.age, b.age, a.offset) == (62, 62, 4)


def test_marks_in_the_caption_do_not_cut_a_single_picture():
    from tests.fixtures.casereport import radiograph_array

    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_image(pymupdf.Rect(72, 72, 300, 300), stream=encode(radiograph_array(4), "PNG"))
    page.insert_textbox(pymupdf.Rect(72, 306, 540, 350), TRAILING, fontsize=8, fontname="helv")
    (figure,) = extract_figures(doc.tobytes())
    assert (figure.label, figure.panel, figure.caption) == ("Figure 1", None, TRAILING)


def test_a_very_long_caption_is_read_in_linear_time():
    import time

    start = time.monotonic()
    for caption in ("Figure 1. " + "Left: x (right). " * 10000,
                    "Figure 1. " + "It is a b c. a X (A) and (B), " * 10000):
        caption_parts(caption)
    assert time.monotonic() - start < 2.0


def test_grouped_trailing_marks_split_a_three_panel_figure():
    caption = "Figure 2. Radiographs (A, B) and CT (C) of a 45-year-old man."
    arr, _ = composite_array(5, (1, 3))
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_image(pymupdf.Rect(72, 72, 540, 230), stream=encode(arr, "PNG"))
    page.insert_textbox(pymupdf.Rect(72, 236, 540, 280), caption, fontsize=8, fontname="helv")
    figures = extract_figures(doc.tobytes())
    assert [(f.panel, f.panel_caption) for f in figures] == [
        ("A", "Radiographs"), ("B", "Radiographs"), ("C", "CT")]


def test_bold_label_run_then_bare_letter_marks_split():
    arr, _ = composite_array(6, (1, 2))
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_image(pymupdf.Rect(72, 72, 540, 300), stream=encode(arr, "PNG"))
    page.insert_text((72, 315), "Fig. 1", fontname="hebo", fontsize=8)
    page.insert_text((98, 315), "a Chest radiograph on admission. b Axial CT on day 3",
                     fontname="helv", fontsize=8)
    figures = extract_figures(doc.tobytes())
    assert [(f.label, f.panel, f.panel_caption) for f in figures] == [
        ("Figure 1", "A", "Chest radiograph on admission"),
        ("Figure 1", "B", "Axial CT on day 3")]
