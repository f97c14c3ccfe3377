"""Aligned verification of a dedup candidate pair: band-passed cross-correlation over
shifts, scales and small turns of one thumbnail inside the other."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from curation.hashing import high_pass, resize


@dataclass
class _Field:
    """A search image prepared once for many templates: its spectrum and sum tables."""

    image: np.ndarray
    spectrum: np.ndarray
    sums: np.ndarray
    squares: np.ndarray
    norms: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)  # by template shape


def _prepare(image: np.ndarray) -> _Field:
    return _Field(
        image=image,
        spectrum=np.fft.rfft2(image),
        sums=np.pad(image, ((1, 0), (1, 0))).cumsum(0).cumsum(1),
        squares=np.pad(image * image, ((1, 0), (1, 0))).cumsum(0).cumsum(1),
    )


def _template_spectrum(template: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Conjugate spectrum of the zero-mean, unit-norm template padded to shape."""
    t = template - template.mean()
    t /= np.linalg.norm(t) + 1e-6
    return np.conj(np.fft.rfft2(t, s=shape))


def _best_nccs(field: _Field, templates: list[tuple[np.ndarray, np.ndarray]]) -> list[float]:
    """Largest normalised cross-correlation of each (template, _template_spectrum) over every
    position inside field (one batched inverse FFT for them all)."""
    big_h, big_w = field.image.shape
    scores = [-1.0] * len(templates)
    fits = [k for k, (t, _) in enumerate(templates) if t.shape[0] <= big_h and t.shape[1] <= big_w]
    if not fits:
        return scores
    spectra = np.stack([templates[k][1] for k in fits])
    all_dots = np.fft.irfft2(field.spectrum * spectra, s=field.image.shape)
    for k, dots in zip(fits, all_dots, strict=True):
        h, w = templates[k][0].shape

        norm = field.norms.get((h, w))
        if norm is None:  # the field's energy under each template position, per shape

            def box(sums: np.ndarray, h: int = h, w: int = w) -> np.ndarray:
                return sums[h:, w:] - sums[:-h, w:] - sums[h:, :-w] + sums[:-h, :-w]

            energy = box(field.squares) - box(field.sums) ** 2 / (h * w)
            norm = field.norms[(h, w)] = np.sqrt(np.maximum(energy, 1e-3))
        dots = dots[: big_h - h + 1, : big_w - w + 1]
        scores[k] = float((dots / norm).max())
    return scores


def rotate(image: np.ndarray, degrees: float) -> np.ndarray:
    """The image turned by a few degrees about its centre (corners filled with zeros)."""
    from PIL import Image  # noqa: PLC0415

    if not degrees:
        return image
    picture = Image.fromarray(np.ascontiguousarray(image, dtype=np.float32), mode="F")
    return np.asarray(picture.rotate(degrees, Image.Resampling.BILINEAR), dtype=np.float32)


SCALE_STEPS = (0.0, -0.03, 0.03)
ANGLES = (0.0, -2.0, 2.0)
HOPELESS = 0.5  # unturned best below this: the turned search is not tried


class AlignCache:
    """Band-passed fields and templates of thumbnails, reused across the pairs of one run."""

    def __init__(self, limit: int = 3000) -> None:
        self.items: OrderedDict[tuple, object] = OrderedDict()
        self.limit = limit

    def get(self, key: tuple | None, make: Callable[[], object]) -> object:
        if key is None:
            return make()
        if key in self.items:
            self.items.move_to_end(key)
            return self.items[key]
        value = self.items[key] = make()
        if len(self.items) > self.limit:
            self.items.popitem(last=False)
        return value


def align(
    outer: np.ndarray, inner: np.ndarray, size: tuple[float, float] = (1.0, 1.0),
    enough: float = 1.0,
    steps: tuple[float, ...] = SCALE_STEPS, angles: tuple[float, ...] = ANGLES, radius: int = 3,
    cache: AlignCache | None = None, keys: tuple[object, object] | None = None,
) -> tuple[float, float, float, float]:
    """Best (score, angle, height share, width share) of `inner` found inside `outer`.

    Both are square images of normalised content; `size` is the share of `outer`'s height
    and width that `inner` is thought to cover. Shares size + steps, shifts and angles are
    searched on band-passed pixels, so that the shading every chest film shares does not
    count. The search stops once `enough` is met, and skips turning when nothing came
    close. With a cache and (outer, inner) keys, fields and templates are made once.
    """
    side = outer.shape[0]
    margin = max(2, side // 16)
    cache = cache or AlignCache(0)

    def template(sy: float, sx: float) -> tuple[float, float, np.ndarray, np.ndarray]:
        h = min(side, round((size[0] + sy) * side))
        w = min(side, round((size[1] + sx) * side))

        def make() -> tuple[float, float, np.ndarray, np.ndarray]:
            part = high_pass(resize(inner, h, w), radius)[margin:-margin, margin:-margin]
            return (h / side, w / side, part, _template_spectrum(part, outer.shape))

        return cache.get(keys and ("t", keys[1], h, w, radius), make)

    def field(angle: float) -> _Field:
        def make() -> _Field:
            return _prepare(high_pass(rotate(outer.astype(np.float32), angle), radius))

        return cache.get(keys and ("f", keys[0], angle, radius), make)

    shares = [(sy, sx) for sy in steps for sx in steps]
    best = (-1.0, 0.0, *size)
    for angle in angles:
        if angle != angles[0] and best[0] < HOPELESS:
            break
        prepared = field(angle)
        # the first share alone (most copies stop there), then the others in one batch
        for batch in (shares[:1], shares[1:]):
            parts = [template(sy, sx) for sy, sx in batch]
            scores = _best_nccs(prepared, [(part[2], part[3]) for part in parts])
            for (share_y, share_x, _, _), score in zip(parts, scores, strict=True):
                if score > best[0]:
                    best = (score, angle, share_y, share_x)
                    if score >= enough:
                        return best
    return best


def aligned_similarity(
    outer: np.ndarray, inner: np.ndarray, size: float = 1.0, enough: float = 1.0,
    cache: AlignCache | None = None, keys: tuple[object, object] | None = None,
) -> float:
    """How well `inner` matches a scaled, shifted, slightly turned part of `outer`."""
    return align(outer, inner, (size, size), enough, cache=cache, keys=keys)[0]
