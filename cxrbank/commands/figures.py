"""`cxrbank figures`: figures and captions of one PDF or JATS file to DIR/figures.json."""

from __future__ import annotations

import json
import math
from pathlib import Path

import click

from cxrbank.commands.common import (
    EXIT_PARTIAL,
    CxrbankError,
    emit_json,
    json_option,
    say,
    say_error,
)

MAX_STEM = 60  # characters of a label kept in a file name (long JATS labels, odd panels)


def _clean(text: str) -> str:
    return "".join(c for c in text if c.isascii() and (c.isalnum() or c == "-"))


def _file_name(index: int, figure) -> str:
    """`figure-2-A.jpg`, `page-3-image-1.png` (numbered in order, never from the input).

    The label part is cut to MAX_STEM characters and only ASCII letters, digits and '-' are
    kept, so any label or panel letter gives a short, safe name; the number keeps it unique.
    """
    if figure.label:
        stem = _clean(figure.label.lower().replace(" ", "-").replace(".", "-"))
        stem = stem[:MAX_STEM].strip("-") or "figure"
    else:
        stem = f"page-{figure.page}-image"
    panel = _clean(figure.panel or "")[:8]
    if panel:
        stem += f"-{panel}"
    return f"{index:03d}-{stem}.{_clean(figure.extension)[:5] or 'img'}"


def _previous_files(out_dir: Path) -> list[Path]:
    """The files a previous run wrote to out_dir (those its figures.json lists, its debug pages).

    A folder with other files and no figures.json is refused: nothing unknown is deleted.
    """
    if not out_dir.is_dir():
        return []
    listing = out_dir / "figures.json"
    if not listing.is_file():
        if any(out_dir.iterdir()):
            raise CxrbankError(f"{out_dir} is not empty and has no figures.json from an earlier "
                               "run; give a new or empty folder")
        return []
    try:
        records = json.loads(listing.read_text(encoding="utf-8"))
        names = [record["file"] for record in records]
    except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError) as exc:
        raise CxrbankError(f"{listing} is not a figures.json written by cxrbank figures "
                           f"({type(exc).__name__}); remove it or give another folder") from None
    files = [out_dir / name for name in names
             if isinstance(name, str) and name == Path(name).name and name not in ("", ".", "..")]
    files += out_dir.glob("debug-page-*.png")
    return [path for path in files if path.is_file() and not path.is_symlink()]


def _write_figures(out_dir: Path, figures: list, pdf_for_debug: bytes | None) -> list[dict]:
    """Each figure's image file, figures.json and the debug pages; the figures.json records."""
    from cxrbank.collection import atomic_write_bytes

    names = [_file_name(index, figure) for index, figure in enumerate(figures, start=1)]
    records = [figure.to_json(name) for figure, name in zip(figures, names, strict=True)]
    # The listing first, atomically: a run stopped while writing images leaves a figures.json
    # naming every file it may have written, so the next run can clear them.
    atomic_write_bytes(out_dir / "figures.json",
                       (json.dumps(records, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    for figure, name in zip(figures, names, strict=True):
        (out_dir / name).write_bytes(figure.image)
    if pdf_for_debug is not None:
        from extract.render import debug_pages

        for page_no, png in debug_pages(pdf_for_debug, figures):
            (out_dir / f"debug-page-{page_no}.png").write_bytes(png)
    return records


@click.command("figures")
@click.argument("file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--jats", "jats_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A JATS XML file instead of a PDF; its images are looked up beside it.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory for the figure images and figures.json.")
@click.option("--debug", is_flag=True,
              help="Also write each page as PNG with figure (red) and caption (blue) boxes.")
@click.option("--whole", is_flag=True, help="Keep multi-panel figures whole (no panel split).")
@click.option("--time-limit", default=60.0, show_default=True,
              type=click.FloatRange(min=0, min_open=True),
              help="Seconds allowed for one document (a positive number).")
@json_option
def figures_cmd(file: Path | None, jats_file: Path | None, out_dir: Path, debug: bool,
                whole: bool, time_limit: float, as_json: bool) -> None:
    """Figures and captions of FILE (a PDF) or --jats FILE to DIR/figures.json.

    Writes each figure, or each panel of a multi-panel figure, as an image file (original
    embedded bytes when a figure is exactly one embedded image, otherwise lossless PNG) and
    DIR/figures.json: a list of {file, page, bbox, label, panel, caption, panel_caption,
    width, height, method}; bbox is [x0, y0, x1, y1] in PDF points from the top-left of the
    page as it reads upright (a /Rotate'd landscape page as displayed). A figure whose image
    is damaged, and a PDF that had to be repaired, get one error line each (exit 1).
    Re-running into the same DIR first removes the files the previous figures.json lists
    (and its debug pages); a non-empty DIR without figures.json is refused.
    """
    if (file is None) == (jats_file is None):
        raise click.UsageError("give either FILE (a PDF) or --jats FILE")
    if not math.isfinite(time_limit):
        raise click.BadParameter(f"{time_limit} is not a finite number of seconds",
                                 param_hint="'--time-limit'")
    from extract.jats import (
        JatsError,
        figures_from_jats,
        graphic_files,
        parse_jats,
        unreadable_graphics,
    )
    from extract.pdf import PdfError, extract_figures

    source = file or jats_file
    data = source.read_bytes()
    unreadable: list[tuple[str, str]] = []
    damaged: list[str] = []
    try:
        if file is not None:
            figures = extract_figures(data, split_panels=not whole, time_limit=time_limit,
                                      problems=damaged)
        else:
            article = parse_jats(data)
            hrefs = [h for f in article.figures for h in f.graphics]
            images = graphic_files(jats_file.parent, hrefs, skip=jats_file)
            unreadable = unreadable_graphics(article, images)
            figures = figures_from_jats(article, images, split_panels=not whole)
    except (PdfError, JatsError) as exc:
        raise CxrbankError(f"{source.name}: {exc}") from None
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CxrbankError(f"cannot create {out_dir}: {exc.strerror or exc}") from None
    try:
        for old in _previous_files(out_dir):
            old.unlink(missing_ok=True)
        records = _write_figures(out_dir, figures, data if debug and file is not None else None)
    except OSError as exc:
        raise CxrbankError(f"cannot write to {out_dir}: {exc.strerror or exc}") from None
    if as_json:
        emit_json(records)
    else:
        captioned = sum(1 for f in figures if f.label)
        say(f"{source.name}: {len(figures)} figure images ({captioned} with captions) "
            f"written to {out_dir}")
    for href, why in unreadable:
        where = " beside it" if why == "no image file" else ""
        say_error(f"{source.name}: graphic {href!r} left out: {why}{where}")
    for line in damaged:
        say_error(f"{source.name}: {line}")
    if unreadable or damaged:
        click.get_current_context().exit(EXIT_PARTIAL)
