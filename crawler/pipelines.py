"""The one writer of ingest results: patient ids, `Collection.add_images`, per-paper outcome."""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from crawler.paper_rows import PaperPanels
from crawler.run import report_progress
from crawler.state import ADDED, ERROR, NO_FULL_TEXT, NO_RADIOGRAPHS, Outcome, record_outcomes
from cxrbank.collection import Collection, NewImage


def patient_key(panels: PaperPanels, patient: str) -> str:
    """The stable patient key of one case in a paper: `doi:<doi>:<patient>`."""
    base = f"doi:{panels.paper.doi}" if panels.paper.doi else panels.paper.key
    return f"{base}:{patient or 'patient'}"


def store_papers(collection: Collection, papers: list[PaperPanels]) -> list[Outcome]:
    """Add papers' chest panels in one `add_images` call; record and return their outcomes."""
    outcomes: list[Outcome] = []
    items: list[NewImage] = []
    owner: dict[str, Outcome] = {}  # image name / source_id -> its paper's outcome
    for panels in papers:
        paper = panels.paper
        outcome = Outcome(paper.key, paper.doi, ADDED, 0, paper.source,
                          paper.fulltext_url or paper.url)
        outcomes.append(outcome)
        if not panels.panels:
            outcome.outcome = NO_RADIOGRAPHS
            outcome.reason = f"{panels.figures} figure(s), none an X-ray or CT"
            continue
        ids: dict[str, str] = {}
        for panel in panels.panels:
            if panel.patient not in ids:
                ids[panel.patient] = collection.patient_id(patient_key(panels, panel.patient))
            row = {**panel.row, "patientid": ids[panel.patient]}
            items.append(NewImage(panel.data, panel.name, row))
            owner[panel.name] = owner[row["source_id"]] = outcome
    result = collection.add_images(items) if items else None
    skipped: dict[int, list[str]] = {}
    for row in result.added if result else []:
        owner[row["source_id"]].added += 1
    for name, reason in result.skipped if result else []:
        skipped.setdefault(id(owner[name]), []).append(reason.split(" as ")[0])
    for outcome, panels in zip(outcomes, papers, strict=True):
        reasons = skipped.get(id(outcome))
        if reasons:
            outcome.reason = f"{len(reasons)} skipped ({'; '.join(sorted(set(reasons)))})"
        outcome.reason = "; ".join(r for r in (outcome.reason, *panels.notes) if r)
    return record_outcomes(collection, outcomes)


def store_panels(collection: Collection, panels: PaperPanels) -> Outcome:
    """Add one paper's chest panels to the collection and record its outcome."""
    return store_papers(collection, [panels])[0]


class IngestPipeline:
    """Scrapy item pipeline: `{"panels": PaperPanels}` or `{"outcome": Outcome}` items.

    Papers are written in batches (CXRBANK_WRITE_BATCH papers, and at the end): one
    metadata.csv rewrite and one state transaction per batch. A paper's outcome is recorded
    only after its rows are written, so a crash redoes the unwritten papers next time.
    """

    def __init__(self, root: str, batch: int = 8, stats: Any = None) -> None:
        self.collection = Collection.create(root)
        self.outcomes: list[Outcome] = []
        self.batch = max(1, batch)
        self.pending: list[PaperPanels] = []
        self.failures: list[Outcome] = []
        self.stats = stats
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cxrbank-writer")
        self._writes: list[Future[None]] = []

    @classmethod
    def from_crawler(cls, crawler: Any) -> IngestPipeline:
        settings = crawler.settings
        pipeline = cls(settings.get("CXRBANK_ROOT") or ".",
                       settings.getint("CXRBANK_WRITE_BATCH", 8), crawler.stats)
        crawler.cxrbank_outcomes = pipeline.outcomes
        return pipeline

    def process_item(self, item: dict[str, Any]) -> dict[str, Any]:
        if "panels" in item:
            self.pending.append(item["panels"])
        else:
            outcome = item["outcome"]
            if outcome.outcome not in (NO_FULL_TEXT, ERROR):
                raise ValueError(f"not a failure outcome: {outcome.outcome}")
            self.failures.append(outcome)
        if len(self.pending) + len(self.failures) >= self.batch:
            self.flush_in_background()
        return item

    def close_spider(self) -> None:
        self.flush_in_background()
        self._writer.shutdown(wait=True)
        for future in self._writes:
            future.result()  # a bug in a write surfaces here, not silently

    def flush_in_background(self) -> None:
        """Write the pending batch on the writer thread (one thread: batches stay in order),
        so downloads and extraction go on while files are fsynced."""
        pending, self.pending = self.pending, []
        failures, self.failures = self.failures, []
        if pending or failures:
            self._writes.append(self._writer.submit(self.flush, pending, failures))

    def flush(self, pending: list[PaperPanels], failures: list[Outcome]) -> None:
        start = time.perf_counter()
        done: list[Outcome] = []
        if pending:
            try:
                done += store_papers(self.collection, pending)
            except Exception as exc:  # a write failure fails these papers, not the crawl
                failures += [Outcome(p.paper.key, p.paper.doi, ERROR, 0, p.paper.source,
                                     p.paper.url, f"could not store: {exc}") for p in pending]
        if failures:
            done += record_outcomes(self.collection, failures)
        self.outcomes += done
        for outcome in done:
            report_progress(outcome.to_dict())
        if self.stats is not None:
            self.stats.inc_value("cxrbank/store_wall_s", time.perf_counter() - start)
