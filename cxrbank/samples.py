"""Synthetic, CC0 sample case reports and chest-like images: the bundled example and the offline demo.

Text and images are made here (a radiograph-like chest image and a CT-like axial slice), so the
files carry nobody else's rights. `python examples/make_example.py` regenerates
examples/case-report.pdf; `cxrbank ingest --pdf examples/case-report.pdf --root DIR` then adds
its two chest images.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter

LICENSE_URL = "https://creativecommons.org/publicdomain/zero/1.0/"

TITLE = "COVID-19 pneumonia in a 54-year-old man: a synthetic case report"
ABSTRACT = (
    "We describe a 54-year-old man with SARS-CoV-2 pneumonia confirmed by RT-PCR. Chest "
    "radiography and computed tomography showed bilateral ground-glass opacities."
)
CASE = (
    "Case presentation. A 54-year-old man presented with fever (38.9 C), dry cough and "
    "dyspnoea for 4 days. RT-PCR of a nasopharyngeal swab was positive for SARS-CoV-2. His "
    "oxygen saturation was 91% on room air and he received supplemental oxygen. On day 6 of "
    "symptoms a posteroanterior chest radiograph showed bilateral patchy opacities in the "
    "lower zones. Axial CT the same day showed peripheral ground-glass opacities in both "
    "lungs, typical of COVID-19 pneumonia. He recovered and was discharged on day 15."
)
CAPTION = (
    "Figure 1. COVID-19 pneumonia in a 54-year-old man on day 6 of symptoms. (A) PA chest "
    "radiograph showing bilateral patchy opacities in the lower zones. (B) Axial CT image "
    "showing peripheral ground-glass opacities in both lungs."
)
NOTE = (
    "This case report is synthetic: text and images were made by the cxrbank project to "
    "demonstrate the ingest command. It describes no real patient. Dedicated to the public "
    f"domain under CC0 1.0 ({LICENSE_URL})."
)


def _ellipse(h: int, w: int, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1.0


def _smooth_noise(rng: np.random.Generator, h: int, w: int, scale: int) -> np.ndarray:
    """Low-frequency texture in [-0.5, 0.5]: random values on a coarse grid, upsampled."""
    small = rng.normal(0, 1, (max(2, h // scale), max(2, w // scale)))
    small = (small - small.min()) / (np.ptp(small) + 1e-9) * 255
    coarse = Image.fromarray(small.astype(np.uint8)).resize((w, h), Image.BICUBIC)
    return np.asarray(coarse, float) / 255 - 0.5


def radiograph_like(size: int = 360, seed: int = 1, opacities: bool = True,
                    person: int | None = None) -> bytes:
    """A greyscale PA-chest-radiograph-like JPEG: body, dark lungs, ribs, spine, heart, and
    (unless `opacities` is False) patchy lower-zone opacities. `person` varies the anatomy
    (build, lung fields, heart, ribs, opacities), so images of different people differ the
    way real patients do instead of only in their noise."""
    rng = np.random.default_rng(seed)
    body_rng = np.random.default_rng(1_000_003 * (person or 0) + 17)

    def vary(spread: float) -> float:
        return 1.0 + (body_rng.uniform(-spread, spread) if person is not None else 0.0)

    h, w = size, int(size * 0.9 * vary(0.12))
    yy, xx = np.mgrid[0:h, 0:w]
    img = 25 + 30 * np.exp(-(((xx - w / 2) / (w * 0.6)) ** 2))
    body = _ellipse(h, w, h * 0.62, w / 2, h * 0.62 * vary(0.1), w * 0.5 * vary(0.1))
    img = np.where(body, 150 + 15 * _smooth_noise(rng, h, w, 20), img)
    lungs = np.zeros((h, w), bool)
    for side in (-1, 1):
        lungs |= _ellipse(h, w, h * 0.5 * vary(0.1), w / 2 + side * w * 0.21 * vary(0.15),
                          h * 0.34 * vary(0.15), w * 0.16 * vary(0.2))
    img[lungs] = 65 + 18 * _smooth_noise(rng, h, w, 6)[lungs] + 0.08 * (yy[lungs] - h * 0.3)
    rib_gap, rib_curve = 0.062 * vary(0.15), 0.0016 * vary(0.4)
    for k in range(9):
        rib = np.abs(yy - (h * 0.2 * vary(0.2) + k * h * rib_gap) - rib_curve * (xx - w / 2) ** 2) < 3.5
        img[rib & lungs] += 38
    spine = (np.abs(xx - w / 2) < w * 0.055) & (yy > h * 0.05)
    img[spine] = 205 + 10 * _smooth_noise(rng, h, w, 8)[spine]
    heart = _ellipse(h, w, h * 0.66 * vary(0.06), w * 0.55 * vary(0.06), h * 0.14 * vary(0.25),
                     w * 0.16 * vary(0.3))
    img[heart] = np.maximum(img[heart], 200)
    img[(yy > h * 0.82 * vary(0.05)) & body] = 195
    opacity = _ellipse(h, w, h * 0.7 * vary(0.15), w * 0.3 * vary(0.2), h * 0.08 * vary(0.5),
                       w * 0.08 * vary(0.5))
    opacity |= _ellipse(h, w, h * 0.72 * vary(0.15), w * 0.7 * vary(0.1), h * 0.07 * vary(0.5),
                        w * 0.07 * vary(0.5))
    if opacities:
        img[opacity & lungs] += 45
    img += rng.normal(0, 5, img.shape)
    picture = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "L")
    return _jpeg(picture.filter(ImageFilter.GaussianBlur(1.5)))


def ct_like(size: int = 320, seed: int = 2) -> bytes:
    """A greyscale axial-chest-CT-like JPEG in lung window: bright body, dark lungs, vessels."""
    rng = np.random.default_rng(seed)
    h = w = size
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.full((h, w), 12.0)
    body = _ellipse(h, w, h * 0.5, w / 2, h * 0.42, w * 0.5)
    img[body] = 185 + 12 * _smooth_noise(rng, h, w, 10)[body]
    img[_ellipse(h, w, h * 0.5, w / 2, h * 0.36, w * 0.45)] = 200
    lungs = np.zeros((h, w), bool)
    for side in (-1, 1):
        lungs |= _ellipse(h, w, h * 0.5, w / 2 + side * w * 0.215, h * 0.3, w * 0.185)
    img[lungs] = 40 + 14 * _smooth_noise(rng, h, w, 5)[lungs]
    for _ in range(90):  # vessels: short bright strokes
        side = rng.choice([-1, 1])
        cy = h * 0.5 + rng.normal(0, h * 0.13)
        cx = w / 2 + side * w * 0.2 + rng.normal(0, w * 0.08)
        angle, length, radius = rng.uniform(0, np.pi), rng.uniform(3, 12), rng.uniform(0.8, 2.2)
        across = np.abs((yy - cy) * np.cos(angle) - (xx - cx) * np.sin(angle))
        along = np.abs((yy - cy) * np.sin(angle) + (xx - cx) * np.cos(angle))
        img[(across < radius) & (along < length) & lungs] = 150
    ggo = _ellipse(h, w, h * 0.66, w * 0.27, h * 0.08, w * 0.07)
    ggo = (ggo | _ellipse(h, w, h * 0.68, w * 0.74, h * 0.07, w * 0.06)) & lungs
    img[ggo] += 50 + 20 * _smooth_noise(rng, h, w, 4)[ggo]
    img[_ellipse(h, w, h * 0.47, w / 2, h * 0.14, w * 0.11)] = 215
    img[_ellipse(h, w, h * 0.36, w / 2 - w * 0.02, h * 0.04, w * 0.035)] = 225
    img[_ellipse(h, w, h * 0.8, w / 2, h * 0.06, w * 0.055)] = 250
    img[_ellipse(h, w, h * 0.8, w / 2, h * 0.03, w * 0.03)] = 120
    img[_ellipse(h, w, h * 0.18, w / 2, h * 0.025, w * 0.09)] = 245
    img[int(h * 0.95) : int(h * 0.96), :] = 150
    img += rng.normal(0, 5, img.shape)
    picture = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "L")
    return _jpeg(picture.filter(ImageFilter.GaussianBlur(0.7)))


def _jpeg(picture: Image.Image) -> bytes:
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=80)
    return out.getvalue()


def reencoded(data: bytes, scale: float = 1.0, quality: int = 85) -> bytes:
    """The same picture resized by `scale` and saved again as JPEG (a near-duplicate)."""
    with Image.open(io.BytesIO(data)) as picture:
        size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
        out = io.BytesIO()
        picture.convert("L").resize(size, Image.LANCZOS).save(out, "JPEG", quality=quality)
    return out.getvalue()


def case_report_pdf(
    title: str = TITLE,
    abstract: str = ABSTRACT,
    case: str = CASE,
    caption: str = CAPTION,
    images: tuple[bytes, ...] | None = None,
    keywords: str = f"COVID-19; chest radiograph; CT; license: CC0 1.0 {LICENSE_URL}",
) -> bytes:
    """A one-page case-report PDF: title, abstract, case text, a 2-panel figure, its caption."""
    import pymupdf

    images = images if images is not None else (radiograph_like(), ct_like())
    doc = pymupdf.open()
    page = doc.new_page(width=595, height=842)
    page.insert_textbox(pymupdf.Rect(50, 40, 545, 90), title, fontsize=15, fontname="hebo")
    page.insert_textbox(pymupdf.Rect(50, 95, 545, 150), "Abstract. " + abstract, fontsize=9.5)
    page.insert_textbox(pymupdf.Rect(50, 155, 545, 260), case, fontsize=9.5)
    width = (495 - 10 * (len(images) - 1)) / max(1, len(images))
    for i, data in enumerate(images):
        x0 = 50 + i * (width + 10)
        page.insert_image(pymupdf.Rect(x0, 270, x0 + width, 520), stream=data, keep_proportion=True)
    page.insert_textbox(pymupdf.Rect(50, 530, 545, 590), caption, fontsize=9)
    page.insert_textbox(pymupdf.Rect(50, 780, 545, 820), NOTE, fontsize=7)
    doc.set_metadata({"title": title, "author": "cxrbank project (synthetic example)",
                      "subject": "Synthetic case report, CC0 1.0", "keywords": keywords})
    data = doc.tobytes(garbage=4, deflate=True)
    doc.close()
    return data
