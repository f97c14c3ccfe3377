"""Rows of a paper's chest panels: facts read per panel, modality from the image and the text."""

from __future__ import annotations

from crawler.paper_rows import Paper, chest_panels
from extract.records import Figure

CAPTION = ("Figure 3. Axial CT image (left) and lateral radiograph (right) of a 42-year-old "
           "woman with COVID-19 on day 5.")


def _figure(panel: str, panel_caption: str) -> Figure:
    return Figure(page=1, bbox=(0, 0, 10, 10), label="Figure 3", panel=panel, caption=CAPTION,
                  panel_caption=panel_caption, image=panel.encode(), width=10, height=10,
                  method="split")


def test_panels_named_by_position_get_their_own_modality_and_view() -> None:
    figures = [_figure("A", "Axial CT image"), _figure("B", "lateral radiograph")]
    types = {b"A": ("CT", 0.95), b"B": ("X-ray", 0.97)}
    result = chest_panels(Paper(key="10.1000/x", doi="10.1000/x"), figures, "",
                          classify=lambda data: types[data])
    rows = {panel.row["figure"]: panel.row for panel in result.panels}
    assert [(r["modality"], r["view"]) for r in rows.values()] == [("CT", "Axial"), ("X-ray", "L")]
    assert {(r["age"], r["sex"], r["offset"], r["finding"]) for r in rows.values()} == {
        ("42", "F", "5", "Pneumonia/Viral/COVID-19")}


def test_panel_the_classifier_rejects_makes_no_row() -> None:
    figures = [_figure("A", "Axial CT image"), _figure("B", "lateral radiograph")]
    result = chest_panels(Paper(key="10.1000/x"), figures, "",
                          classify=lambda data: ("other", 0.9) if data == b"A" else ("X-ray", 0.9))
    assert [panel.row["view"] for panel in result.panels] == ["L"]
