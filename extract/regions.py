"""Graphical regions of PDF pages: image placements, merged pieces, decoration, vector drawings."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from extract.clips import MAX_CLIPS, clip_operators, image_clips
from extract.records import BBox, Region

MIN_SIDE = 20.0  # points: smaller regions are icons, bullets, rules
MIN_AREA = 1600.0  # square points
MAX_VECTOR_CONTENT = 8 * 1024 * 1024  # bytes of page content beyond which drawings are skipped
MAX_DRAWINGS = 20_000  # paths on a page beyond which they are not clustered (minutes of work)
# what PyMuPDF raises when MuPDF fails on a page (clips nested past 1,024, broken content)
MUPDF_ERRORS: tuple[type[Exception], ...] = (RuntimeError,)


_PAINT = re.compile(rb"(?<![A-Za-z*])(?:f\*?|F|S|s|B\*?|b\*?)(?![A-Za-z*])")  # path painting


def _no_check() -> None:
    """The default time check: none."""


def _key(info: dict[str, Any]) -> Any:
    """An image's identity: its xref, or for inline images its size and stream length."""
    return info["xref"] or ("inline", info["width"], info["height"], info["size"])


def shown_box(page: Any, box: Any) -> BBox:
    """A box in unrotated page coordinates as shown (a /Rotate'd page's visible orientation)."""
    import pymupdf

    rect = pymupdf.Rect(box)
    if page.rotation:
        rect = rect * page.rotation_matrix
    return (rect.x0, rect.y0, rect.x1, rect.y1)


def _shown(page: Any, infos: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Placements with bbox and transform turned into the shown page's coordinates."""
    if not page.rotation:
        return infos
    import pymupdf

    for info in infos:
        info["bbox"] = shown_box(page, info["bbox"])
        if "placed" in info:
            info["placed"] = shown_box(page, info["placed"])
        info["transform"] = tuple(pymupdf.Matrix(info["transform"]) * page.rotation_matrix)
    return infos


def placements_of(page: Any, check: Callable[[], None] = _no_check) -> list[dict[str, Any]]:
    """Every image placement on a page, shaped like PyMuPDF's get_image_info(xrefs=True).

    Boxes and transforms are in the shown page's coordinates (rotated as /Rotate says, origin
    top-left), the space page.rect, get_pixmap(clip=) and page_dict use. An image drawn more
    than once at one box is one placement. `check` is called between steps (it raises when
    the time limit is past; a clip trace it stops keeps the images whole).

    get_image_info decodes and hashes every image to find xrefs, which costs more than the
    rest of the extraction; this asks for each XObject's rectangles instead and falls back to
    get_image_info only on pages with inline images (placements without an xref).
    """
    infos: list[dict[str, Any]] = []
    seen: set[int] = set()
    for xref, _smask, width, height, bpc, cs, _alt, _name, _filter, _ref in page.get_images(
        full=True
    ):
        if xref in seen:
            continue
        seen.add(xref)
        check()
        channels = components(page.parent, xref)
        for rect, matrix in page.get_image_rects(xref, transform=True):
            infos.append({"xref": xref, "bbox": tuple(rect), "transform": tuple(matrix),
                          "width": width, "height": height, "bpc": bpc, "cs-name": cs,
                          "colorspace": channels, "size": 0})
    check()
    boxes = _BoxIndex(info["bbox"] for info in infos)
    for kind, box in page.get_bboxlog():
        if kind.endswith("image") and not boxes.has(box):
            infos = page.get_image_info(xrefs=True)
            break
    check()
    return _clipped(page, _shown(page, _distinct(infos)), check)


class _BoxIndex:
    """Boxes bucketed by their rounded top-left corner, to find a box within 1 pt quickly."""

    def __init__(self, boxes: Any = ()) -> None:
        self.buckets: dict[tuple[int, int], dict[BBox, list[Any]]] = defaultdict(dict)
        for box in boxes:
            self.add(box, box)

    def add(self, box: BBox, value: Any) -> None:
        self.buckets[(round(box[0]), round(box[1]))].setdefault(tuple(box), []).append(value)

    def find(self, box: BBox) -> list[Any]:
        """Values of the boxes within 1 pt of `box` on every side."""
        x, y = round(box[0]), round(box[1])
        return [value for dx in (-1, 0, 1) for dy in (-1, 0, 1)
                for other, values in self.buckets.get((x + dx, y + dy), {}).items()
                if _same_box(other, box) for value in values]

    def has(self, box: BBox) -> bool:
        return bool(self.find(box))


def _distinct(infos: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Placements without repeats (the same image drawn again at the same box)."""
    seen: set[Any] = set()
    out = []
    for info in infos:
        key = (_key(info), tuple(round(v, 1) for v in info["bbox"]))
        if key not in seen:
            seen.add(key)
            out.append(info)
    return out


def _clipped(
    page: Any, infos: list[dict[str, Any]], check: Callable[[], None] = _no_check
) -> list[dict[str, Any]]:
    """Shrink each placement (shown coordinates) to what the clip in force when it is drawn
    lets show; `placed` keeps the whole box.

    Only clips in force at the image's draw count (a column's clip closed before the image
    does not); an image the trace does not find keeps its whole box, one that every draw
    hides wholly is left out. Pages whose content has no clip operator and no form XObject
    (a form clips to its box) are not traced, nor are pages whose trace the time limit stops.
    """
    if not infos:
        return infos
    clips = clip_operators(_contents(page))
    if clips > MAX_CLIPS or (not clips and not page.get_xobjects()):
        return infos
    traced = image_clips(page, check)
    if not traced:
        return infos
    draws_of = _BoxIndex()
    for placed, clip in traced:
        draws_of.add(placed, clip)
    kept = []
    for info in infos:
        box = info["bbox"]
        draws = [_overlap(box, clip) for clip in draws_of.find(box)]
        shown = [s for s in draws if s[2] > s[0] and s[3] > s[1]]
        if draws and not shown:
            continue  # every draw of it is wholly hidden: nothing of it is on the page
        kept.append(info)
        if not shown:
            continue  # not traced: keep it whole
        visible = shown[0]
        for s in shown[1:]:
            visible = _union(visible, s)
        w, h = box[2] - box[0], box[3] - box[1]
        cut = max(visible[0] - box[0], box[2] - visible[2]) / w if w > 0 else 0.0
        cut = max(cut, max(visible[1] - box[1], box[3] - visible[3]) / h if h > 0 else 0.0)
        if cut > 0.02:
            info["placed"], info["bbox"] = box, visible
    return kept


def _overlap(a: BBox, b: BBox) -> BBox:
    return (max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3]))


def _contents(page: Any) -> list[bytes]:
    """The page's content streams (those that can be read: a repaired file may lack some)."""
    out = []
    for xref in page.get_contents():
        try:
            out.append(page.parent.xref_stream(xref) or b"")
        except ValueError:
            continue
    return out


def _paint_count(page: Any) -> int:
    """Path-painting operators in the page's content streams (a cheap count of drawings)."""
    return sum(len(_PAINT.findall(content)) for content in _contents(page))


def _same_box(a: BBox, b: BBox) -> bool:
    return all(abs(u - v) < 1.0 for u, v in zip(a, b, strict=True))


def components(doc: Any, xref: int) -> int:
    """Colour components of an image XObject (0 when indexed, unusual or unknown)."""
    kind, value = doc.xref_get_key(xref, "ColorSpace")
    names = {"/DeviceGray": 1, "/DeviceRGB": 3, "/DeviceCMYK": 4, "/CalGray": 1, "/CalRGB": 3}
    if kind == "name":
        return names.get(value, 0)
    if kind == "xref":
        value = doc.xref_object(int(value.split()[0]), compressed=True)
    if "/ICCBased" in value:
        ref = value.split("/ICCBased", 1)[1].split("R")[0].split()
        if len(ref) >= 2 and ref[0].isdigit():
            n = doc.xref_get_key(int(ref[0]), "N")
            return int(n[1]) if n[0] == "int" else 0
    return 0


def mupdf_message(exc: Exception) -> str:
    """MuPDF's reason for failing, without PyMuPDF's "code=N: " prefix."""
    return re.sub(r"^code=\d+:\s*", "", str(exc)) or type(exc).__name__


def decorations(
    doc: Any, check: Callable[[], None] = _no_check, failed: dict[int, str] | None = None,
) -> tuple[set[Any], list[list[dict[str, Any]]]]:
    """Image keys that are decoration (logos and banners repeated across pages), and placements.

    `check` is called before each page (it raises when the time limit is past). A page MuPDF
    fails on has no placements; its reason goes to `failed` (page number: reason).
    """
    placements = []
    pages_of: dict[Any, set[int]] = defaultdict(set)
    spots: dict[Any, set[tuple[int, int, int]]] = defaultdict(set)
    for page in doc:
        check()
        try:
            infos = placements_of(page, check)
        except MUPDF_ERRORS as exc:
            if failed is not None:
                failed[page.number] = mupdf_message(exc)
            infos = []
        placements.append(infos)
        for info in infos:
            key = _key(info)
            pages_of[key].add(page.number)
            x0, y0, _x1, _y1 = info["bbox"]
            spots[key].add((page.number, round(x0 / 4), round(y0 / 4)))
    n = doc.page_count
    decor = set()
    for key, pages in pages_of.items():
        positions = defaultdict(int)
        for _, x, y in spots[key]:
            positions[(x, y)] += 1
        if len(pages) >= max(3, 0.5 * n) or max(positions.values()) >= 2:
            decor.add(key)
    return decor, placements


STRIP_SHARE = 0.6  # a strip is at most this thick for its length (a 512x128 band: 0.25)


def _resolution(info: dict[str, Any]) -> tuple[float, float] | None:
    """Pixels per point across and down of a placed image (None for unknown sizes)."""
    x0, y0, x1, y1 = info.get("placed", info["bbox"])
    a, b = info["transform"][:2]
    across, down = (info["height"], info["width"]) if abs(b) > abs(a) else (
        info["width"], info["height"])
    if x1 - x0 <= 0 or y1 - y0 <= 0 or not across or not down:
        return None
    return across / (x1 - x0), down / (y1 - y0)


def _same(u: float, v: float, tolerance: float) -> bool:
    return abs(u - v) <= tolerance


def _joins(a: BBox, b: BBox, res_a: Any, res_b: Any, gap: float) -> bool:
    """Two boxes are one figure: they overlap, or they touch as strips of one image (same
    width stacked, or same height in a row, thin, at the same resolution). Distinct panels
    placed edge to edge stay apart."""
    across = min(a[2], b[2]) - max(a[0], b[0])
    down = min(a[3], b[3]) - max(a[1], b[1])
    if across > gap and down > gap:
        return True  # one on top of the other (masks, overlays, collages)
    if across < -gap or down < -gap or res_a is None or res_b is None:
        return False
    if not all(_same(u, v, 0.03 * max(u, v)) for u, v in zip(res_a, res_b, strict=True)):
        return False
    if across > gap:  # stacked
        width = a[2] - a[0]
        thin = min(a[3] - a[1], b[3] - b[1]) <= STRIP_SHARE * width
        return thin and _same(a[0], b[0], gap) and _same(a[2], b[2], gap)
    if down > gap:  # in a row
        height = a[3] - a[1]
        thin = min(a[2] - a[0], b[2] - b[0]) <= STRIP_SHARE * height
        return thin and _same(a[1], b[1], gap) and _same(a[3], b[3], gap)
    return False


def _merge_pieces(items: list[tuple[BBox, dict[str, Any]]], gap: float,
                  check: Callable[[], None] = _no_check) -> list[tuple[BBox, list[Any]]]:
    """Union the placements that make one figure (see _joins), transitively.

    Pieces join by where they are placed (a collage of clipped images is one figure); the
    union is of what they show.
    """
    groups = [(box, info.get("placed", box), [info], _resolution(info)) for box, info in items]
    changed = True
    while changed:
        changed = False
        out: list[tuple[BBox, BBox, list[Any], Any]] = []
        for box, placed, members, res in groups:
            check()
            for k, (other, other_placed, other_members, other_res) in enumerate(out):
                if _joins(placed, other_placed, res, other_res, gap):
                    out[k] = (_union(box, other), _union(placed, other_placed),
                              other_members + members,
                              res if res == other_res else res or other_res)
                    changed = True
                    break
            else:
                out.append((box, placed, members, res))
        groups = out
    return [(box, members) for box, _placed, members, _res in groups]


def _union(a: BBox, b: BBox) -> BBox:
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def big_enough(box: BBox) -> bool:
    w, h = box[2] - box[0], box[3] - box[1]
    return w >= MIN_SIDE and h >= MIN_SIDE and w * h >= MIN_AREA


def image_regions(
    page: Any, infos: list[dict[str, Any]], decor: set[Any],
    check: Callable[[], None] = _no_check,
) -> list[Region]:
    """Image regions of a page: placements that touch merged, decoration and icons dropped."""
    area = page.rect
    items = []
    for info in infos:
        if _key(info) in decor:
            continue
        x0, y0, x1, y1 = info["bbox"]
        box = (max(x0, area.x0), max(y0, area.y0), min(x1, area.x1), min(y1, area.y1))
        if box[2] - box[0] < 1 or box[3] - box[1] < 1:
            continue
        items.append((box, info))
    regions = [
        Region(box, "image", pieces)
        for box, pieces in _merge_pieces(items, gap=1.5, check=check)
        if big_enough(box)
    ]
    return regions


def vector_regions(
    page: Any, images: list[Region], check: Callable[[], None] = _no_check
) -> list[Region]:
    """Clusters of vector drawings that are not on top of an image region."""
    area = page.rect
    page_area = area.width * area.height
    regions = []
    for rect in _vector_clusters(page, check):
        box = (rect.x0, rect.y0, rect.x1, rect.y1)
        if not big_enough(box) or (box[2] - box[0]) * (box[3] - box[1]) > 0.85 * page_area:
            continue
        if any(overlap_share(box, r.bbox) > 0.5 for r in images):
            continue
        regions.append(Region(box, "vector"))
    return regions


def _vector_clusters(page: Any, check: Callable[[], None]) -> list[Any]:
    if sum(len(content) for content in _contents(page)) > MAX_VECTOR_CONTENT:
        return []  # pathological page: millions of paths would outlast the time limit
    if _paint_count(page) > MAX_DRAWINGS:
        return []  # reading that many paths alone takes seconds
    drawings = page.get_drawings()
    check()
    if not drawings or len(drawings) > MAX_DRAWINGS:
        return []  # clustering is quadratic-ish: too many paths would outlast the time limit
    if page.rotation:  # drawings come unrotated; clustering clips them to the shown page
        drawings = [{**d, "rect": d["rect"] * page.rotation_matrix} for d in drawings]
    return page.cluster_drawings(drawings=drawings, x_tolerance=4, y_tolerance=4)


def overlap_share(a: BBox, b: BBox) -> float:
    """Share of `a`'s area that lies inside `b`."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    area = (a[2] - a[0]) * (a[3] - a[1])
    return max(0.0, w) * max(0.0, h) / area if area > 0 else 0.0
