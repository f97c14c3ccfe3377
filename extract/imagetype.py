"""Is an image a chest radiograph, a CT slice or something else: plain features, a fitted model."""

from __future__ import annotations

import io
import json
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

TYPES: tuple[str, ...] = ("X-ray", "CT", "other")
PARAMS_PATH = Path(__file__).with_name("imagetype_params.json")
SIDE = 64  # features are computed on a SIDE x SIDE thumbnail
MAX_PIXELS = 200_000_000  # larger images are refused as decompression bombs
MIN_SIDE = 8
_REDUCIBLE_MODES = ("L", "LA", "RGB", "RGBA", "I", "F")


class ImageTypeError(ValueError):
    """The input is not an image this module can read (corrupt, empty, truncated, too small)."""


def load_thumbnail(data: bytes | Image.Image | np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """An RGB float32 array (SIDE, SIDE, 3) in [0, 1] and the original (width, height).

    JPEGs are decoded at reduced size (draft mode); 16-bit and float images are stretched to
    their own range; palette, CMYK, LA and RGBA images are converted (transparency on white).
    """
    if isinstance(data, np.ndarray):
        image = _image_from_array(data)
    elif isinstance(data, Image.Image):
        image = data
    elif isinstance(data, (bytes, bytearray, memoryview)):
        if not data:
            raise ImageTypeError("empty input")
        try:
            image = Image.open(io.BytesIO(bytes(data)))
        except UnidentifiedImageError as exc:
            raise ImageTypeError("not an image file of a known format") from exc
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise ImageTypeError(f"not a readable image ({exc})") from exc
    else:
        raise ImageTypeError(f"cannot classify a {type(data).__name__}")
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise ImageTypeError(f"image too large ({width}x{height})")
    if min(width, height) < MIN_SIDE:
        raise ImageTypeError(f"image too small ({width}x{height})")
    try:
        if image.format == "JPEG" and image.mode in ("RGB", "L", "CMYK", "YCbCr"):
            image.draft(image.mode, (SIDE * 2, SIDE * 2))
        image.load()
        factor = min(image.size) // (SIDE * 2)
        if factor >= 2 and image.mode in _REDUCIBLE_MODES:
            image = image.reduce(factor)  # before any conversion: converting full size is slow
        rgb = _to_rgb(image)
        factor = min(rgb.size) // (SIDE * 2)
        if factor >= 2:
            rgb = rgb.reduce(factor)
        rgb = rgb.resize((SIDE, SIDE), Image.Resampling.BILINEAR)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ImageTypeError(f"cannot decode image ({exc})") from exc
    return np.asarray(rgb, dtype=np.float32) / 255.0, (width, height)


def _image_from_array(array: np.ndarray) -> Image.Image:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ImageTypeError(f"array of shape {array.shape} is not an image")
    if array.size == 0:
        raise ImageTypeError("empty array")
    if array.dtype != np.uint8:
        array = _stretch(array.astype(np.float64))
    return Image.fromarray(np.ascontiguousarray(array))


def _stretch(values: np.ndarray) -> np.ndarray:
    """Any numeric array to uint8 over its own finite range."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.zeros(values.shape, dtype=np.uint8)
    low, high = float(finite.min()), float(finite.max())
    scaled = (np.nan_to_num(values, nan=low) - low) / max(high - low, 1e-12)
    return (np.clip(scaled, 0, 1) * 255).astype(np.uint8)


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F") or image.mode.startswith("I;"):
        return Image.fromarray(_stretch(np.asarray(image, dtype=np.float64))).convert("RGB")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, image).convert("RGB")
    return image.convert("RGB")  # CMYK included: Pillow applies Adobe's inversion itself


FEATURE_NAMES: tuple[str, ...] = (
    tuple(f"hist{i}" for i in range(16))
    + tuple(f"grid{i}" for i in range(64))
    + tuple(f"gridstd{i}" for i in range(16))
    + tuple(f"col{i}" for i in range(16))
    + tuple(f"row{i}" for i in range(16))
    + tuple(f"inner_hist{i}" for i in range(8))
    + ("sat_mean", "sat_frac", "chroma", "black", "white", "levels", "grey_std", "entropy",
       "grad_mean", "grad_strong", "grad_flat", "border", "corners", "center", "ring1", "ring2",
       "ring3", "symmetry", "symmetry_top", "aspect", "log_area", "dark_inside", "rowvar",
       "colvar", "mid_col", "side_cols", "channel_corr", "bright_inside", "laplacian",
       "laplacian_strong")
)


def image_features(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The feature vector of an RGB thumbnail (see FEATURE_NAMES)."""
    grey = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    cmax, cmin = rgb.max(axis=2), rgb.min(axis=2)
    saturation = (cmax - cmin) / np.maximum(cmax, 1e-3)
    hist = np.histogram(grey, bins=16, range=(0.0, 1.0))[0] / grey.size
    blocks = grey.reshape(8, SIDE // 8, 8, SIDE // 8)
    grid = blocks.mean(axis=(1, 3)).ravel()
    coarse = grey.reshape(4, SIDE // 4, 4, SIDE // 4)
    gridstd = coarse.std(axis=(1, 3)).ravel()
    gx = np.abs(np.diff(grey, axis=1))
    gy = np.abs(np.diff(grey, axis=0))
    grad = (gx[:-1, :] + gy[:, :-1]) / 2
    yy, xx = np.mgrid[0:SIDE, 0:SIDE]
    radius = np.hypot(yy - (SIDE - 1) / 2, xx - (SIDE - 1) / 2) / (SIDE / 2)
    ring = [grey[(radius >= a) & (radius < b)].mean() for a, b in
            ((0, 0.35), (0.35, 0.7), (0.7, 1.0), (1.0, 1.5))]
    edge = max(2, SIDE // 16)
    border = np.concatenate([grey[:edge].ravel(), grey[-edge:].ravel(), grey[:, :edge].ravel(),
                             grey[:, -edge:].ravel()]).mean()
    corners = np.mean([grey[:edge * 2, :edge * 2].mean(), grey[:edge * 2, -edge * 2:].mean(),
                       grey[-edge * 2:, :edge * 2].mean(), grey[-edge * 2:, -edge * 2:].mean()])
    quantised = np.round(grey * 63).astype(np.int64)
    counts = np.bincount(quantised.ravel(), minlength=64) / grey.size
    nonzero = counts[counts > 0]
    inside = grey[radius < 0.7]
    width, height = size
    thirds = np.array_split(grey, 3, axis=1)
    cols = grey.reshape(SIDE, 16, SIDE // 16).mean(axis=(0, 2))
    rows = grey.reshape(16, SIDE // 16, SIDE).mean(axis=(1, 2))
    inner_hist = np.histogram(inside, bins=8, range=(0.0, 1.0))[0] / max(inside.size, 1)
    laplacian = np.abs(4 * grey[1:-1, 1:-1] - grey[:-2, 1:-1] - grey[2:, 1:-1] - grey[1:-1, :-2]
                       - grey[1:-1, 2:])
    values = np.concatenate([
        hist, grid, gridstd, cols - cols.mean(), rows - rows.mean(), inner_hist,
        [saturation.mean(), (saturation > 0.2).mean(),
         (np.abs(rgb[..., 0] - rgb[..., 1]) + np.abs(rgb[..., 1] - rgb[..., 2])).mean(),
         (grey < 0.04).mean(), (grey > 0.96).mean(), len(nonzero) / 64, grey.std(),
         -(nonzero * np.log2(nonzero)).sum() / 6, grad.mean(), (grad > 0.15).mean(),
         (grad < 0.005).mean(), border, corners, ring[0], ring[1], ring[2], ring[3],
         np.abs(grey - grey[:, ::-1]).mean(), np.abs(grey[: SIDE // 2] - grey[: SIDE // 2, ::-1]
                                                     ).mean(),
         math.log(width / height), math.log(width * height) / 16, (inside < 0.25).mean(),
         grey.mean(axis=1).std(), grey.mean(axis=0).std(), thirds[1].mean(),
         (thirds[0].mean() + thirds[2].mean()) / 2, _channel_correlation(rgb),
         (inside > 0.75).mean(), laplacian.mean(), (laplacian > 0.2).mean()],
    ])
    return values.astype(np.float64)


def _channel_correlation(rgb: np.ndarray) -> float:
    """The weakest correlation between colour channels: 1 for grey and tinted-grey images."""
    flat = rgb.reshape(-1, 3).T
    std = flat.std(axis=1)
    if (std < 1e-4).any():
        return 1.0 if (std < 1e-4).all() or np.ptp(std) < 1e-4 else 0.0
    corr = np.corrcoef(flat)
    return float(min(corr[0, 1], corr[1, 2], corr[0, 2]))


@lru_cache(maxsize=4)
def load_params(path: Path = PARAMS_PATH) -> dict[str, np.ndarray]:
    """The fitted model (tools/fit_imagetype.py): boosted trees of fixed depth, one per class
    and round, stored as complete binary trees (feature, threshold per inner node; leaf values)."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    if tuple(raw["classes"]) != TYPES or tuple(raw["features"]) != FEATURE_NAMES:
        raise ImageTypeError(f"{path} does not match this version's features; refit it")
    params = {key: np.asarray(raw[key], dtype=np.float64)
              for key in ("baseline", "threshold", "leaf", "tree_class", "gate")}
    params["feature"] = np.asarray(raw["feature"], dtype=np.int64)
    params["tree_class"] = params["tree_class"].astype(np.int64)
    return params


def is_colourful(features: np.ndarray, gate: np.ndarray) -> np.ndarray:
    """Colour photographs and charts: radiographs and CT are grey or a uniform tint, so their
    colour channels are strongly correlated and their saturation is moderate."""
    x = np.atleast_2d(features)
    corr = x[:, FEATURE_NAMES.index("channel_corr")]
    saturation = x[:, FEATURE_NAMES.index("sat_mean")]
    return (corr < gate[0]) | (saturation > gate[1])


def tree_scores(features: np.ndarray, params: dict[str, np.ndarray]) -> np.ndarray:
    """Raw per-class scores (n, classes): baseline plus the leaf each tree sends a row to."""
    x = np.atleast_2d(features)
    feature, threshold, leaf = params["feature"], params["threshold"], params["leaf"]
    n_trees, n_inner = feature.shape
    trees = np.arange(n_trees)
    node = np.zeros((x.shape[0], n_trees), dtype=np.int64)
    while True:
        inner = node < n_inner
        if not inner.any():
            break
        at = np.minimum(node, n_inner - 1)
        right = np.take_along_axis(x, feature[trees, at], axis=1) > threshold[trees, at]
        node = np.where(inner, 2 * node + 1 + right, node)
    values = leaf[trees, node - n_inner]
    scores = np.tile(params["baseline"], (x.shape[0], 1))
    for k in range(scores.shape[1]):
        scores[:, k] += values[:, params["tree_class"] == k].sum(axis=1)
    return scores


def predict_proba(features: np.ndarray, params: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """Class probabilities (X-ray, CT, other) for one feature vector or a matrix of them."""
    p = params or load_params()
    logits = tree_scores(features, p)
    logits -= logits.max(axis=1, keepdims=True)
    proba = np.exp(logits)
    proba /= proba.sum(axis=1, keepdims=True)
    colourful = is_colourful(features, p["gate"])
    proba[colourful] = [0.005, 0.005, 0.99]
    return proba


def classify_image(data: bytes | Image.Image | np.ndarray) -> tuple[str, float]:
    """("X-ray" | "CT" | "other", probability of that type). Raises ImageTypeError."""
    rgb, size = load_thumbnail(data)
    proba = predict_proba(image_features(rgb, size))[0]
    best = int(proba.argmax())
    return TYPES[best], float(proba[best])


def classify_file(path: str | Path) -> tuple[str, float]:
    """classify_image on a file's bytes; a missing file raises OSError, a bad one ImageTypeError."""
    return classify_image(Path(path).read_bytes())
