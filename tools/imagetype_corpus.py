"""The labelled image corpus for fitting and benchmarking extract.imagetype.

X-ray and CT: the real cxr-dev images (../shared/data/cxr-dev, `modality` is the truth, grouped
by patient). Other: raster images and page renders from ../shared/data/pdfs (not the synthetic
radiograph PDF), sample photos and micrographs bundled with scikit-image, scikit-learn and
matplotlib, and generated charts, tables, flow diagrams, blots, ECG traces, ultrasound-like
sectors and MRI-like slices. Nothing here is written into the repository.
"""

from __future__ import annotations

import csv
import gzip
import io
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


@dataclass
class Sample:
    data: bytes  # encoded image file, decoded by the classifier as in real use
    label: str  # X-ray, CT, other
    group: str  # patient or base image: cross-validation never splits a group
    kind: str  # finer source kind, for the confusion report


def encode(image: Image.Image, rng: random.Random) -> bytes:
    out = io.BytesIO()
    if image.mode in ("RGB", "L") and rng.random() < 0.5:
        image.save(out, "JPEG", quality=rng.choice((70, 85, 95)))
    else:
        image.save(out, "PNG")
    return out.getvalue()


def real_radiology(shared: Path = SHARED) -> Iterator[Sample]:
    folder = shared / "cxr-dev"
    with (folder / "metadata.csv").open(newline="", encoding="utf-8", errors="replace") as f:
        for row in csv.DictReader(f):
            path = folder / "images" / row["filename"]
            if path.exists() and row["modality"] in ("X-ray", "CT"):
                yield Sample(path.read_bytes(), row["modality"], f"patient-{row['patientid']}",
                             row["modality"])


def pdf_images(shared: Path = SHARED) -> Iterator[Sample]:
    import pymupdf

    for path in sorted((shared / "pdfs").glob("*.pdf")):
        if "cxr" in path.name:  # holds a real radiograph
            continue
        doc = pymupdf.open(path)
        for page in doc:
            pix = page.get_pixmap(dpi=40)
            yield Sample(pix.tobytes("png"), "other", f"{path.name}-p{page.number}", "page")
            for info in page.get_images(full=True):
                try:
                    pix = pymupdf.Pixmap(doc, info[0])
                    if pix.n - pix.alpha >= 4:
                        pix = pymupdf.Pixmap(pymupdf.csRGB, pix)
                    if min(pix.width, pix.height) >= 32:
                        yield Sample(pix.tobytes("png"), "other", f"{path.name}-x{info[0]}",
                                     "pdf-image")
                except (RuntimeError, ValueError):
                    continue


def _bundled_images() -> Iterator[tuple[str, Image.Image, str]]:
    import matplotlib
    import skimage
    import sklearn

    skdata = Path(skimage.__file__).parent / "data"
    for name in ("astronaut", "camera", "cell", "chelsea", "coffee", "coins", "horse", "ihc",
                 "moon", "page", "text", "retina", "rocket", "hubble_deep_field", "brick",
                 "grass", "gravel", "clock_motion", "motorcycle_left", "microaneurysms", "color",
                 "logo"):
        for suffix in (".png", ".jpg"):
            if (skdata / f"{name}{suffix}").exists():
                kind = "micrograph" if name in ("ihc", "cell", "microaneurysms") else "photo"
                yield name, Image.open(skdata / f"{name}{suffix}"), kind
    for name in ("china.jpg", "flower.jpg"):
        yield name, Image.open(Path(sklearn.__file__).parent / "datasets/images" / name), "photo"
    sample = Path(matplotlib.__file__).parent / "mpl-data/sample_data"
    yield "grace_hopper", Image.open(sample / "grace_hopper.jpg"), "photo"
    with gzip.open(sample / "s1045.ima.gz") as f:
        mri = np.frombuffer(f.read(), np.uint16).astype(np.float64).reshape(256, 256)
    yield "mri-s1045", Image.fromarray((mri / mri.max() * 255).astype(np.uint8)), "mri"


def bundled(rng: random.Random, crops: int = 6) -> Iterator[Sample]:
    for name, image, kind in _bundled_images():
        image = image.convert("RGBA").convert("RGB") if image.mode in ("P", "LA") else image
        image = image.convert("RGB") if image.mode not in ("RGB", "L") else image
        w, h = image.size
        yield Sample(encode(image, rng), "other", name, kind)
        for _ in range(crops):
            cw, ch = int(w * rng.uniform(0.4, 0.95)), int(h * rng.uniform(0.4, 0.95))
            x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
            crop = image.crop((x, y, x + cw, y + ch))
            if rng.random() < 0.3:
                crop = crop.convert("L")
            yield Sample(encode(crop, rng), "other", name, kind)


def _figure_to_image(fig) -> Image.Image:
    import matplotlib.pyplot as plt

    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=60)
    plt.close(fig)
    return Image.open(io.BytesIO(out.getvalue())).convert("RGB")


def charts(rng: random.Random, n: int) -> Iterator[Sample]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nprng = np.random.default_rng(rng.randint(0, 2**31))
    kinds = ("line", "bar", "scatter", "pie", "box", "hist", "km", "heatmap", "errorbar")
    for i in range(n):
        kind = kinds[i % len(kinds)]
        fig, ax = plt.subplots(figsize=(rng.uniform(3, 7), rng.uniform(2.5, 5)))
        grey = rng.random() < 0.35
        color = "black" if grey else None
        x = np.arange(12)
        if kind == "line":
            for _ in range(rng.randint(1, 4)):
                ax.plot(x, nprng.normal(0, 1, 12).cumsum(), color=color, marker="o")
        elif kind == "bar":
            k = rng.randint(3, 12)
            ax.bar(np.arange(k), nprng.uniform(1, 10, k), color=color or "C0")
        elif kind == "scatter":
            ax.scatter(nprng.normal(size=80), nprng.normal(size=80), c=color or "C1", s=8)
        elif kind == "pie":
            ax.pie(nprng.uniform(1, 5, rng.randint(2, 6)),
                   colors=[str(g) for g in np.linspace(0.2, 0.9, 6)] if grey else None)
        elif kind == "box":
            ax.boxplot([nprng.normal(k, 1, 40) for k in range(rng.randint(2, 5))])
        elif kind == "hist":
            ax.hist(nprng.normal(size=300), bins=20, color=color or "C2")
        elif kind == "km":
            for _ in range(2):
                ax.step(np.sort(nprng.uniform(0, 30, 20)), np.linspace(1, 0.2, 20), color=color)
        elif kind == "heatmap":
            ax.imshow(nprng.normal(size=(12, 12)), cmap="gray" if grey else "viridis")
        else:
            ax.errorbar(x, nprng.normal(size=12), yerr=0.3, fmt="s", color=color or "C3")
        ax.set_title(f"Figure {i}")
        yield Sample(encode(_figure_to_image(fig), rng), "other", f"chart-{kind}-{i % 5}", "chart")


def _text_lines(draw: ImageDraw.ImageDraw, box, rng: random.Random, fill=0) -> None:
    x0, y0, x1, y1 = box
    y = y0 + 4
    while y < y1 - 8:
        draw.text((x0 + 4, y), "".join(rng.choice("abcdefgh 0123456789") for _ in range(
            rng.randint(5, max(6, (x1 - x0) // 7)))), fill=fill)
        y += 12


def tables(rng: random.Random, n: int) -> Iterator[Sample]:
    for i in range(n):
        w, h = rng.randint(300, 900), rng.randint(150, 600)
        image = Image.new("L" if rng.random() < 0.5 else "RGB", (w, h), "white")
        draw = ImageDraw.Draw(image)
        rows, cols = rng.randint(3, 15), rng.randint(2, 7)
        for r in range(rows + 1):
            draw.line((0, r * h // rows, w, r * h // rows), fill=rng.choice((0, 128, 200)))
        for c in range(cols):
            _text_lines(draw, (c * w // cols, 0, (c + 1) * w // cols, h), rng)
        yield Sample(encode(image, rng), "other", f"table-{i % 7}", "table")


def diagrams(rng: random.Random, n: int) -> Iterator[Sample]:
    for i in range(n):
        w, h = rng.randint(300, 900), rng.randint(300, 800)
        image = Image.new("RGB", (w, h), "white")
        draw = ImageDraw.Draw(image)
        for _ in range(rng.randint(3, 9)):
            x, y = rng.randint(0, w - 120), rng.randint(0, h - 60)
            fill = rng.choice(["white", "#dde", "#cfc", "#fdd", "#eee"])
            draw.rectangle((x, y, x + 110, y + 50), outline="black", fill=fill, width=2)
            _text_lines(draw, (x, y, x + 110, y + 50), rng)
            draw.line((x + 55, y + 50, x + 55 + rng.randint(-80, 80), y + 110), fill="black",
                      width=2)
        yield Sample(encode(image, rng), "other", f"diagram-{i % 7}", "diagram")


def _speckle(rng: np.random.Generator, shape) -> np.ndarray:
    return np.asarray(Image.fromarray((rng.rayleigh(0.5, shape) * 90).clip(0, 255).astype(
        np.uint8)).filter(ImageFilter.GaussianBlur(1.2)), dtype=np.float64)


def ultrasound(rng: random.Random, n: int) -> Iterator[Sample]:
    nprng = np.random.default_rng(rng.randint(0, 2**31))
    for i in range(n):
        w, h = rng.randint(300, 700), rng.randint(250, 600)
        yy, xx = np.mgrid[0:h, 0:w]
        apex_x = w / 2
        angle = np.arctan2(xx - apex_x, yy + 20)
        radius = np.hypot(xx - apex_x, yy + 20)
        spread = rng.uniform(0.5, 0.9)
        fan = (np.abs(angle) < spread) & (radius < h * rng.uniform(0.85, 1.0))
        tissue = _speckle(nprng, (h, w)) * (0.6 + 0.4 * np.sin(yy / rng.uniform(15, 60)))
        cyst = np.hypot(xx - w * rng.uniform(0.35, 0.65), yy - h * rng.uniform(0.4, 0.7)) < \
            rng.uniform(15, 60)
        values = np.where(fan & ~cyst, tissue, 0).clip(0, 255).astype(np.uint8)
        image = Image.fromarray(values)
        ImageDraw.Draw(image).text((8, 8), "L 5.0 cm  GAIN 52", fill=255)
        yield Sample(encode(image.convert("RGB") if i % 3 == 0 else image, rng), "other",
                     f"ultrasound-{i % 6}", "ultrasound")


def mri(rng: random.Random, n: int) -> Iterator[Sample]:
    nprng = np.random.default_rng(rng.randint(0, 2**31))
    for i in range(n):
        s = rng.choice((192, 256, 320, 512))
        yy, xx = np.mgrid[0:s, 0:s] / s - 0.5
        ax, ay = rng.uniform(0.3, 0.42), rng.uniform(0.36, 0.46)
        r = np.hypot(xx / ax, yy / ay)
        texture = np.asarray(Image.fromarray((nprng.normal(128, 40, (s, s))).clip(0, 255).astype(
            np.uint8)).filter(ImageFilter.GaussianBlur(s / 60)), dtype=np.float64)
        brain = np.where(r < 0.88, 90 + 0.8 * texture, 0)
        brain = np.where((r >= 0.88) & (r < 1.0), rng.choice((40, 200)), brain)
        ventricles = (np.abs(xx) < 0.05 + 0.04 * rng.random()) & (np.abs(yy) < 0.12)
        brain = np.where(ventricles, rng.choice((20, 230)), brain)
        if rng.random() < 0.5:  # a knee- or spine-like sagittal slab instead of a head
            brain = np.where(np.abs(xx) < rng.uniform(0.15, 0.3), 60 + 0.9 * texture, 0)
        image = Image.fromarray(brain.clip(0, 255).astype(np.uint8))
        yield Sample(encode(image, rng), "other", f"mri-{i % 6}", "mri")


def micrographs(rng: random.Random, n: int) -> Iterator[Sample]:
    for i in range(n):
        w, h = rng.randint(300, 800), rng.randint(300, 800)
        image = Image.new("RGB", (w, h), (rng.randint(220, 250), rng.randint(170, 210),
                                          rng.randint(200, 230)))
        draw = ImageDraw.Draw(image)
        for _ in range(rng.randint(40, 300)):
            x, y, r = rng.randint(0, w), rng.randint(0, h), rng.randint(3, 12)
            draw.ellipse((x - r, y - r, x + r, y + r), fill=(rng.randint(60, 130),
                                                             rng.randint(30, 80),
                                                             rng.randint(120, 180)))
        image = image.filter(ImageFilter.GaussianBlur(1))
        if i % 4 == 0:
            image = image.convert("L")
        yield Sample(encode(image, rng), "other", f"micro-{i % 6}", "micrograph")


def blots_and_traces(rng: random.Random, n: int) -> Iterator[Sample]:
    for i in range(n):
        w, h = rng.randint(300, 800), rng.randint(120, 400)
        if i % 2:
            image = Image.new("L", (w, h), rng.randint(200, 240))
            draw = ImageDraw.Draw(image)
            for lane in range(rng.randint(4, 12)):
                for _ in range(rng.randint(1, 4)):
                    y = rng.randint(10, h - 20)
                    draw.rectangle((lane * w // 12 + 5, y, (lane + 1) * w // 12 - 5, y + 8),
                                   fill=rng.randint(10, 120))
            image = image.filter(ImageFilter.GaussianBlur(2))
            kind = "blot"
        else:
            image = Image.new("RGB", (w, h), (255, 240, 240))
            draw = ImageDraw.Draw(image)
            for gx in range(0, w, 10):
                draw.line((gx, 0, gx, h), fill=(250, 200, 200))
            y0 = h // 2
            points = [(x, y0 - (40 if x % 80 == 40 else rng.randint(-3, 3))) for x in range(w)]
            draw.line(points, fill="black", width=2)
            kind = "ecg"
        yield Sample(encode(image, rng), "other", f"{kind}-{i % 5}", kind)


def corpus(seed: int = 0, shared: Path = SHARED, scale: int = 1) -> list[Sample]:
    """Every labelled sample; `scale` multiplies the number of generated ones."""
    rng = random.Random(seed)
    samples = list(real_radiology(shared))
    samples += list(pdf_images(shared))
    samples += list(bundled(rng))
    for make, n in ((charts, 90), (tables, 30), (diagrams, 30), (ultrasound, 30), (mri, 30),
                    (micrographs, 30), (blots_and_traces, 30)):
        samples += list(make(rng, n * scale))
    return samples
