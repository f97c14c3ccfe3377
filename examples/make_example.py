"""Make examples/case-report.pdf: a small synthetic COVID-19 case report (CC0, by cxrbank).

The images are drawn here (a radiograph-like chest image and a CT-like axial slice), so the
file carries nobody else's rights. Run `python examples/make_example.py` to regenerate it;
`cxrbank ingest --pdf examples/case-report.pdf --root DIR` then adds its two chest images.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

HERE = Path(__file__).resolve().parent
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


def radiograph_like(size: int = 360, seed: int = 1) -> bytes:
    """A greyscale PA-chest-radiograph-like JPEG: bright body, dark lungs, ribs, spine."""
    rng = np.random.default_rng(seed)
    h, w = size, int(size * 0.9)
    img = np.full((h, w), 30.0)
    img[_ellipse(h, w, h * 0.55, w / 2, h * 0.55, w * 0.48)] = 170
    for side in (-1, 1):
        lung = _ellipse(h, w, h * 0.5, w / 2 + side * w * 0.2, h * 0.33, w * 0.15)
        img[lung] = 70
    y, x = np.mgrid[0:h, 0:w]
    for k in range(8):
        rib = np.abs(y - (h * 0.25 + k * h * 0.065) - 0.0015 * (x - w / 2) ** 2) < 3
        img[rib & (img < 120)] += 35
    img[(np.abs(x - w / 2) < w * 0.05) & (y > h * 0.1)] = 200
    img[_ellipse(h, w, h * 0.62, w * 0.56, h * 0.12, w * 0.12) & (img > 150)] = 215
    opacity = _ellipse(h, w, h * 0.68, w * 0.3, h * 0.08, w * 0.08)
    opacity |= _ellipse(h, w, h * 0.7, w * 0.7, h * 0.07, w * 0.07)
    img[opacity] += 40
    img += rng.normal(0, 6, img.shape)
    picture = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "L")
    return _jpeg(picture.filter(ImageFilter.GaussianBlur(2)))


def ct_like(size: int = 320, seed: int = 2) -> bytes:
    """A greyscale axial-chest-CT-like JPEG: black field, round body, dark lungs, GGO."""
    rng = np.random.default_rng(seed)
    h = w = size
    img = np.zeros((h, w))
    body = _ellipse(h, w, h / 2, w / 2, h * 0.36, w * 0.46)
    img[body] = 150
    img[body & ~_ellipse(h, w, h / 2, w / 2, h * 0.33, w * 0.43)] = 190
    for side in (-1, 1):
        img[_ellipse(h, w, h * 0.5, w / 2 + side * w * 0.2, h * 0.25, w * 0.15)] = 15
        img[_ellipse(h, w, h * 0.58, w / 2 + side * w * 0.3, h * 0.06, w * 0.05)] = 80
    img[_ellipse(h, w, h * 0.5, w / 2, h * 0.1, w * 0.08)] = 130
    img[_ellipse(h, w, h * 0.78, w / 2, h * 0.06, w * 0.05)] = 240
    img[body] += rng.normal(0, 8, img.shape)[body]
    picture = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "L")
    return _jpeg(picture.filter(ImageFilter.GaussianBlur(1)))


def _jpeg(picture: Image.Image) -> bytes:
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=80)
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


def main() -> int:
    target = HERE / "case-report.pdf"
    target.write_bytes(case_report_pdf())
    print(f"wrote {target} ({target.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
