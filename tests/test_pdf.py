"""extract.pdf: figures of generated case reports and of the real reference PDFs."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pymupdf
import pytest
from PIL import Image

from extract import pdf as pdfmod
from extract.pdf import PdfError, extract_figures, open_pdf, page_texts
from tests.fixtures.casereport import LAYOUTS, bad_pdfs, make_case_report_pdf

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "case-report.pdf"


def iou(a, b) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def match(figures, truth_figures):
    """(unmatched truth, unmatched found): a hit is same page, label, panel and IoU >= 0.8."""
    left = list(figures)
    missed = []
    for t in truth_figures:
        hit = next((f for f in left if f.page == t.page and f.label == t.label
                    and f.panel == t.panel and iou(f.bbox, t.bbox) >= 0.8), None)
        if hit is None:
            missed.append(t)
        else:
            left.remove(hit)
            assert hit.caption == t.caption
            assert hit.panel_caption == t.panel_caption
    return missed, left


@pytest.fixture(scope="module", params=LAYOUTS)
def report(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("pdf") / f"case-{request.param}.pdf"
    truth = make_case_report_pdf(path, layout=request.param, seed=5)
    return truth, path.read_bytes()


def test_every_generated_panel_found_with_its_caption_and_nothing_else(report):
    truth, data = report
    missed, extra = match(extract_figures(data), truth.figures)
    assert missed == [] and extra == []


def test_whole_figures_when_not_splitting_never_panels(report):
    truth, data = report
    figures = extract_figures(data, split_panels=False)
    assert all(f.panel is None for f in figures)
    missed, extra = match(figures, truth.whole_figures)
    assert missed == [] and extra == []


def test_single_embedded_jpeg_keeps_its_original_bytes(report):
    _, data = report
    doc = pymupdf.open(stream=data, filetype="pdf")
    originals = {doc.extract_image(x[0])["image"] for p in doc for x in p.get_images()}
    figure = next(f for f in extract_figures(data) if f.label == "Figure 1")
    assert figure.method == "embedded" and figure.extension == "jpg"
    assert figure.image in originals


@pytest.mark.parametrize("layout", ["one-column", "two-column"])
def test_figure_stored_as_strips_is_merged_into_one_image(layout, tmp_path):
    make_case_report_pdf(tmp_path / "case.pdf", layout=layout, seed=1)
    figures = extract_figures((tmp_path / "case.pdf").read_bytes())
    figure = next(f for f in figures if f.label == "Figure 3")
    assert figure.method == "merged" and figure.caption.startswith("Fig. 3: Portable")
    with Image.open(io.BytesIO(figure.image)) as im:
        assert im.format == "PNG" and abs(im.height - 320) <= 2


def test_vector_chart_is_rendered_with_its_axis_labels(report):
    truth, data = report
    expected = next(t for t in truth.figures if t.kind == "chart")
    figure = next(f for f in extract_figures(data) if f.label == expected.label)
    assert figure.method == "rendered" and iou(figure.bbox, expected.bbox) >= 0.8
    assert figure.width >= 3 * (figure.bbox[2] - figure.bbox[0])  # 300 dpi


def test_logo_repeated_on_every_page_is_not_a_figure(report):
    _, data = report
    assert all(f.bbox[1] > 50 for f in extract_figures(data))


def test_body_text_reference_is_not_taken_for_a_caption(report):
    _, data = report
    captions = {f.caption for f in extract_figures(data)}
    assert not any(c.startswith("Figure 2 shows") for c in captions)


def test_page_texts_give_the_case_text(report):
    _, data = report
    texts = page_texts(data)
    assert "RT-PCR" in texts[0] and len(texts) >= 3


@pytest.mark.parametrize("name", ["truncated", "encrypted", "zero-page", "garbage",
                                  "garbage-with-header", "bomb"])
def test_bad_pdf_gives_one_clear_error(name, report, monkeypatch):
    monkeypatch.setattr(pdfmod, "MAX_STREAM_BYTES", 8 * 2**20)
    bad = bad_pdfs(report[1], bomb_mb=16)[name]
    with pytest.raises(PdfError) as err:
        extract_figures(bad)
    message = str(err.value)
    assert "\n" not in message and len(message) < 200
    expected = {"truncated": "truncated", "encrypted": "encrypted", "zero-page": "no pages",
                "garbage": "not a PDF", "garbage-with-header": "unreadable", "bomb": "bomb"}
    assert expected[name] in message


def test_huge_declared_image_is_a_bomb():
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_image((72, 72, 200, 200), stream=_png(np.zeros((8, 8), np.uint8)))
    xref = page.get_images()[0][0]
    doc.xref_set_key(xref, "Width", "200000")
    doc.xref_set_key(xref, "Height", "200000")
    with pytest.raises(PdfError, match="bomb"):
        extract_figures(doc.tobytes())


def test_time_limit_stops_a_document(report):
    with pytest.raises(PdfError, match="time limit"):
        extract_figures(report[1], time_limit=0.0)


def _png(arr) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def test_image_placed_rotated_is_rendered_upright(tmp_path):
    doc = pymupdf.open()
    page = doc.new_page()
    arr = np.zeros((100, 200), np.uint8)
    arr[:, :100] = 200
    page.insert_image((72, 72, 272, 172), stream=_png(arr), rotate=90)
    page.insert_text((72, 300), "Figure 1. A rotated radiograph.", fontsize=9)
    (figure,) = extract_figures(doc.tobytes())
    assert figure.method == "rendered" and figure.label == "Figure 1"


# --- real PDFs (../shared/data/pdfs) -----------------------------------------------------


def _load(shared_data, name):
    return extract_figures((shared_data / "pdfs" / name).read_bytes())


def _mean(image: bytes) -> float:
    with Image.open(io.BytesIO(image)) as im:
        return float(np.asarray(im.convert("L")).mean())


@pytest.mark.realdata
def test_pitfalls_every_storage_trick_handled(shared_data):
    figures = _load(shared_data, "synthetic_cxr_pitfalls.pdf")
    by = {(f.page, f.label, f.panel): f for f in figures}
    plain = by[(1, "Figure 1", "A")]
    assert plain.method == "embedded" and plain.image[:2] == b"\xff\xd8"
    masked = by[(1, "Figure 1", "B")]
    with Image.open(io.BytesIO(masked.image)) as im:
        assert im.format == "PNG" and "A" in im.mode  # SMask recombined as alpha
    assert by[(1, "Figure 2", "A")].image == plain.image  # image placed twice: same bytes
    strips = by[(1, "Figure 2", "B")]
    assert strips.method == "merged" and iou(strips.bbox, (375, 360, 485, 470)) > 0.95
    assert strips.panel_caption == "image stored as 4 strips"
    cmyk, jpx = by[(2, "Figure 3", "A")], by[(2, "Figure 3", "B")]
    assert cmyk.method == jpx.method == "decoded"
    assert abs(_mean(cmyk.image) - _mean(plain.image)) < 30  # inverted /Decode honoured
    assert abs(_mean(jpx.image) - _mean(plain.image)) < 30
    assert by[(2, "Figure 3", "C")].image == plain.image  # reused across pages
    inline = by[(3, "Figure 4", None)]
    assert inline.method == "rendered" and inline.caption.startswith("Figure 4. Inline")
    assert len(figures) == 8


@pytest.mark.realdata
def test_docling_pictures_match_gold_boxes(shared_data):
    gold = json.loads((shared_data / "annotations" /
                       "docling_picture_classification.groundtruth.json").read_text())
    figures = _load(shared_data, "docling_picture_classification_mit.pdf")
    assert len(figures) == len(gold["pictures"]) == 2
    for picture, figure in zip(gold["pictures"], figures, strict=True):
        prov = picture["prov"][0]
        b = prov["bbox"]
        box = (b["l"], 792 - b["t"], b["r"], 792 - b["b"])
        assert figure.page == prov["page_no"] and iou(figure.bbox, box) >= 0.8
        assert figure.caption == f"Figure {figure.page}: This is an example image."


@pytest.mark.realdata
def test_vector_only_figure_is_rendered(shared_data):
    (figure,) = _load(shared_data, "bmc_qi_barriers_cc-by-2.0.pdf")
    assert figure.label == "Figure 1" and figure.method == "rendered" and figure.page == 7


@pytest.mark.realdata
def test_figure_of_many_inline_pieces_is_one_figure(shared_data):
    (figure,) = _load(shared_data, "faa_amt_handbook_sample_public-domain.pdf")
    assert figure.label == "Figure 7-27" and figure.method == "merged"


@pytest.mark.realdata
def test_repeated_banners_and_icons_are_dropped(shared_data):
    figures = _load(shared_data, "clinsci_CS20130403_cc-by-3.0.pdf")
    assert all(f.width < 2000 for f in figures)  # the 2200x75 banner on every page
    labels = {f.label for f in figures if f.label}
    assert {f"Figure {n}" for n in range(1, 8)} <= labels


@pytest.mark.realdata
def test_caption_with_label_on_its_own_line(shared_data):
    figures = _load(shared_data, "peerjcs118_cc-by-4.0.pdf")
    assert [(f.page, f.label) for f in figures] == [(4, "Figure 1"), (5, "Figure 2")]
    assert figures[0].caption.startswith("Figure 1 Overview of the 5 Phases")


def test_uncaptioned_large_image_kept_but_first_page_badge_dropped():
    from tests.fixtures.casereport import encode, radiograph_array

    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_image((480, 30, 560, 70), stream=_png(np.full((40, 80), 90, np.uint8)))
    page.insert_image((72, 200, 300, 456), stream=encode(radiograph_array(1)))
    page.insert_text((72, 600), "The radiograph above has no caption on this page.")
    (figure,) = extract_figures(doc.tobytes())
    assert figure.label is None and figure.caption == "" and figure.width == 288


@pytest.mark.parametrize("padding", [b"\0" * 4096, b"\r\n" * 3000, b"\x1a" + bytes(range(256)) * 200])
def test_padding_after_eof_is_accepted(padding):
    data = EXAMPLE.read_bytes() + padding
    open_pdf(data).close()
    problems: list[str] = []
    assert len(extract_figures(data, problems=problems)) >= 1
    assert problems == []


def test_pdf_cut_short_with_eof_appended_is_reported_as_damaged():
    data = EXAMPLE.read_bytes()
    whole = len(extract_figures(data))
    cut = data[: len(data) // 2] + b"\n%%EOF\n"
    problems: list[str] = []
    figures = extract_figures(cut, problems=problems)
    assert len(figures) < whole
    assert problems == ["damaged PDF (MuPDF repaired a broken or cut-off file); "
                        "figures may be missing"]


def test_pdf_cut_inside_an_update_after_eof_is_still_truncated():
    data = EXAMPLE.read_bytes() + b"\n12 0 obj\n<< /Type /Page"
    with pytest.raises(PdfError, match="truncated"):
        open_pdf(data)
