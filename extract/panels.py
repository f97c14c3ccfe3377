"""Multi-panel figures: find uniform gutters, cut the grid, and give each panel its caption part."""

from __future__ import annotations

import io
from typing import NamedTuple

import numpy as np

from extract.captions import caption_parts

MIN_PANEL = 0.15  # a panel spans at least this share of the figure's width or height
MIN_LABEL = 0.05  # a sliver narrower than this between gutters is a panel letter, not a panel
MIN_GUTTER = 3  # a gutter is at least this many pixels wide
TOLERANCE = 14  # grey levels a gutter line may vary (JPEG noise)
UNIFORM_SHARE = 0.99  # a segment this much of one grey level (within 2 TOLERANCE) is no panel
MAX_PANELS = 26  # more is not a panel grid: the figure is kept whole


class Panel(NamedTuple):
    """One panel of a figure: its letter, pixel box (x0, y0, x1, y1) and caption part."""

    letter: str
    box: tuple[int, int, int, int]
    caption: str | None


def to_gray(image: bytes | np.ndarray) -> np.ndarray:
    """A 2-D uint8 array from image bytes (any Pillow format) or an array (H,W) / (H,W,C)."""
    if isinstance(image, (bytes, bytearray)):
        from PIL import Image

        from cxrbank.greys import grey8

        with Image.open(io.BytesIO(image)) as im:
            if im.mode in ("RGBA", "LA", "P", "PA"):
                im = im.convert("RGBA")
                white = Image.new("RGBA", im.size, (255, 255, 255, 255))
                im = Image.alpha_composite(white, im)
            arr = np.asarray(grey8(im))  # 16-bit greys scaled, not clipped to white
        return arr
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] >= 3 and arr.dtype == np.uint8:
        # the channels' mean in uint16 (a float64 mean of a 12000 px square took 1.15 GB)
        return (arr[..., :3].sum(axis=2, dtype=np.uint16) // 3).astype(np.uint8)
    if arr.ndim == 3:
        arr = arr[..., :3].mean(axis=2) if arr.shape[2] >= 3 else arr[..., 0]
    if arr.dtype != np.uint8:
        arr = arr.astype(np.float64)
        if arr.max() > 255:
            arr = arr * (255.0 / arr.max())
        arr = arr.astype(np.uint8)
    return arr


def _blank_runs(gray: np.ndarray, axis: int) -> list[tuple[int, int]]:
    """Interior runs of uniform lines (rows for axis=1, columns for axis=0) of one grey level,
    white, black or any grey: candidate gutters."""
    lines = gray if axis == 1 else gray.T
    lo = lines.min(axis=1).astype(np.int16)
    hi = lines.max(axis=1).astype(np.int16)
    uniform = ((hi - lo) <= TOLERANCE).tolist()
    level = ((lo + hi) // 2).tolist()
    n = len(uniform)
    runs: list[tuple[int, int]] = []
    start: int | None = None
    for i in range(n + 1):
        same = i < n and uniform[i] and (start is None or abs(level[i] - level[start]) <= TOLERANCE)
        if start is not None and not same:
            if start > 0 and i < n and i - start >= MIN_GUTTER:
                runs.append((start, i))
            start = None
        if start is None and i < n and uniform[i]:
            start = i
    return runs


def _cuts(gray: np.ndarray, axis: int) -> list[tuple[int, int]]:
    """Segments between gutters along one axis, each at least MIN_PANEL of the size."""
    n = gray.shape[0] if axis == 1 else gray.shape[1]
    bounds = [0]
    ends: list[int] = []
    for a, b in _blank_runs(gray, axis):
        ends.append(a)
        bounds.append(b)
    ends.append(n)
    segments = [(s, e) for s, e in zip(bounds, ends, strict=True)]
    segments = _trim(gray, segments, axis)
    segments = _join_labels([(s, e) for s, e in segments if e - s > 0], n)
    if len(segments) < 2 or any(e - s < MIN_PANEL * n for s, e in segments):
        return [(0, n)]
    return segments


def _join_labels(segments: list[tuple[int, int]], n: int) -> list[tuple[int, int]]:
    """Join a sliver (a panel letter between two gutters, under MIN_LABEL of the size) to the
    neighbour across the narrower gutter; a wider short segment still keeps the figure whole."""
    segments = list(segments)
    while len(segments) > 1:
        k = min(range(len(segments)), key=lambda i: segments[i][1] - segments[i][0])
        s, e = segments[k]
        if e - s >= MIN_LABEL * n:
            break
        left = s - segments[k - 1][1] if k > 0 else n
        right = segments[k + 1][0] - e if k + 1 < len(segments) else n
        j = k - 1 if left <= right else k + 1
        segments[min(j, k)] = (segments[min(j, k)][0], segments[max(j, k)][1])
        del segments[max(j, k)]
    return segments


def _trim(gray: np.ndarray, segments: list[tuple[int, int]], axis: int) -> list[tuple[int, int]]:
    """Drop segments that are background (outer margins, a black border with JPEG noise):
    flat, or, from MIN_LABEL of the size up (slivers may be panel letters), near-uniform."""
    n = gray.shape[0] if axis == 1 else gray.shape[1]
    kept = []
    for s, e in segments:
        part = gray[s:e] if axis == 1 else gray[:, s:e]
        if not part.size or int(part.max()) - int(part.min()) <= TOLERANCE:
            continue
        if e - s >= MIN_LABEL * n and _near_uniform(part):
            continue
        kept.append((s, e))
    return kept


def _near_uniform(part: np.ndarray) -> bool:
    """At least UNIFORM_SHARE of the pixels (sampled) lie within one gutter's grey range."""
    step = max(1, int((part.size / 250_000) ** 0.5))
    sample = part[::step, ::step]
    counts = np.bincount(sample.ravel(), minlength=256).cumsum()
    window = 2 * TOLERANCE + 1
    best = max(int(counts[window - 1]), int((counts[window:] - counts[:-window]).max()))
    return best >= UNIFORM_SHARE * sample.size


def find_grid(gray: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Panel boxes (x0, y0, x1, y1) in reading order: rows first, then columns within each row.

    Cuts full-width gutters into rows, then each row into columns by full-height gutters
    (and the other way round when there are no full-width gutters): 1x2, 2x1, 2x2, 1x3 ...
    """
    h, w = gray.shape
    boxes: list[tuple[int, int, int, int]] = []
    rows = _cuts(gray, axis=1)
    if len(rows) > 1:
        for y0, y1 in rows:
            for x0, x1 in _cuts(gray[y0:y1], axis=0):
                boxes.append((x0, y0, x1, y1))
        return boxes
    cols = _cuts(gray, axis=0)
    if len(cols) > 1:
        for x0, x1 in cols:
            for y0, y1 in _cuts(gray[:, x0:x1], axis=1):
                boxes.append((x0, y0, x1, y1))
        return _reading_order(boxes)
    return [(0, 0, w, h)]


def _reading_order(boxes: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    rows: list[list[tuple[int, int, int, int]]] = []
    for box in sorted(boxes, key=lambda b: (b[1], b[0])):
        for row in rows:
            top = row[0]
            overlap = min(top[3], box[3]) - max(top[1], box[1])
            if overlap > 0.5 * min(top[3] - top[1], box[3] - box[1]):
                row.append(box)
                break
        else:
            rows.append([box])
    return [b for row in rows for b in sorted(row, key=lambda b: b[0])]


def split_panels(
    image: bytes | np.ndarray, caption: str = "", *, require_marks: bool = True
) -> list[Panel]:
    """Panels of a multi-panel figure with their caption parts; [] when it is one picture.

    A figure is cut only when the grid's panel count equals the number of panels the
    caption names ("(A) ... (B) ..."): diagrams with white space are not cut, and a figure
    is kept whole rather than cut wrongly. `require_marks=False` cuts any clean grid.
    """
    _, parts = caption_parts(caption)
    if require_marks and not parts:
        return []
    gray = to_gray(image)
    if gray.shape[0] < 40 or gray.shape[1] < 40:
        return []
    boxes = find_grid(gray)
    if not 2 <= len(boxes) <= MAX_PANELS or (parts and len(parts) != len(boxes)):
        return []
    letters = list(parts) if parts else [panel_letter(k) for k in range(len(boxes))]
    return [
        Panel(letter, box, parts.get(letter)) for letter, box in zip(letters, boxes, strict=True)
    ]


def letter_regions(count: int, caption: str) -> list[tuple[str, str | None]]:
    """Letters and caption parts for `count` panels already separated on the page."""
    _, parts = caption_parts(caption)
    if parts and len(parts) == count:
        return [(letter, text) for letter, text in parts.items()]
    return [(panel_letter(k), parts.get(panel_letter(k))) for k in range(count)]


def panel_letter(k: int) -> str:
    """The k-th panel's letter: A … Z, then AA, AB, … (never punctuation)."""
    letters = ""
    k += 1
    while k:
        k, rem = divmod(k - 1, 26)
        letters = chr(ord("A") + rem) + letters
    return letters
