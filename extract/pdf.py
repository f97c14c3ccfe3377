"""Figures out of PDF pages: placed images, merged pieces and vector drawings, with captions."""

from __future__ import annotations

import re
import time
import zlib
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from extract.captions import find_captions, find_table_captions, pair_captions
from extract.pdfrepair import lost_content
from extract.records import BBox, Caption, Figure, Region
from extract.regions import (
    MUPDF_ERRORS,
    big_enough,
    decorations,
    image_regions,
    mupdf_message,
    overlap_share,
    shown_box,
    vector_regions,
)

MAX_STREAM_BYTES = 256 * 1024 * 1024  # a stream inflating past this is a decompression bomb
MAX_IMAGE_SAMPLES = 150_000_000  # declared pixels x colour channels past this is a bomb
MAX_PAGES = 2000
EOF_SEARCH_BYTES = 64 * 1024  # %%EOF may be followed by this much padding
_STRUCTURE_AFTER_EOF = re.compile(rb"\b(?:\d+ \d+ obj|endobj|stream|xref|trailer|startxref)\b")
MIN_LOOSE_SIDE = 72.0  # points: an image with no caption must be at least an inch each way


class PdfError(Exception):
    """A PDF that cannot be read: broken, encrypted, empty, a bomb, or too slow to process."""


def _ends_with_eof(data: bytes) -> bool:
    """The file's last %%EOF is near its end with no PDF structure after it.

    Padding after %%EOF (NULs, blanks, a few KB of junk) is common and harmless; a file cut
    inside an incremental update has objects or an xref after its last %%EOF.
    """
    tail = data[-EOF_SEARCH_BYTES:]
    at = tail.rfind(b"%%EOF")
    return at >= 0 and not _STRUCTURE_AFTER_EOF.search(tail, at + 5)


def open_pdf(data: bytes, problems: list[str] | None = None) -> Any:
    """Open PDF bytes with PyMuPDF, or raise PdfError with one clear reason.

    A file MuPDF had to repair still opens; when the repair lost content (objects cut off,
    a page's streams missing) one line saying so goes to `problems`. A repair that lost
    nothing (stale offsets, padding after the last %%EOF) is not a problem.
    """
    import pymupdf

    pymupdf.TOOLS.mupdf_display_errors(False)
    pymupdf.TOOLS.mupdf_display_warnings(False)
    if not data:
        raise PdfError("empty file")
    if b"%PDF-" not in data[:1024]:
        raise PdfError("not a PDF (no %PDF- header)")
    if not _ends_with_eof(data):
        raise PdfError("truncated PDF (no %%EOF at the end)")
    pymupdf.TOOLS.reset_mupdf_warnings()
    try:
        doc = pymupdf.open(stream=data, filetype="pdf")
    except Exception as exc:  # MuPDF raises several types for broken files
        raise PdfError(f"unreadable PDF ({exc})") from None
    if doc.needs_pass:
        doc.close()
        raise PdfError("encrypted PDF (password required)")
    if doc.page_count == 0:
        doc.close()
        raise PdfError("PDF has no pages")
    if doc.page_count > MAX_PAGES:
        doc.close()
        raise PdfError(f"PDF has {doc.page_count} pages (limit {MAX_PAGES})")
    try:
        _check_bombs(doc)  # reads every object: a repair MuPDF does lazily happens here
    except PdfError:
        doc.close()
        raise
    warnings = pymupdf.TOOLS.mupdf_warnings()
    if doc.is_repaired and problems is not None and lost_content(doc, warnings, data):
        problems.append("damaged PDF (MuPDF repaired a broken or cut-off file); "
                        "figures may be missing")
    return doc


def _check_bombs(doc: Any) -> None:
    """Refuse streams that inflate past MAX_STREAM_BYTES and absurdly large declared images."""
    for xref in range(1, doc.xref_length()):
        try:
            if not doc.xref_is_stream(xref):
                continue
            width = doc.xref_get_key(xref, "Width")
            height = doc.xref_get_key(xref, "Height")
            filt = doc.xref_get_key(xref, "Filter")[1]
            channels = _channels(doc, xref)
        except Exception:
            continue
        declared = width[0] == "int" and height[0] == "int"
        if declared and int(width[1]) * int(height[1]) * channels > MAX_IMAGE_SAMPLES:
            raise PdfError(f"decompression bomb (image {width[1]}x{height[1]} px, "
                           f"{channels} channel{'s' if channels > 1 else ''})")
        if "FlateDecode" in filt and _inflated_size(doc.xref_stream_raw(xref)) > MAX_STREAM_BYTES:
            raise PdfError(f"decompression bomb (stream {xref} inflates past "
                           f"{MAX_STREAM_BYTES // 2**20} MB)")


def _channels(doc: Any, xref: int) -> int:
    """Colour channels an image XObject decodes to (3 when unknown: the RGB it is drawn as)."""
    from extract.regions import components

    if doc.xref_get_key(xref, "ImageMask")[1] == "true":
        return 1
    return components(doc, xref) or 3


def _inflated_size(raw: bytes) -> int:
    """Bytes a Flate stream inflates to, counted in chunks and stopped past MAX_STREAM_BYTES."""
    inflater = zlib.decompressobj()
    total, pending = 0, raw
    try:
        # bytes after the end of the compressed data stay in unconsumed_tail: stop at eof
        while pending and not inflater.eof and total <= MAX_STREAM_BYTES:
            total += len(inflater.decompress(pending, 1 << 22))
            pending = inflater.unconsumed_tail
    except zlib.error:
        return total
    return total


def page_texts(data: bytes, time_limit: float = 60.0) -> list[str]:
    """Plain text of each page, in reading order (PdfError past `time_limit` seconds)."""
    start = time.monotonic()
    doc = open_pdf(data)
    try:
        texts = []
        for page in doc:
            _check_time(start, time_limit)
            texts.append(page.get_text("text", sort=True))
        return texts
    finally:
        doc.close()


def page_dict(page: Any) -> dict[str, Any]:
    """PyMuPDF's text dict of a page, without image blocks (they cost a decode each).

    Boxes are in the shown page's coordinates (a /Rotate'd page as it is displayed).
    """
    import pymupdf

    flags = (pymupdf.TEXT_PRESERVE_LIGATURES | pymupdf.TEXT_PRESERVE_WHITESPACE
             | pymupdf.TEXT_MEDIABOX_CLIP)
    text = page.get_text("dict", flags=flags)
    if page.rotation:
        for block in text["blocks"]:
            block["bbox"] = shown_box(page, block["bbox"])
            for line in block.get("lines", ()):
                line["bbox"] = shown_box(page, line["bbox"])
                for span in line["spans"]:
                    span["bbox"] = shown_box(page, span["bbox"])
    return text


def _text_boxes(page_dict: dict[str, Any]) -> list[tuple[BBox, str]]:
    out = []
    for block in page_dict["blocks"]:
        if block.get("type") != 0:
            continue
        for line in block["lines"]:
            text = "".join(s["text"] for s in line["spans"]).strip()
            if text:
                out.append((tuple(line["bbox"]), text))
    return out


def _absorb_labels(region: Region, lines: list[tuple[BBox, str]], captions: list[Caption]) -> None:
    """Grow a vector region over the short text lines around it (axis labels, legends)."""
    for _ in range(2):
        x0, y0, x1, y1 = region.bbox
        width = x1 - x0
        for box, _text in lines:
            if any(overlap_share(box, c.bbox) > 0.5 for c in captions):
                continue
            near = box[0] < x1 + 12 and box[2] > x0 - 12 and box[1] < y1 + 12 and box[3] > y0 - 12
            if near and box[2] - box[0] < 0.6 * width:
                x0, y0 = min(x0, box[0]), min(y0, box[1])
                x1, y1 = max(x1, box[2]), max(y1, box[3])
        region.bbox = (x0, y0, x1, y1)


def _trim_captions(region: Region, captions: list[BBox]) -> bool:
    """Cut captions out of a vector region (frames drawn around figure and caption).

    Returns False when nothing worth keeping is left (a frame around a caption only).
    """
    x0, y0, x1, y1 = region.bbox
    for c in captions:
        if overlap_share(c, (x0, y0, x1, y1)) < 0.5:
            continue
        if c[1] - y0 >= y1 - c[3]:
            y1 = min(y1, c[1] - 1)
        else:
            y0 = max(y0, c[3] + 1)
    region.bbox = (x0, y0, x1, y1)
    return big_enough(region.bbox)


def _text_density(box: BBox, lines: list[tuple[BBox, str]]) -> float:
    area = (box[2] - box[0]) * (box[3] - box[1])
    inside = sum(
        (b[2] - b[0]) * (b[3] - b[1]) for b, _ in lines if overlap_share(b, box) > 0.5
    )
    return inside / area if area else 0.0


def extract_figures(
    data: bytes, *, split_panels: bool = True, time_limit: float = 60.0,
    problems: list[str] | None = None,
) -> list[Figure]:
    """Figures (or their panels when split) of a PDF, each with its page, box and caption.

    A figure whose image cannot be used (a damaged embedded JPEG) is left out and one line
    saying so ("page 2, Figure 1: embedded image is damaged (...); left out") goes to
    `problems`, as does a damaged PDF that MuPDF repaired (see open_pdf) and a page MuPDF
    fails on ("page 3: layer/clip nesting too deep"; the other pages are still read).
    """
    start = time.monotonic()
    doc = open_pdf(data, problems)

    def check() -> None:
        _check_time(start, time_limit)

    failed: dict[int, str] = {}
    try:
        orient_pages(doc, check)
        decor, placements = decorations(doc, check, failed)
        figures: list[Figure] = []
        for page in doc:
            check()
            if page.number not in failed:
                try:
                    figures.extend(_page_figures(doc, page, placements[page.number], decor,
                                                 split_panels, check, problems))
                except MUPDF_ERRORS as exc:
                    failed[page.number] = mupdf_message(exc)
            if page.number in failed and problems is not None:
                problems.append(f"page {page.number + 1}: {failed[page.number]}")
        return figures
    finally:
        doc.close()


def _page_figures(
    doc: Any, page: Any, infos: list[dict[str, Any]], decor: set[Any], split_panels: bool,
    check: Callable[[], None], problems: list[str] | None,
) -> list[Figure]:
    """The figures of one page (a figure whose image is damaged left out, one line each)."""
    from extract.render import FigureError, figures_for_group

    figures: list[Figure] = []
    for group, caption in page_groups(page, infos, decor, check):
        check()
        try:
            figures.extend(figures_for_group(doc, page, group, caption, split_panels,
                                             check, problems))
        except FigureError as exc:
            if problems is not None:
                name = caption.label if caption else "an uncaptioned image"
                problems.append(f"page {page.number + 1}, {name}: {exc}; left out")
    return figures


def orient_pages(doc: Any, check: Callable[[], None] | None = None) -> None:
    """Turn off /Rotate (in memory) on pages whose text reads upright without it.

    Landscape pages drawn sideways and turned by /Rotate are analysed as shown; a portrait
    page whose /Rotate only turns it sideways in a viewer is analysed as written, so its
    figures come out upright. All boxes are then in the kept orientation's coordinates.
    """
    for page in doc:
        if not page.rotation:
            continue
        if check:
            check()
        upright = sideways = 0
        try:
            blocks = page.get_text("dict")["blocks"]
        except MUPDF_ERRORS:
            continue  # the page's analysis reports it
        for block in blocks:
            for line in block.get("lines", ()):
                chars = sum(len(span["text"]) for span in line["spans"])
                dx, dy = line["dir"]
                if dx > 0.9 and abs(dy) < 0.1:
                    upright += chars
                else:
                    sideways += chars
        if upright > sideways:
            page.set_rotation(0)


def _check_time(start: float, limit: float) -> None:
    if time.monotonic() - start > limit:
        raise PdfError(f"time limit of {limit:g} s exceeded")


def page_groups(
    page: Any, infos: list[dict[str, Any]], decor: set[Any],
    check: Callable[[], None] | None = None,
) -> list[tuple[list[Region], Caption | None]]:
    """The figures of one page: each a list of regions with its caption (or None)."""
    text = page_dict(page)
    captions = find_captions(text, page.number + 1)
    lines = _text_boxes(text)
    tables = find_table_captions(text)
    caption_boxes = [c.bbox for c in captions] + tables
    table_captions = [Caption(page.number + 1, box, "Table", "", "") for box in tables]
    body = _body_blocks(text)

    def pair(regions: list[Region]) -> list[int | None]:
        blockers = [
            box
            for box, _ in body
            if not any(overlap_share(box, c) > 0.5 for c in caption_boxes)
            and not any(overlap_share(box, r.bbox) > 0.5 for r in regions)
        ]
        return pair_captions(regions, captions + table_captions, blockers)

    regions = image_regions(page, infos, decor, check or (lambda: None))
    pairing = pair(regions)
    if any(k not in pairing for k in range(len(captions))):
        vectors = []
        for region in vector_regions(page, regions, check or (lambda: None)):
            _absorb_labels(region, lines, captions)
            if _trim_captions(region, caption_boxes):
                vectors.append(region)
        if vectors:
            regions = regions + vectors
            pairing = pair(regions)
    groups: dict[int, list[Region]] = defaultdict(list)
    loose: list[Region] = []
    for region, cap in zip(regions, pairing, strict=True):
        if cap is not None and cap >= len(captions):
            continue  # a table's content
        if cap is None:
            if region.kind == "image":
                loose.append(region)
        else:
            groups[cap].append(region)
    result: list[tuple[list[Region], Caption | None]] = []
    for cap_index in sorted(groups, key=lambda k: (captions[k].bbox[1], captions[k].bbox[0])):
        members = groups[cap_index]
        if all(r.kind == "vector" for r in members):
            members = [r for r in members if _text_density(r.bbox, lines) < 0.25]
        if members:
            result.append((members, captions[cap_index]))
    result.extend(
        ([region], None)
        for region in loose
        if not _under_table_caption(region.bbox, tables) and _loose_figure(region.bbox, page.rect)
    )
    return result


def _loose_figure(box: BBox, area: Any) -> bool:
    """An image without a caption counts as a figure unless it is small or sits in a margin
    band (publisher logos, cover thumbnails and badges on the first page)."""
    w, h = box[2] - box[0], box[3] - box[1]
    if min(w, h) < MIN_LOOSE_SIDE:
        return False
    in_band = box[3] <= area.y0 + 0.15 * area.height or box[1] >= area.y1 - 0.1 * area.height
    return not (in_band and w * h < 0.05 * area.width * area.height)


def _under_table_caption(box: BBox, tables: list[BBox]) -> bool:
    """True for an uncaptioned image below a table caption in its column (a table's content)."""
    return any(t[3] <= box[1] + 2 and t[0] < box[2] and box[0] < t[2] for t in tables)


def _body_blocks(page_dict: dict[str, Any]) -> list[tuple[BBox, str]]:
    out = []
    for block in page_dict["blocks"]:
        if block.get("type") != 0:
            continue
        text = " ".join(
            "".join(s["text"] for s in line["spans"]) for line in block["lines"]
        ).strip()
        if len(text) >= 40:
            out.append((tuple(block["bbox"]), text))
    return out
