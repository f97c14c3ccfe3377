"""Plain records that extract/ hands out: figures, captions and page regions."""

from __future__ import annotations

from dataclasses import dataclass, field

BBox = tuple[float, float, float, float]  # x0, y0, x1, y1 in PDF points, origin top-left


@dataclass
class Figure:
    """One figure, or one panel of a figure, with its caption and image bytes."""

    page: int  # 1-based page number (0 for JATS figures, which have no page)
    bbox: BBox  # on the page, PDF points, origin top-left; pixel box for JATS panels
    label: str | None  # "Figure 2", or None when no caption was found
    panel: str | None  # "A", or None for a whole figure
    caption: str  # full caption text, "" when none
    panel_caption: str | None  # the caption part for this panel, or None
    image: bytes  # original bytes when the figure is exactly one embedded image, else PNG
    width: int
    height: int
    method: str  # "embedded", "decoded", "merged", "rendered", "split", "jats"
    extension: str = "png"  # file extension matching `image` ("jpg", "png")

    def to_json(self, file: str | None = None) -> dict[str, object]:
        """The figures.json object for this figure (`file` is its path relative to the output)."""
        return {
            "file": file,
            "page": self.page,
            "bbox": [round(v, 2) for v in self.bbox],
            "label": self.label,
            "panel": self.panel,
            "caption": self.caption,
            "panel_caption": self.panel_caption,
            "width": self.width,
            "height": self.height,
            "method": self.method,
        }


@dataclass
class Caption:
    """A figure caption found on a page."""

    page: int  # 1-based
    bbox: BBox
    label: str  # normalised: "Figure 2", "Supplementary Figure S2"
    number: str  # "2", "S2"
    text: str  # the whole caption, lines joined with spaces


@dataclass
class Region:
    """A graphical region on one page: merged image placements or a cluster of vector drawings."""

    bbox: BBox
    kind: str  # "image" or "vector"
    pieces: list[dict] = field(default_factory=list)  # get_image_info entries merged into it
