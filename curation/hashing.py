"""Image fingerprints for dedup: decoding, normalisation, perceptual hashes, patch descriptors."""

from __future__ import annotations

import functools
import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

WORK_SIDE = 256  # longest side of the grey working image
DRAFT_SIDE = 256  # JPEGs are decoded no smaller than this on their longest side
MAX_TRIM = 0.3  # share of a side that trimming may remove
THUMB_SIDE = 64  # side of the square, equalised thumbnail kept for verification
HASH_SIDE = 32  # the DCT runs on this square
HASH_LOW = 8  # its HASH_LOW x HASH_LOW lowest frequencies make the hash (64 bits)
WORDS = HASH_LOW * HASH_LOW // 64
DESCRIPTOR_SIDE = 24  # high-passed patches compared in bulk before the aligned search
# Sub-windows (relative size, x offset, y offset) hashed so that a crop of up to ~12% of
# either side still meets a window of the uncropped image.
WINDOW_SIZES = (0.94, 0.88)
WINDOW_SHIFTS = (0.0, 0.5, 1.0)
WINDOWS: tuple[tuple[float, float, float], ...] = tuple(
    (size, dx * (1 - size), dy * (1 - size))
    for size in WINDOW_SIZES
    for dx in WINDOW_SHIFTS
    for dy in WINDOW_SHIFTS
)


@dataclass
class Fingerprint:
    """What dedup keeps of one image file (cached in state by the file's sha256)."""

    sha256: str
    width: int
    height: int
    phash: np.ndarray  # (WORDS,) uint64: DCT hash of the whole normalised image
    windows: np.ndarray  # (len(WINDOWS), WORDS) uint64: hashes of the WINDOWS
    thumb: np.ndarray  # THUMB_SIDE x THUMB_SIDE uint8, trimmed and equalised
    aspect: float  # width / height of the trimmed content


def decode_grey(data: bytes | Path) -> tuple[np.ndarray, int, int]:
    """The image as a uint8 grey array (longest side <= WORK_SIDE) and its full size."""
    from PIL import Image  # noqa: PLC0415 - Pillow only when images are read

    from cxrbank.greys import grey8  # noqa: PLC0415

    source = io.BytesIO(data) if isinstance(data, bytes) else data
    with Image.open(source) as image:
        width, height = image.size
        if image.format == "JPEG":  # DCT scaling: decode at 1/2, 1/4 or 1/8 where that
            # still leaves DRAFT_SIDE on the longest side (all that the thumbnail needs)
            step = max(width, height) / DRAFT_SIDE
            image.draft("L", (max(1, int(width / step)), max(1, int(height / step))))
        if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
            rgba = image.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
            image = Image.alpha_composite(background, rgba)
        grey = grey8(image)
        grey.thumbnail((WORK_SIDE, WORK_SIDE), Image.Resampling.BOX, reducing_gap=2.0)
        return np.asarray(grey, dtype=np.uint8), width, height


def _edge_runs(lines: np.ndarray, tolerance: float, share: float) -> tuple[int, int] | None:
    """How many leading and trailing lines are (nearly) one value, or None when all are.

    Lines are tested from each end in small chunks, so a picture with content at its edges
    costs a few lines, not the whole image.
    """
    n = len(lines)

    def uniform(start: int, stop: int) -> np.ndarray:
        # within tolerance of the line's mean (a stand-in for its median, far cheaper)
        part = lines[start:stop].astype(np.float32)
        centre = part.mean(axis=1, keepdims=True)
        return (np.abs(part - centre) <= tolerance).mean(axis=1) >= share

    lead, step = 0, 8
    while lead < n:
        flags = uniform(lead, min(n, lead + step))
        if not flags.all():
            lead += int(np.argmin(flags))
            break
        lead += len(flags)
        step *= 2
    if lead >= n:
        return None
    trail, step = 0, 8
    while True:  # a line that is not uniform exists at index lead, so this stops
        flags = uniform(max(lead, n - trail - step), n - trail)[::-1]
        if not flags.all():
            return lead, trail + int(np.argmin(flags))
        trail += len(flags)
        step *= 2


def trim_borders(grey: np.ndarray, tolerance: float = 12.0, share: float = 0.99) -> np.ndarray:
    """The image without edge bands that are (nearly) one value: padding, frames, letterboxing.

    Bands are peeled in turn (a white frame around a black letterbox goes in two rounds).
    """
    grey = np.asarray(grey, dtype=np.uint8)
    top, bottom, left, right = 0, grey.shape[0], 0, grey.shape[1]
    # never more than MAX_TRIM of a side: past that it is content, not padding
    limit = (round(MAX_TRIM * bottom), round((1 - MAX_TRIM) * bottom),
             round(MAX_TRIM * right), round((1 - MAX_TRIM) * right))
    for _ in range(3):
        part = grey[top:bottom, left:right]
        rows = _edge_runs(part, tolerance, share)
        cols = rows and _edge_runs(part.T, tolerance, share)
        if rows is None or cols is None:
            break
        cut = (rows[0], len(part) - rows[1], cols[0], part.shape[1] - cols[1])
        if cut == (0, part.shape[0], 0, part.shape[1]):
            break
        new = (top + cut[0], top + cut[1], left + cut[2], left + cut[3])
        if new[0] > limit[0] or new[1] < limit[1] or new[2] > limit[2] or new[3] < limit[3]:
            break
        top, bottom, left, right = new
    return grey[top:bottom, left:right]


def equalise(grey: np.ndarray) -> np.ndarray:
    """Pixel ranks scaled to 0..255: the same for any monotonic brightness/contrast/gamma change."""
    counts = np.bincount(grey.ravel(), minlength=256)
    cdf = (np.cumsum(counts) - counts / 2) / grey.size
    return np.take((cdf * 255.0).astype(np.float32), grey)


@functools.lru_cache(maxsize=4096)
def _area_weights(n_out: int, n_in: int) -> np.ndarray:
    """(n_out, n_in) matrix averaging each output cell's share of the input (area resize)."""
    edges = np.linspace(0, n_in, n_out + 1)
    starts, stops = edges[:-1, None], edges[1:, None]
    cells = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(stops, cells + 1) - np.maximum(starts, cells), 0, None)
    return (overlap / overlap.sum(axis=1, keepdims=True)).astype(np.float32)


def resize(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """Area-averaged resize of a 2-D array (up or down), as float32."""
    if max(array.shape) > 96:  # large: Pillow's box filter is faster than the matrices
        from PIL import Image  # noqa: PLC0415

        picture = Image.fromarray(np.ascontiguousarray(array, dtype=np.float32), mode="F")
        return np.asarray(picture.resize((width, height), Image.Resampling.BOX), dtype=np.float32)
    rows = _area_weights(height, array.shape[0])
    cols = _area_weights(width, array.shape[1])
    return rows @ np.asarray(array, dtype=np.float32) @ cols.T


def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    x = np.arange(n)[None, :]
    matrix = np.cos(np.pi * (2 * x + 1) * k / (2 * n)) * np.sqrt(2 / n)
    matrix[0] /= np.sqrt(2)
    return matrix


_DCT = _dct_matrix(HASH_SIDE)[:HASH_LOW]


def pack_hashes(low: np.ndarray) -> np.ndarray:
    """Perceptual hashes from (K, HASH_LOW, HASH_LOW) lowest DCT frequencies: their signs
    against their median (the DC term left out of it), packed: (K, WORDS) uint64."""
    low = low.reshape(len(low), -1)
    middle = (low.shape[1] - 1) // 2  # HASH_LOW ** 2 - 1 is odd: the median is one value
    median = np.partition(low[:, 1:], middle, axis=1)[:, middle : middle + 1]
    bits = low > median
    return np.packbits(bits, axis=1).view(">u8").astype(np.uint64)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bit distances between packed hashes (broadcast over all but the last axis)."""
    if a.shape[-1] == 1 and b.shape[-1] == 1:  # one word: no sum over words to make
        return np.bitwise_count(np.bitwise_xor(a[..., 0], b[..., 0]))
    return np.bitwise_count(np.bitwise_xor(a, b)).sum(axis=-1, dtype=np.int32)


def grid_hashes(grid: np.ndarray) -> np.ndarray:
    """Hashes of the whole and of each of the WINDOWS of a square of equalised content:
    (1 + len(WINDOWS), WORDS) uint64. Resizing each box to HASH_SIDE and its DCT are one
    linear map, folded into the box matrices."""
    return pack_hashes(box_products(grid[None], HASH_SIDE, dct=True)[0])


def fingerprint(data: bytes | Path, sha256: str = "") -> Fingerprint:
    """Decode, normalise (grey, borders trimmed, equalised) and hash one image."""
    grey, width, height = decode_grey(data)
    return fingerprint_from_grey(grey, width, height, sha256)


def fingerprint_from_grey(grey: np.ndarray, width: int, height: int, sha256: str = "") -> Fingerprint:
    """The fingerprint of an already decoded grey working image."""
    content = equalise(trim_borders(grey))
    thumb = resize(content, THUMB_SIDE, THUMB_SIDE)  # THUMB_SIDE == 2 * HASH_SIDE
    hashes = grid_hashes(thumb)
    return Fingerprint(
        sha256=sha256,
        width=width,
        height=height,
        phash=hashes[0],
        windows=hashes[1:],
        thumb=np.clip(np.rint(thumb), 0, 255).astype(np.uint8),
        aspect=content.shape[1] / content.shape[0],
    )


@functools.lru_cache(maxsize=64)
def _runs(n: int, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ends, starts and 1 / length of each (2 radius + 1) run of 0..n, clipped at the edges."""
    index = np.arange(n)
    hi, lo = np.minimum(index + radius + 1, n), np.maximum(index - radius, 0)
    return hi, lo, (1.0 / (hi - lo)).astype(np.float32)


def _run_means(image: np.ndarray, radii: tuple[int, ...], axis: int) -> list[np.ndarray]:
    """Means of the clipped (2 radius + 1) runs along axis -1 or -2, for each of radii
    (one cumulative-sum table serves them all)."""
    n = image.shape[axis]
    shape = list(image.shape)
    shape[axis] = n + 1
    table = np.zeros(shape, np.float32)
    np.cumsum(image, axis=axis, out=table[..., 1:] if axis == -1 else table[..., 1:, :])
    out = []
    for radius in radii:
        hi, lo, scale = _runs(n, radius)
        if axis == -1:
            out.append((table[..., hi] - table[..., lo]) * scale)
        else:
            out.append((table[..., hi, :] - table[..., lo, :]) * scale[:, None])
    return out


def box_blur(image: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a (2 radius + 1) square around each pixel (the square clipped at the edges),
    over the last two axes (a stack of images blurs each)."""
    return _run_means(_run_means(image, (radius,), -2)[0], (radius,), -1)[0]


BAND = 1  # blur radius applied before the high pass: resampling noise does not count


def high_pass(image: np.ndarray, radius: int) -> np.ndarray:
    """Band-passed image (box blur of radius BAND less that of radius): edges and texture,
    without the shading all chests share."""
    fine, coarse = _run_means(image, (BAND, radius), -2)
    return _run_means(fine, (BAND,), -1)[0] - _run_means(coarse, (radius,), -1)[0]


@functools.lru_cache(maxsize=8)
def _box_axes(side: int, out: int, dct: bool) -> tuple[np.ndarray, ...]:
    """Area-resize matrices of a side-long axis onto out cells, for the whole axis, then for
    each WINDOW_SIZES the boxes at each of WINDOW_SHIFTS stacked: (shifts x out, side). With
    dct, each box's resize is followed by the lowest HASH_LOW rows of the DCT."""
    axes = [_area_weights(out, side)[None]]
    for size in WINDOW_SIZES:
        extent = round(size * side)
        stack = np.zeros((len(WINDOW_SHIFTS), out, side), np.float32)
        for i, shift in enumerate(WINDOW_SHIFTS):
            start = round(shift * (1 - size) * side)
            stack[i, :, start : start + extent] = _area_weights(out, extent)
        axes.append(stack)
    if dct:
        axes = [np.matmul(_DCT.astype(np.float32), stack) for stack in axes]
    return tuple(stack.reshape(-1, side) for stack in axes)


def box_products(images: np.ndarray, out: int, dct: bool = False) -> np.ndarray:
    """Each of a stack of square images resized by area, whole and in each of the WINDOWS
    (optionally then DCT'd to its HASH_LOW lowest frequencies): (N, 1 + len(WINDOWS), m, m).

    Boxes of one size share their row and column matrices, so one product per size gives
    every shift: block (dy, dx) of it is the window at those shifts.
    """
    images = np.asarray(images, dtype=np.float32)
    parts = []
    for weights in _box_axes(images.shape[-1], out, dct):
        m = HASH_LOW if dct else out
        k = weights.shape[0] // m
        product = np.matmul(np.matmul(weights, images), weights.T)  # (N, k m, k m)
        blocks = product.reshape(len(images), k, m, k, m).transpose(0, 3, 1, 2, 4)
        parts.append(blocks.reshape(len(images), k * k, m, m))  # WINDOWS order: dx, then dy
    return np.concatenate(parts, axis=1)


def descriptor_stack(thumbs: np.ndarray) -> np.ndarray:
    """Unit-norm band-passed patches of the whole of each thumbnail and of each window,
    flattened: (N, 1 + len(WINDOWS), DESCRIPTOR_SIDE ** 2).

    Row 0 is the whole image, row k+1 is WINDOWS[k]; a dot product of two rows is their
    normalised cross-correlation at that alignment.
    """
    count = 1 + len(WINDOWS)
    out = np.empty((len(thumbs), count, DESCRIPTOR_SIDE * DESCRIPTOR_SIDE), np.float32)

    def chunk(start: int) -> None:
        image = high_pass(thumbs[start : start + 128].astype(np.float32), 4)
        patches = box_products(image, DESCRIPTOR_SIDE).reshape(len(image), count, -1)
        patches -= patches.mean(axis=2, keepdims=True)
        patches /= np.linalg.norm(patches, axis=2, keepdims=True) + 1e-6
        out[start : start + len(image)] = patches

    in_threads(chunk, range(0, len(thumbs), 128))
    return out


def in_threads(work: Callable[[int], None], items: range) -> None:
    """work(item) for each item, on up to one thread per core (numpy lets go of the GIL)."""
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

    workers = min(len(items), os.cpu_count() or 1, 4)
    if workers <= 1:
        for item in items:
            work(item)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(work, items))
