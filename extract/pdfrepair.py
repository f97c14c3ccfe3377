"""Whether MuPDF's repair of a broken PDF lost content (cut-off or missing objects)."""

from __future__ import annotations

import re
from typing import Any

# MuPDF warnings, while opening and reading objects, that a repaired file lost something (an object cut off)
LOSS_WARNINGS = ("missing 'endobj'", "premature end", "truncated", "object out of range")
# MuPDF warnings, while decoding a stream, that its data was cut (the rest padded or dropped)
DECODE_WARNINGS = ("truncated", "zlib error", "premature end", "unexpected end")
MAX_FORM_DEPTH = 12  # forms nested deeper than this are not followed
LENGTH_SLACK = 16  # bytes a stream may fall short of its written /Length (line ends)

# an object's header up to its stream keyword, with a direct /Length
_STREAM_HEAD = re.compile(rb"(?<![0-9])(\d+) \d+ obj\s*<<((?:(?!endobj|stream\b).){0,4096}?)stream\b",
                          re.DOTALL)
_LENGTH = re.compile(rb"/Length\s+(\d+)(?!\d)(?!\s+\d+\s+R)")  # not "/Length 1234 0 R"

# a resource name used by the content: /Name Do (an XObject) or /Name size Tf (a font)
_USED = re.compile(rb"/([^\s/\[\]<>(){}%]+)\s+(?:Do|[-+]?[\d.]+\s+Tf)(?![A-Za-z0-9*])")


def lost_content(doc: Any, warnings: str, data: bytes = b"") -> bool:
    """True when MuPDF's repair of a file lost content: an object was cut off, a page, its
    content stream, or an XObject or font its content uses is missing, or a stream (an
    image, a content stream) decodes only in part or is shorter than the /Length the file
    (`data`) gives it (MuPDF's repair takes a stream up to the next endstream: a JPEG cut
    in the middle still decodes). Stale cross-reference offsets (a line added after the
    header) and padding after %%EOF make MuPDF repair too, losing nothing."""
    if any(marker in warnings for marker in LOSS_WARNINGS):
        return True
    for page in doc:
        if _missing(doc, page.xref, stream=False):
            return True
        contents = page.get_contents()
        if any(_missing(doc, xref, stream=True) for xref in contents):
            return True
        if _uses_missing(doc, _stream(doc, contents), _resource_holder(doc, page.xref), set()):
            return True
    return _short_streams(doc, data) or _cut_streams(doc)


def _short_streams(doc: Any, data: bytes) -> bool:
    """A stream is shorter than the direct /Length written in the file (its last version)."""
    written: dict[int, int] = {}
    for m in _STREAM_HEAD.finditer(data):
        length = _LENGTH.search(m.group(2))
        written[int(m.group(1))] = int(length.group(1)) if length else -1
    for xref, length in written.items():
        if length < 0 or not 0 < xref < doc.xref_length():
            continue
        try:
            if doc.xref_is_stream(xref) and length - len(doc.xref_stream_raw(xref)) > LENGTH_SLACK:
                return True
        except Exception:  # a stream MuPDF cannot read is caught by the other checks
            continue
    return False


def _resource_holder(doc: Any, xref: int) -> int:
    """The object whose /Resources a page uses: the page's own, or the nearest /Parent's."""
    seen = set()
    while xref not in seen:
        seen.add(xref)
        if doc.xref_get_key(xref, "Resources")[0] in ("dict", "xref"):
            return xref
        kind, value = doc.xref_get_key(xref, "Parent")
        if kind != "xref":
            break
        xref = int(value.split()[0])
    return 0


def _stream(doc: Any, xrefs: list[int]) -> bytes:
    out = []
    for xref in xrefs:
        try:
            out.append(doc.xref_stream(xref) or b"")
        except Exception:  # a stream MuPDF cannot read is caught by _missing or the decode check
            continue
    return b"\n".join(out)


def _uses_missing(doc: Any, content: bytes, holder: int, seen: set[int]) -> bool:
    """An XObject or font that `content` uses (by name, in `holder`'s /Resources) is missing;
    forms are followed into their own content and resources (or the holder's, when a form has
    none). Resource entries the content does not use are not checked."""
    for name in {m.group(1).decode("latin-1") for m in _USED.finditer(content)}:
        for kind in ("XObject", "Font"):
            ref = _resource(doc, holder, kind, name) if holder else None
            if ref is None:
                continue
            if _missing(doc, ref, stream=kind == "XObject"):
                return True
            if kind == "Font" and _font_file_missing(doc, ref):
                return True
            if kind == "XObject" and ref not in seen and len(seen) < MAX_FORM_DEPTH * 100:
                seen.add(ref)
                if doc.xref_get_key(ref, "Subtype")[1] == "/Form":
                    own = ref if doc.xref_get_key(ref, "Resources")[0] != "null" else holder
                    if _uses_missing(doc, _stream(doc, [ref]), own, seen):
                        return True
    return False


def _font_file_missing(doc: Any, font: int) -> bool:
    """A font's embedded font program (its or, for a Type0 font, its descendant's
    FontDescriptor/FontFile*) is missing or not a stream."""
    fonts = [font]
    kind, value = doc.xref_get_key(font, "DescendantFonts")
    if kind == "xref":
        value = doc.xref_object(int(value.split()[0]), compressed=True)
    if kind in ("array", "xref"):
        fonts += [int(n) for n in re.findall(r"(\d+) \d+ R\b", value)]
    for xref in fonts:
        if _missing(doc, xref, stream=False):
            return True
        for key in ("FontFile", "FontFile2", "FontFile3"):
            kind, value = doc.xref_get_key(xref, f"FontDescriptor/{key}")
            if kind == "xref" and _missing(doc, int(value.split()[0]), stream=True):
                return True
    return False


def _resource(doc: Any, holder: int, kind: str, name: str) -> int | None:
    """The object `name` names among `holder`'s /Resources/`kind` (None: no such reference)."""
    entry, value = doc.xref_get_key(holder, f"Resources/{kind}/{name}")
    return int(value.split()[0]) if entry == "xref" else None


def _cut_streams(doc: Any) -> bool:
    """A stream (content, font, image) decodes only in part: MuPDF pads a cut-off image and
    ignores a Flate stream's broken end, warning only when the stream is decoded."""
    import pymupdf

    for xref in range(1, doc.xref_length()):
        try:
            if not doc.xref_is_stream(xref):
                continue
            pymupdf.TOOLS.reset_mupdf_warnings()
            doc.xref_stream(xref)
            if doc.xref_get_key(xref, "Subtype")[1] == "/Image":
                pymupdf.Pixmap(doc, xref)
        except Exception:  # an image MuPDF cannot decode at all is reported when rendered
            continue
        finally:
            warnings = pymupdf.TOOLS.mupdf_warnings()
        if any(marker in warnings for marker in DECODE_WARNINGS):
            return True
    return False


def _missing(doc: Any, xref: int, stream: bool) -> bool:
    """An object a page refers to is not in the (repaired) file, or not a stream as it must."""
    if not 0 < xref < doc.xref_length():
        return True
    if stream:
        return not doc.xref_is_stream(xref)
    return doc.xref_object(xref, compressed=True).strip() == "null"
