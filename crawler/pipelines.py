"""The one writer of ingest results: patient ids, `Collection.add_images`, per-paper outcome."""

from __future__ import annotations

from typing import Any

from crawler.paper_rows import PaperPanels
from crawler.state import ADDED, ERROR, NO_FULL_TEXT, NO_RADIOGRAPHS, Outcome, record_outcome
from cxrbank.collection import Collection, NewImage


def patient_key(panels: PaperPanels, patient: str) -> str:
    """The stable patient key of one case in a paper: `doi:<doi>:<patient>`."""
    base = f"doi:{panels.paper.doi}" if panels.paper.doi else panels.paper.key
    return f"{base}:{patient or 'patient'}"


def store_panels(collection: Collection, panels: PaperPanels) -> Outcome:
    """Add a paper's chest panels to the collection and record its outcome."""
    paper = panels.paper
    outcome = Outcome(paper.key, paper.doi, ADDED, 0, paper.source, paper.url)
    if not panels.panels:
        outcome.outcome = NO_RADIOGRAPHS
        outcome.reason = f"{panels.figures} figure(s), none an X-ray or CT"
        return record_outcome(collection, outcome)
    ids: dict[str, str] = {}
    items = []
    for panel in panels.panels:
        if panel.patient not in ids:
            ids[panel.patient] = collection.patient_id(patient_key(panels, panel.patient))
        items.append(NewImage(panel.data, panel.name, {**panel.row, "patientid": ids[panel.patient]}))
    result = collection.add_images(items)
    outcome.added = len(result.added)
    if result.skipped:
        reasons = sorted({reason.split(" as ")[0] for _, reason in result.skipped})
        outcome.reason = f"{len(result.skipped)} skipped ({'; '.join(reasons)})"
    return record_outcome(collection, outcome)


def store_failure(collection: Collection, outcome: Outcome) -> Outcome:
    """Record a paper that yielded no document (no open full text, or an error)."""
    if outcome.outcome not in (NO_FULL_TEXT, ERROR):
        raise ValueError(f"not a failure outcome: {outcome.outcome}")
    return record_outcome(collection, outcome)


class IngestPipeline:
    """Scrapy item pipeline: `{"panels": PaperPanels}` or `{"outcome": Outcome}` items."""

    def __init__(self, root: str) -> None:
        self.collection = Collection.create(root)
        self.outcomes: list[Outcome] = []

    @classmethod
    def from_crawler(cls, crawler: Any) -> IngestPipeline:
        pipeline = cls(crawler.settings.get("CXRBANK_ROOT") or ".")
        crawler.cxrbank_outcomes = pipeline.outcomes
        return pipeline

    def process_item(self, item: dict[str, Any]) -> dict[str, Any]:
        if "panels" in item:
            try:
                outcome = store_panels(self.collection, item["panels"])
            except Exception as exc:  # one paper's failure must not stop the others
                paper = item["panels"].paper
                outcome = store_failure(self.collection, Outcome(
                    paper.key, paper.doi, ERROR, 0, paper.source, paper.url,
                    f"could not store: {exc}"))
        else:
            outcome = store_failure(self.collection, item["outcome"])
        self.outcomes.append(outcome)
        return {"outcome": outcome.to_dict()}
