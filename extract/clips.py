"""The clip in force at each image draw of a page, traced through MuPDF's device interface."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from extract.records import BBox

UNBOUNDED: BBox = (-1e9, -1e9, 1e9, 1e9)
MAX_CLIPS = 20_000  # clip operators on a page beyond which no clip is traced (then none is known)
CHECK_EVERY = 10_000  # device events between two time checks while tracing

# a clip operator (W or W*) as a token, not a name (/W) or part of a word, or a text render
# mode that adds the text to the clip (4 to 7 Tr)
_CLIP = re.compile(rb"(?<![A-Za-z0-9*/#])W\*?(?![A-Za-z0-9*#])"
                   rb"|(?<![A-Za-z0-9.#/+-])[4-7]\s+Tr(?![A-Za-z0-9*#])")


def clip_operators(contents: list[bytes]) -> int:
    """How many clip operators (W, W*, text render modes 4 to 7) the content streams hold."""
    return sum(len(_CLIP.findall(content)) for content in contents)


def _intersect(a: BBox, b: BBox) -> BBox:
    return (max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3]))


def _box(rect: Any) -> BBox:
    return (rect.x0, rect.y0, rect.x1, rect.y1)


@functools.cache
def _tracer_class() -> Any:
    """A device class recording each image's box and the bounds of the clip in force when drawn.

    Every clip pushes the intersection of its bounds with the clip below it; pop_clip takes
    it off. A soft mask (begin_mask) pushes no narrower area: what a mask hides is not known
    here. Bounds of a clip never cut what the clip lets show.
    """
    from pymupdf import mupdf

    def bound_path(path: Any, stroke: Any, ctm: Any) -> BBox:
        return _box(mupdf.ll_fz_bound_path(path, stroke, ctm))

    def bound_text(text: Any, stroke: Any, ctm: Any) -> BBox:
        return _box(mupdf.ll_fz_bound_text(text, stroke, ctm))

    def placed(ctm: Any) -> BBox:
        return _box(mupdf.ll_fz_transform_rect(mupdf.fz_unit_rect, ctm))

    class ClipTracer(mupdf.FzDevice2):
        def __init__(self, check: Callable[[], None], cookie: Any) -> None:
            super().__init__()
            self.stack: list[BBox] = [UNBOUNDED]
            self.images: list[tuple[BBox, BBox]] = []
            self.check, self.cookie, self.events, self.aborted = check, cookie, 0, False
            for name in ("clip_path", "clip_stroke_path", "clip_text", "clip_stroke_text",
                         "clip_image_mask", "pop_clip", "begin_mask", "fill_image",
                         "fill_image_mask"):
                getattr(self, f"use_virtual_{name}")()

        def tick(self) -> None:
            """Count a device event; past the time limit, stop MuPDF's run of the page."""
            self.events += 1
            if self.events % CHECK_EVERY == 0 and not self.aborted:
                try:
                    self.check()
                except Exception:
                    self.aborted = True
                    self.cookie.m_internal.abort = 1

        def push(self, bounds: BBox) -> None:
            self.tick()
            self.stack.append(_intersect(self.stack[-1], bounds))

        def clip_path(self, _ctx, path, _even_odd, ctm, _scissor):
            self.push(bound_path(path, None, ctm))

        def clip_stroke_path(self, _ctx, path, stroke, ctm, _scissor):
            self.push(bound_path(path, stroke, ctm))

        def clip_text(self, _ctx, text, ctm, _scissor):
            self.push(bound_text(text, None, ctm))

        def clip_stroke_text(self, _ctx, text, stroke, ctm, _scissor):
            self.push(bound_text(text, stroke, ctm))

        def clip_image_mask(self, _ctx, _image, ctm, _scissor):
            self.push(placed(ctm))

        def begin_mask(self, _ctx, _area, _lum, _cs, _bc, _cp):
            self.push(UNBOUNDED)

        def pop_clip(self, _ctx):
            self.tick()
            if len(self.stack) > 1:
                self.stack.pop()

        def fill_image(self, _ctx, _image, ctm, _alpha, _cp):
            self.tick()
            self.images.append((placed(ctm), self.stack[-1]))

        def fill_image_mask(self, _ctx, _image, ctm, _cs, _color, _alpha, _cp):
            self.tick()
            self.images.append((placed(ctm), self.stack[-1]))

    return ClipTracer


def _no_check() -> None:
    """The default time check: none."""


def image_clips(
    page: Any, check: Callable[[], None] = _no_check
) -> list[tuple[BBox, BBox]] | None:
    """(image box, clip bounds in force when it is drawn) for each image draw of the page, in
    the shown page's coordinates (as page.rect); UNBOUNDED where no clip applies. None when
    the page cannot be traced (then no clip is known), or when `check` raises during the
    trace (the time limit is past: the trace stops there)."""
    from pymupdf import mupdf

    try:
        cookie = mupdf.FzCookie()
        device = _tracer_class()(check, cookie)
        mupdf.fz_run_page(page.this, device, mupdf.FzMatrix(), cookie)
        mupdf.fz_close_device(device)
    except Exception:  # MuPDF fails on some damaged content: then no clip is known
        return None
    return None if device.aborted else device.images
