"""`cxrbank demo`: the whole loop offline on generated inputs, through the same commands users run."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cxrbank import fakeweb, samples
from cxrbank.localweb import LocalWeb

SERIES_DOI = "10.5555/cxrbank.demo.series"
REPORT_DOI = "10.5555/cxrbank.demo.report"
CONTACT = "demo@example.org"
MARKER = ".cxrbank-demo"
CC_BY = "https://creativecommons.org/licenses/by/4.0/"

# The case series: (age, sex, has COVID-19 pneumonia) per patient; 18 with, 12 without.
SERIES = [(30 + (7 * i) % 50, "man" if i % 3 else "woman", i % 5 not in (1, 3)) for i in range(30)]


class DemoError(Exception):
    """The demo could not run (its output folder is taken)."""


@dataclass
class Stage:
    name: str
    args: list[str]
    exit_code: int = 0
    seconds: float = 0.0


@dataclass
class DemoResult:
    out: Path
    stages: list[Stage] = field(default_factory=list)
    artefacts: dict[str, Path] = field(default_factory=dict)

    @property
    def failed(self) -> list[Stage]:
        return [stage for stage in self.stages if stage.exit_code != 0]


def _series_caption(number: int, age: int, sex: str, covid: bool) -> str:
    if covid:
        return (f"Patient {number}, a {age}-year-old {sex} with RT-PCR confirmed COVID-19 "
                f"pneumonia: PA chest radiograph on day {3 + number % 5} showing bilateral "
                "patchy opacities in the lower zones.")
    return (f"Patient {number}, a {age}-year-old {sex} seen before elective surgery: normal PA "
            "chest radiograph.")


def serve_papers(services: fakeweb.ScholarlyWeb) -> None:
    """Two papers: a case series in Europe PMC (JATS + figure files) and a case report that is
    open only as a PDF through Unpaywall. One radiograph appears in both (a cross-source
    duplicate for dedup to find)."""
    figures, images = [], {}
    for number, (age, sex, covid) in enumerate(SERIES, start=1):
        href = f"demo-g{number:03d}"
        figures.append((f"Figure {number}", _series_caption(number, age, sex, covid), href))
        images[href] = samples.radiograph_like(seed=100 + number, opacities=covid, person=number)
    title = "Chest radiographs of COVID-19 pneumonia and of normal controls: a case series"
    covid = sum(1 for *_, has in SERIES if has)
    case = (f"{len(SERIES)} adults are described: {covid} with COVID-19 pneumonia confirmed by "
            f"RT-PCR and {len(SERIES) - covid} controls with normal chest radiographs seen before "
            "elective surgery.")
    services.add_europepmc(SERIES_DOI, pmcid="PMC9900001", open_access=True, license_="cc by",
                           title=title, abstract=case)
    services.add_jats("PMC9900001", fakeweb.jats_article(SERIES_DOI, "PMC9900001", title, case,
                                                         case, figures), images)
    services.add_unpaywall(SERIES_DOI, fakeweb.unpaywall(SERIES_DOI, []))
    services.add_crossref(SERIES_DOI, fakeweb.crossref(SERIES_DOI, CC_BY))

    # The report reuses the series' first radiograph, smaller and re-encoded: a near-duplicate
    # across sources and patient ids, for dedup to find.
    shared = samples.reencoded(images["demo-g001"], scale=0.8)
    pdf = samples.case_report_pdf(images=(shared, samples.ct_like(seed=7)))
    services.add_europepmc(REPORT_DOI)
    services.add_unpaywall(REPORT_DOI, fakeweb.unpaywall(
        REPORT_DOI, [(services.url("/files/demo-report.pdf"), "cc-by")]))
    services.add_crossref(REPORT_DOI, fakeweb.crossref(REPORT_DOI, CC_BY))
    services.add_file("/files/demo-report.pdf", pdf)


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _prepare(out: Path) -> Path:
    if out.exists() and any(out.iterdir()) and not (out / MARKER).exists():
        raise DemoError(f"{out} exists and is not a demo folder; choose another --out")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    (out / MARKER).write_text("made by cxrbank demo; safe to delete\n")
    return out / "collection"


def run_demo(out: Path, run_command: Callable[[list[str]], int],
             say: Callable[[str], None], epochs: int = 8) -> DemoResult:
    """Serve the fixture web, then run issue, dedup, validate, split, release, train and
    evaluate as commands (`run_command(args) -> exit code`), reporting each stage."""
    root = _prepare(out)
    result = DemoResult(out)
    event = out / "issue-event.json"
    event.write_text(json.dumps({"action": "labeled", "issue": {
        "number": 1, "title": "Publication to add",
        "body": f"Please add these two papers: https://doi.org/{SERIES_DOI} and {REPORT_DOI}.",
        "labels": [{"name": "publication-to-add"}]}}, indent=2))
    web = LocalWeb()
    try:
        services = fakeweb.ScholarlyWeb(web)
        serve_papers(services)
        say(f"fixture web on {web.base} (Europe PMC, Unpaywall, Crossref)")
        run_dir = out / "runs" / "tiny"
        plan = [
            ("ingest the issue's DOIs", ["issue", "--event", str(event), "--reply",
                                          str(out / "reply.md")]),
            ("find duplicates", ["dedup"]),
            ("remove duplicates", ["dedup", "--apply"]),
            ("validate", ["validate"]),
            ("split by patient", ["split", "--folds", "5"]),
            ("release v0.1", ["release", "v0.1"]),
            ("train the tiny model on v0.1", [
                "train", "--release", "v0.1", "--arch", "tiny", "--size", "64", "--epochs",
                str(epochs), "--batch-size", "8", "--device", "cpu", "--views", "*",
                "--modality", "X-ray", "--out", str(run_dir)]),
            ("evaluate on v0.1's test split", [
                "evaluate", str(run_dir / "best.pt"), "--release", "v0.1", "--bootstrap", "200",
                "--device", "cpu"]),
        ]
        with _environment({"CXRBANK_CONTACT": CONTACT,
                           "CXRBANK_SCRAPY_SETTINGS": json.dumps(services.overrides)}):
            for name, args in plan:
                say(f"\n== {name}: cxrbank {' '.join(args)}")
                stage = Stage(name, [*args, "--root", str(root)])
                started = time.monotonic()
                stage.exit_code = run_command(stage.args)
                stage.seconds = round(time.monotonic() - started, 2)
                result.stages.append(stage)
    finally:
        web.close()
    result.artefacts = {
        "collection": root / "metadata.csv",
        "issue reply": out / "reply.md",
        "split": root / "splits" / "partition.tsv",
        "release": root / "releases" / "v0.1" / "manifest.json",
        "release changelog": root / "releases" / "v0.1" / "CHANGELOG.md",
        "checkpoint": run_dir / "best.pt",
        "model card": run_dir / "best-test.model-card.md",
        "metrics": run_dir / "best-test.metrics.json",
    }
    return result
