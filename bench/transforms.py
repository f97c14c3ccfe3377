"""Image transforms that make the dedup benchmark's near-duplicate copies."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def resize_half(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    return image.resize((max(1, image.width // 2), max(1, image.height // 2)), Image.Resampling.LANCZOS)


def jpeg_q40(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=40)
    return Image.open(io.BytesIO(buffer.getvalue()))


def gamma_07(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    table = [round(255 * (v / 255) ** 0.7) for v in range(256)]
    grey = image.convert("L")
    return grey.point(table)


def crop(fraction: float):
    """Cut `fraction` of the width and of the height, split at random between the sides."""

    def apply(image: Image.Image, rng: np.random.Generator) -> Image.Image:
        width, height = image.size
        new_w, new_h = round(width * (1 - fraction)), round(height * (1 - fraction))
        left = int(rng.integers(0, width - new_w + 1))
        top = int(rng.integers(0, height - new_h + 1))
        return image.crop((left, top, left + new_w, top + new_h))

    apply.__name__ = f"crop_{round(fraction * 100)}pct"
    return apply


def border_20px(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    colour = 0 if rng.random() < 0.5 else 255
    rgb = image.convert("RGB")
    framed = Image.new("RGB", (rgb.width + 40, rgb.height + 40), (colour,) * 3)
    framed.paste(rgb, (20, 20))
    return framed


def burned_text(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    rgb = image.convert("RGB")
    draw = ImageDraw.Draw(rgb)
    width, height = rgb.size
    size = max(10, height // 25)
    font = ImageFont.load_default(size=size)
    draw.text((width * 0.04, height * 0.04), "R  PORTABLE AP", fill=(255, 255, 255), font=font)
    draw.text((width * 0.6, height * 0.92), "2020-03-14 08:12", fill=(255, 255, 255), font=font)
    x, y = width * float(rng.uniform(0.3, 0.6)), height * float(rng.uniform(0.3, 0.6))
    line = max(2, width // 200)
    draw.line((x, y, x + width * 0.12, y - height * 0.08), fill=(255, 255, 255), width=line)
    draw.polygon([(x, y), (x + size, y - size * 0.2), (x + size * 0.4, y - size)], fill=(255, 255, 255))
    return rgb


def rotate_2deg(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    return image.convert("RGB").rotate(2, resample=Image.Resampling.BILINEAR, fillcolor=(0, 0, 0))


TRANSFORMS = (
    resize_half, jpeg_q40, gamma_07, crop(0.05), crop(0.10), border_20px, burned_text, rotate_2deg,
)


def encode(image: Image.Image) -> bytes:
    """PNG bytes (lossless) of a transformed copy, except JPEG copies stay JPEG."""
    buffer = io.BytesIO()
    if image.format == "JPEG":
        image.save(buffer, "JPEG", quality=95)
    else:
        image.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()
