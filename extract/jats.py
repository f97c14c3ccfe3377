"""JATS full text (PMC / Europe PMC XML): metadata, licence, body text and exact figure captions."""

from __future__ import annotations

import functools
import io
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from extract.captions import parse_caption_start
from extract.panels import letter_regions
from extract.records import Figure

XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".tif", ".tiff", ".webp", ".eps", ".svg")


class JatsError(Exception):
    """XML that is not a JATS article."""


@dataclass
class JatsFigure:
    """One `<fig>`: its label, exact caption and graphic hrefs (extension removed)."""

    id: str | None
    label: str | None  # normalised: "Figure 2" (as printed when not a figure label)
    caption: str  # caption title and paragraphs, without the label
    graphics: list[str] = field(default_factory=list)
    group: str | None = None  # the id of the enclosing <fig-group>, if any
    panel: str | None = None  # "A", "B", ... for unlabelled figs inside a <fig-group>
    panel_caption: str | None = None  # such a fig's own caption


@dataclass
class Article:
    """What a JATS article says about itself and its figures."""

    title: str = ""
    abstract: str = ""
    license: str = ""  # licence URL when given, else the licence text
    doi: str | None = None
    body_text: str = ""
    figures: list[JatsFigure] = field(default_factory=list)


def _local(el: Any) -> str:
    tag = el.tag
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _text(el: Any | None) -> str:
    if el is None:
        return ""
    return re.sub(r"\s+", " ", "".join(el.itertext())).strip()


def _children(el: Any, name: str) -> list[Any]:
    return [c for c in el if _local(c) == name]


def _first(el: Any, name: str) -> Any | None:
    for c in el.iter():
        if _local(c) == name:
            return c
    return None


def strip_extension(href: str) -> str:
    """A graphic href without a known image extension ("pone.0046493.g001.tif" -> "...g001")."""
    lower = href.lower()
    for ext in _IMAGE_EXTENSIONS:
        if lower.endswith(ext):
            return href[: -len(ext)]
    return href


def parse_jats(data: bytes) -> Article:
    """Parse JATS XML bytes (no DTD loading, no entity expansion, no network)."""
    from lxml import etree

    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, recover=False
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise JatsError(f"not well-formed XML ({exc})") from None
    if _local(root) != "article":
        raise JatsError(f"not a JATS article (root element <{_local(root)}>)")
    article = Article()
    meta = _first(root, "article-meta")
    if meta is not None:
        article.title = _text(_first(meta, "article-title"))
        for aid in meta.iter():
            if _local(aid) == "article-id" and aid.get("pub-id-type") == "doi":
                article.doi = _text(aid)
        abstract = _first(meta, "abstract")
        article.abstract = " ".join(_text(p) for p in abstract.iter() if _local(p) == "p") \
            if abstract is not None else ""
        article.license = _license(meta)
    body = _first(root, "body")
    if body is not None:
        article.body_text = _body_text(body)
    article.figures = _figures(root)
    return article


def _license(meta: Any) -> str:
    permissions = _first(meta, "permissions")
    if permissions is None:
        return ""
    for el in permissions.iter():
        name = _local(el)
        if name == "license_ref" and _text(el):
            return _text(el)
        if name == "license" and el.get(XLINK_HREF):
            return el.get(XLINK_HREF)
    for el in permissions.iter():
        if _local(el) == "license":
            return _text(el)
    return ""


def _body_text(body: Any) -> str:
    """Paragraphs of the body outside figures and tables, one per line."""
    skip = {"fig", "fig-group", "table-wrap", "table-wrap-group"}
    out = []
    for p in body.iter():
        if _local(p) != "p":
            continue
        parent, inside = p.getparent(), False
        while parent is not None:
            if _local(parent) in skip:
                inside = True
                break
            parent = parent.getparent()
        if not inside:
            out.append(_text(p))
    return "\n".join(t for t in out if t)


def _label(text: str) -> str | None:
    if not text:
        return None
    parsed = parse_caption_start(text.rstrip(".:") + ".")
    return parsed[0] if parsed else text


def _caption(fig: Any) -> str:
    caption = next(iter(_children(fig, "caption")), None)
    if caption is None:
        return ""
    parts = []
    for el in caption:
        text = _text(el)
        if text:
            parts.append(text if text.endswith((".", ":", "?", "!")) else f"{text}.")
    return " ".join(parts)


def _graphics(fig: Any) -> list[str]:
    hrefs: list[str] = []
    for el in fig.iter():
        if _local(el) == "graphic" and el.get(XLINK_HREF):
            href = strip_extension(el.get(XLINK_HREF))
            if href not in hrefs:
                hrefs.append(href)
    return hrefs


def _figures(root: Any) -> list[JatsFigure]:
    figures: list[JatsFigure] = []
    for el in root.iter():
        if _local(el) == "fig" and _local(el.getparent()) != "fig-group":
            figures.append(JatsFigure(el.get("id"), _label(_text(_first_child(el, "label"))),
                                      _caption(el), _graphics(el)))
        elif _local(el) == "fig-group":
            group_label = _label(_text(_first_child(el, "label")))
            group_caption = _caption(el)
            for k, fig in enumerate(_children(el, "fig")):
                own = _caption(fig)
                raw = _text(_first_child(fig, "label"))
                letter = _panel_letter(raw)
                label = None if letter else _label(raw)
                caption = f"{group_caption} {own}".strip() if group_caption else own
                figures.append(JatsFigure(
                    fig.get("id"), label or group_label, caption, _graphics(fig),
                    el.get("id") or group_label,
                    None if label else letter or chr(ord("A") + k),
                    None if label else own or None))
    return figures


def _panel_letter(label: str) -> str | None:
    """"A" for a sub-figure label that is only a panel letter ("A", "(a)", "b.", "C)")."""
    match = re.fullmatch(r"\(?\s*([A-Za-z])\s*[).:]?", label.strip())
    return match.group(1).upper() if match else None


def _first_child(el: Any, name: str) -> Any | None:
    return next(iter(_children(el, name)), None)


def _find_image(images: dict[str, bytes], href: str) -> bytes | None:
    if href in images:
        return images[href]
    base = href.rsplit("/", 1)[-1]
    for key, data in images.items():
        if strip_extension(key) in (href, base) or strip_extension(key).rsplit("/", 1)[-1] == base:
            return data
    return None


def _size(data: bytes) -> tuple[int, int]:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return im.size


def _extension(data: bytes) -> str:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        fmt = (im.format or "png").lower()
    return {"jpeg": "jpg", "tiff": "tif"}.get(fmt, fmt)


@functools.lru_cache(maxsize=16)  # asked for the same bytes by several callers in one run
def graphic_problem(data: bytes | None) -> str | None:
    """Why a graphic's file cannot be used ("no image file", "empty file (0 bytes)", ...), or None."""
    if data is None:
        return "no image file"
    if not data:
        return "empty file (0 bytes)"
    from extract.render import image_problem

    try:
        _size(data)
        _extension(data)
    except Exception:  # Pillow raises many kinds for garbage; all are this one reason
        return "not a readable image"
    why = image_problem(data)
    return f"damaged image ({why})" if why else None


_FORMAT_RANK = {"TIFF": 0, "PNG": 1, "JPEG": 2, "WEBP": 3, "GIF": 5}  # others: 4


def _graphic_rank(data: bytes) -> tuple[int, int, int]:
    """Sort key of one candidate file: readable first, most pixels, then tif, png, jpg, gif."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            return 0, -im.width * im.height, _FORMAT_RANK.get(im.format or "", 4)
    except Exception:  # Pillow raises many kinds for garbage
        return 1, 0, 0


def best_graphic(files: list[bytes]) -> bytes | None:
    """Which of several files of one graphic to use (a figure and its thumbnail, TIFF and JPEG
    renditions): the largest readable image, lossless before lossy at equal size (tif, png,
    jpg; gif last). When none decodes, the first, so its problem can be reported."""
    if len(files) <= 1:
        return files[0] if files else None
    ranked = sorted(files, key=_graphic_rank)
    return next((data for data in ranked if graphic_problem(data) is None), ranked[0])


def graphic_files(folder: Path, hrefs: list[str], skip: Path | None = None) -> dict[str, bytes]:
    """The image file for each graphic href, found beside the article: files named like the
    href with any image extension or none (best_graphic picks among several). Files that
    resolve outside `folder` (links) and `skip` (the article itself) are ignored."""
    root = folder.resolve()
    by_stem: dict[str, list[Path]] = defaultdict(list)
    for candidate in sorted(folder.iterdir()):
        if candidate == skip or not candidate.is_file() or candidate.resolve().parent != root:
            continue
        by_stem[strip_extension(candidate.name)].append(candidate)
    images: dict[str, bytes] = {}
    for href in hrefs:
        paths = by_stem.get(strip_extension(href).replace("\\", "/").rsplit("/", 1)[-1], [])
        data = best_graphic([path.read_bytes() for path in paths])
        if data is not None:
            images[href] = data
    return images


def unreadable_graphics(article: Article, images: dict[str, bytes]) -> list[tuple[str, str]]:
    """(href, why) for each figure graphic whose image is missing, empty or not an image."""
    problems: dict[str, str] = {}
    for jf in article.figures:
        for href in jf.graphics:
            why = graphic_problem(_find_image(images, href))
            if why:
                problems.setdefault(href, why)
    return list(problems.items())


def figures_from_jats(
    article: Article, images: dict[str, bytes], split_panels: bool = True
) -> list[Figure]:
    """Figure records for an article's figures, given image bytes keyed by href (no extension).

    A figure with several graphics gives one record per graphic (panels A, B, ...); a single
    graphic is cut into panels when its caption names them and the grid agrees. Images are
    kept as delivered; panel crops are PNG. A graphic whose image is missing or unreadable
    is left out (its panel letter is not given to another; `unreadable_graphics` says which).
    """
    from extract.render import split_figure

    out: list[Figure] = []
    for jf in article.figures:
        found = [_find_image(images, href) for href in jf.graphics]
        if jf.panel:
            letters = [(jf.panel, jf.panel_caption)] * len(found)
        elif len(found) > 1:
            letters = letter_regions(len(found), jf.caption)
        else:
            letters = [(None, None)] * len(found)
        for data, (letter, part) in zip(found, letters, strict=True):
            if data is None or graphic_problem(data) is not None:
                continue
            w, h = _size(data)
            ext = _extension(data)
            whole = Figure(0, (0.0, 0.0, float(w), float(h)), jf.label, letter, jf.caption,
                           part, data, w, h, "jats", ext)
            panels = split_figure(whole) if split_panels and letter is None else []
            out.extend(panels or [whole])
    return out
