"""Whether MuPDF's repair of a broken PDF lost content (cut-off or missing objects)."""

from __future__ import annotations

import re
from typing import Any

# MuPDF warnings, while opening and reading objects, that a repaired file lost something (an object cut off)
LOSS_WARNINGS = ("missing 'endobj'", "premature end", "truncated", "object out of range")


def lost_content(doc: Any, warnings: str) -> bool:
    """True when MuPDF's repair of a file lost content: an object was cut off, or a page, its
    content stream, or an XObject or font it uses is missing. Stale cross-reference offsets
    (a line added after the header) and padding after %%EOF make MuPDF repair too, losing
    nothing."""
    if any(marker in warnings for marker in LOSS_WARNINGS):
        return True
    for page in doc:
        if _missing(doc, page.xref, stream=False):
            return True
        streams = [*page.get_contents(), *_references(doc, page.xref, "Resources/XObject")]
        if any(_missing(doc, xref, stream=True) for xref in streams):
            return True
        if any(_missing(doc, xref, stream=False)
               for xref in _references(doc, page.xref, "Resources/Font")):
            return True
    return False


def _references(doc: Any, xref: int, key: str) -> list[int]:
    """Objects a page's resource dictionary (`key`, e.g. "Resources/XObject") refers to."""
    kind, value = doc.xref_get_key(xref, key)
    if kind == "xref":
        value = doc.xref_object(int(value.split()[0]), compressed=True)
    elif kind != "dict":
        return []
    return [int(n) for n in re.findall(r"(\d+) \d+ R\b", value)]


def _missing(doc: Any, xref: int, stream: bool) -> bool:
    """An object a page refers to is not in the (repaired) file, or not a stream as it must."""
    if not 0 < xref < doc.xref_length():
        return True
    if stream:
        return not doc.xref_is_stream(xref)
    return doc.xref_object(xref, compressed=True).strip() == "null"
