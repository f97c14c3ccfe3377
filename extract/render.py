"""Image bytes for PDF figure regions: original embedded bytes, decoded pixels or a lossless render."""

from __future__ import annotations

import io
import itertools
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from cxrbank.greys import top8
from extract.captions import caption_parts
from extract.panels import MAX_PANELS, letter_regions, split_panels
from extract.records import BBox, Caption, Figure, Region

MAX_RENDER_PIXELS = 40_000_000
MAX_SPLIT_PIXELS = 40_000_000  # larger figures are kept whole (cutting them costs GBs)
VECTOR_DPI = 300
_KEEP_EXT = {"jpeg": "jpg", "png": "png"}


class FigureError(Exception):
    """One figure's image cannot be used (a damaged embedded image); the others still can."""


def image_problem(data: bytes) -> str | None:
    """Why image bytes do not decode ("image file is truncated ..."), or None when they do.

    JPEGs are decoded at reduced scale (the whole entropy-coded stream is still read, so a
    cut or garbled file is caught) to keep the check cheap.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format == "JPEG":
                im.draft(im.mode, (max(1, im.width // 8), max(1, im.height // 8)))
            im.load()
    except (OSError, ValueError, SyntaxError, UnidentifiedImageError,
            Image.DecompressionBombError) as exc:
        return str(exc) or type(exc).__name__
    return None


def _upright(info: dict[str, Any]) -> bool:
    a, b, c, d, _, _ = info["transform"]
    return abs(b) < 1e-3 and abs(c) < 1e-3 and a > 0 and d > 0


def embedded_image(doc: Any, info: dict[str, Any]) -> tuple[bytes, str, str] | None:
    """(bytes, extension, method) of one placed image XObject, or None to render instead.

    A grey or RGB JPEG keeps its original bytes; other images are decoded (masks recombined
    as alpha, CMYK and inverted /Decode converted, JPEG 2000, 16-bit and indexed images
    expanded) and written as lossless PNG.
    """
    xref = info["xref"]
    if not xref or not _upright(info):
        return None
    try:
        filt = doc.xref_get_key(xref, "Filter")[1]
        smask = doc.xref_get_key(xref, "SMask")
        decode = doc.xref_get_key(xref, "Decode")[0] != "null"
        plain = (
            smask[0] != "xref"
            and not decode
            and info.get("colorspace") in (1, 3)
            and info.get("bpc") == 8
            and "Indexed" not in (info.get("cs-name") or "")
        )
        if plain and filt.strip("[]") == "/DCTDecode":
            return doc.xref_stream_raw(xref), "jpg", "embedded"
        grey16 = _grey16_png(doc, xref, info) if smask[0] != "xref" and not decode else None
        if grey16 is not None:
            return grey16, "png", "decoded"
        smask_xref = int(smask[1].split()[0]) if smask[0] == "xref" else 0
        png = _decoded_png(doc, xref, smask_xref)
    except Exception:
        return None
    return png, "png", "embedded" if plain and "JPX" not in filt else "decoded"


def _grey16_png(doc: Any, xref: int, info: dict[str, Any]) -> bytes | None:
    """A 16-bit grey PNG of a 16-bit DeviceGray image (MuPDF's pixmaps are 8-bit), or None."""
    from PIL import Image

    filt = doc.xref_get_key(xref, "Filter")[1]
    if info.get("bpc") != 16 or info.get("colorspace") != 1 or "DCT" in filt or "JPX" in filt:
        return None
    width, height = info["width"], info["height"]
    samples = doc.xref_stream(xref)  # the filters undone
    if len(samples) < width * height * 2:
        return None
    pixels = np.frombuffer(samples, ">u2", width * height).reshape(height, width)
    buf = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint16)).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _decoded_png(doc: Any, xref: int, smask: int) -> bytes:
    import pymupdf

    pix = pymupdf.Pixmap(doc, xref)
    if pix.colorspace is not None and pix.colorspace.n not in (1, 3):
        pix = pymupdf.Pixmap(pymupdf.csRGB, pix)
    if pix.alpha:
        pix = pymupdf.Pixmap(pix, 0)
    if smask:
        mask = pymupdf.Pixmap(doc, smask)
        if (mask.width, mask.height) == (pix.width, pix.height) and mask.n == 1:
            pix = pymupdf.Pixmap(pix, mask)
    return pixmap_png(pix)


def pixmap_png(pix: Any) -> bytes:
    """Lossless PNG of a PyMuPDF Pixmap (fast zlib level: these are working files)."""
    from PIL import Image

    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[pix.n]
    if pix.n == 4 and not pix.alpha:
        mode = "CMYK"
    # samples_mv shares the pixmap's memory: no copy of a possibly huge image
    im = Image.frombuffer(mode, (pix.width, pix.height), pix.samples_mv, "raw", mode, 0, 1)
    if mode == "CMYK":
        im = im.convert("RGB")
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _zoom(region: Region) -> float:
    """Render scale: the native resolution of the pieces, or VECTOR_DPI for drawings."""
    zooms = []
    for info in region.pieces:
        x0, y0, x1, y1 = info.get("placed", info["bbox"])
        a, b = info["transform"][:2]
        across, down = (info["height"], info["width"]) if abs(b) > abs(a) else (
            info["width"], info["height"])  # an image turned a quarter shows its height across
        if x1 - x0 > 0 and y1 - y0 > 0 and info["width"]:
            zooms.append(max(across / (x1 - x0), down / (y1 - y0)))
    zoom = max(zooms) if zooms else VECTOR_DPI / 72
    x0, y0, x1, y1 = region.bbox
    pixels = (x1 - x0) * (y1 - y0) * zoom * zoom
    if pixels > MAX_RENDER_PIXELS:
        zoom *= (MAX_RENDER_PIXELS / pixels) ** 0.5
    return max(zoom, 0.25)


def render_region(page: Any, bbox: BBox, zoom: float) -> Any:
    """A Pixmap of the page inside `bbox` at `zoom` (no alpha)."""
    import pymupdf

    return page.get_pixmap(
        matrix=pymupdf.Matrix(zoom, zoom), clip=pymupdf.Rect(bbox), alpha=False
    )


def _pixmap_array(pix: Any) -> np.ndarray:
    arr = np.frombuffer(pix.samples, np.uint8).reshape(pix.height, pix.width, pix.n)
    return arr[..., 0] if pix.n == 1 else arr


def _png(arr: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _region_image(doc: Any, page: Any, region: Region) -> tuple[bytes, str, str, int, int]:
    """(bytes, ext, method, width, height) for a region."""
    if region.kind == "image" and len(region.pieces) == 1:
        got = embedded_image(doc, region.pieces[0])
        if got is not None:
            why = image_problem(got[0]) if got[1] == "jpg" else None
            if why:
                raise FigureError(f"embedded image is damaged ({why})")
            info = region.pieces[0]
            if "placed" in info:  # a clip path hides part of it: only the visible part
                return _visible_part(got[0], info)
            return got[0], got[1], got[2], info["width"], info["height"]
    if len(region.pieces) > 1:
        stacked = _stacked_strips(doc, region.pieces)
        if stacked is not None:
            return stacked
    pix = render_region(page, region.bbox, _zoom(region))
    method = "merged" if len(region.pieces) > 1 else "rendered"
    return pixmap_png(pix), "png", method, pix.width, pix.height


def _stacked_strips(doc: Any, pieces: list[dict[str, Any]]
                    ) -> tuple[bytes, str, str, int, int] | None:
    """Strips of one image (upright, edge to edge, same pixel width stacked or same pixel
    height in a row) put together from their decoded pixels, as PNG; None when they are not."""
    from PIL import Image

    if not all(p["xref"] and _upright(p) and "placed" not in p for p in pieces):
        return None
    first = pieces[0]["bbox"]
    if all(abs(p["bbox"][0] - first[0]) <= 1.5 and abs(p["bbox"][2] - first[2]) <= 1.5
           for p in pieces):
        axis, keep = 1, "width"  # stacked: ordered by y, one pixel width
    elif all(abs(p["bbox"][1] - first[1]) <= 1.5 and abs(p["bbox"][3] - first[3]) <= 1.5
             for p in pieces):
        axis, keep = 0, "height"
    else:
        return None
    order = sorted(pieces, key=lambda p: p["bbox"][axis])
    if any(abs(b["bbox"][axis] - a["bbox"][axis + 2]) > 1.5 for a, b in itertools.pairwise(order)):
        return None
    if len({p[keep] for p in order}) != 1 or sum(p["width"] * p["height"] for p in order) > \
            MAX_RENDER_PIXELS:
        return None
    images = []
    for info in order:
        got = embedded_image(doc, info)
        if got is None or image_problem(got[0]):
            return None
        images.append(Image.open(io.BytesIO(got[0])))
    if len({im.mode for im in images}) != 1 or any(
            (im.width, im.height) != (p["width"], p["height"]) for im, p in zip(images, order, strict=True)):
        return None
    width = images[0].width if axis == 1 else sum(im.width for im in images)
    height = sum(im.height for im in images) if axis == 1 else images[0].height
    whole = Image.new(images[0].mode, (width, height))
    at = 0
    for im in images:
        whole.paste(im, (0, at) if axis == 1 else (at, 0))
        at += im.height if axis == 1 else im.width
    buf = io.BytesIO()
    whole.save(buf, format="PNG", compress_level=1)
    return buf.getvalue(), "png", "merged", width, height


def _visible_part(data: bytes, info: dict[str, Any]) -> tuple[bytes, str, str, int, int]:
    """The pixels of an upright placed image that its clip box shows, as PNG ("clipped")."""
    from PIL import Image

    px0, py0, px1, py1 = info["placed"]
    vx0, vy0, vx1, vy1 = info["bbox"]
    with Image.open(io.BytesIO(data)) as im:
        sx, sy = im.width / (px1 - px0), im.height / (py1 - py0)
        box = (max(0, math.floor((vx0 - px0) * sx)), max(0, math.floor((vy0 - py0) * sy)),
               min(im.width, math.ceil((vx1 - px0) * sx)),
               min(im.height, math.ceil((vy1 - py0) * sy)))
        crop = im.crop(box)
    buf = io.BytesIO()
    crop.save(buf, format="PNG", compress_level=1)
    return buf.getvalue(), "png", "clipped", crop.width, crop.height


def _reading_order(regions: list[Region]) -> list[Region]:
    rows: list[list[Region]] = []
    for region in sorted(regions, key=lambda r: (r.bbox[1], r.bbox[0])):
        for row in rows:
            a, b = row[0].bbox, region.bbox
            overlap = min(a[3], b[3]) - max(a[1], b[1])
            if overlap > 0.5 * min(a[3] - a[1], b[3] - b[1]):
                row.append(region)
                break
        else:
            rows.append([region])
    return [r for row in rows for r in sorted(row, key=lambda r: r.bbox[0])]


def figures_for_group(
    doc: Any, page: Any, regions: list[Region], caption: Caption | None, split: bool,
    check: Callable[[], None] | None = None, problems: list[str] | None = None,
) -> list[Figure]:
    """Figure records for one captioned group of regions: panels when split, else the whole.

    `check` is called before each region is rendered (it raises past the time limit). A
    panel whose image is damaged is left out with a line in `problems` (its letter is not
    given to another); a whole figure that is damaged raises FigureError.
    """
    label = caption.label if caption else None
    text = caption.text if caption else ""
    page_no = page.number + 1
    regions = _reading_order(regions)
    if len(regions) > 1 and (not split or len(regions) > MAX_PANELS):
        union = Region(
            (
                min(r.bbox[0] for r in regions),
                min(r.bbox[1] for r in regions),
                max(r.bbox[2] for r in regions),
                max(r.bbox[3] for r in regions),
            ),
            "merged",
            [p for r in regions for p in r.pieces],
        )
        regions = [union]
    if len(regions) > 1:
        out = []
        for region, (letter, part) in zip(
            regions, letter_regions(len(regions), text), strict=True
        ):
            if check:
                check()
            try:
                data, ext, method, w, h = _region_image(doc, page, region)
            except FigureError as exc:
                if problems is None:
                    raise
                problems.append(f"page {page_no}, {label or 'an uncaptioned image'} panel "
                                f"{letter}: {exc}; left out")
                continue
            out.append(Figure(page_no, region.bbox, label, letter, text, part, data, w, h,
                              method, ext))
        return out
    region = regions[0]
    data, ext, method, w, h = _region_image(doc, page, region)
    whole = Figure(page_no, region.bbox, label, None, text, None, data, w, h, method, ext)
    if not split:
        return [whole]
    return split_figure(whole) or [whole]


def split_figure(figure: Figure) -> list[Figure]:
    """The panels of a figure image as Figure records (PNG crops), or [] when it is one panel."""
    from PIL import Image

    if not caption_parts(figure.caption)[1]:
        return []  # only captions that name panels get cut (see split_panels)
    if figure.width * figure.height > MAX_SPLIT_PIXELS:
        return []

    try:
        arr = _decoded_array(figure.image)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return []  # undecodable bytes stay whole; callers check images with image_problem
    panels = split_panels(top8(arr) if arr.dtype == np.uint16 else arr, figure.caption)
    if len(panels) < 2:
        return []
    x0, y0, x1, y1 = figure.bbox
    sx, sy = (x1 - x0) / arr.shape[1], (y1 - y0) / arr.shape[0]
    out = []
    for panel in panels:
        px0, py0, px1, py1 = panel.box
        crop = np.ascontiguousarray(arr[py0:py1, px0:px1])
        box = (x0 + px0 * sx, y0 + py0 * sy, x0 + px1 * sx, y0 + py1 * sy)
        out.append(Figure(figure.page, box, figure.label, panel.letter, figure.caption,
                          panel.caption, _png(crop), px1 - px0, py1 - py0, "split"))
    return out


def _decoded_array(data: bytes) -> np.ndarray:
    """Grey, 16-bit grey or RGB pixels of image bytes (transparency flattened onto white)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        if im.mode in ("I;16", "I;16B", "I;16L"):
            return np.asarray(im).astype(np.uint16)
        if im.mode in ("RGBA", "LA", "PA", "P"):
            im = im.convert("RGBA")
            white = Image.new("RGBA", im.size, (255, 255, 255, 255))
            im = Image.alpha_composite(white, im).convert("RGB")
        elif im.mode not in ("L", "RGB"):
            im = im.convert("RGB")
        return np.asarray(im)


def debug_pages(data: bytes, figures: list[Figure], dpi: int = 100) -> list[tuple[int, bytes]]:
    """Each page as PNG with figure boxes (red) and caption boxes (blue) drawn on it.

    Boxes are in the shown page's coordinates; drawing takes unrotated ones, hence derotation.
    """
    import pymupdf

    from extract.captions import find_captions
    from extract.pdf import open_pdf, orient_pages, page_dict

    doc = open_pdf(data)
    try:
        orient_pages(doc)
        out = []
        for page in doc:
            back = page.derotation_matrix
            for cap in find_captions(page_dict(page), page.number + 1):
                page.draw_rect(pymupdf.Rect(cap.bbox) * back, color=(0, 0, 1), width=1.2)
            for fig in figures:
                if fig.page == page.number + 1:
                    page.draw_rect(pymupdf.Rect(fig.bbox) * back, color=(1, 0, 0), width=1.5)
                    tag = " ".join(t for t in (fig.label or "no caption", fig.panel) if t)
                    at = pymupdf.Point(fig.bbox[0] + 2, fig.bbox[1] + 9) * back
                    page.insert_text(at, tag, fontsize=8, color=(1, 0, 0),
                                     rotate=page.rotation)
            out.append((page.number + 1, page.get_pixmap(dpi=dpi).tobytes("png")))
        return out
    finally:
        doc.close()
