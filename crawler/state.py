"""Per-paper ingest outcomes in .cxrbank/state.sqlite (table `ingest_papers`)."""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import asdict, dataclass

from cxrbank.collection import Collection

ADDED = "added"
NO_FULL_TEXT = "no open full text"
NO_RADIOGRAPHS = "no radiographs"
ERROR = "error"
SKIPPED = "already ingested"  # reported, never stored
OUTCOMES = (ADDED, NO_FULL_TEXT, NO_RADIOGRAPHS, ERROR)

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS ingest_papers (key TEXT PRIMARY KEY, doi TEXT, outcome TEXT"
    " NOT NULL, added INTEGER NOT NULL DEFAULT 0, source TEXT, url TEXT, reason TEXT,"
    " at TEXT NOT NULL)"
)


@dataclass
class Outcome:
    """What ingesting one paper did. `key` is the DOI, or `sha256:…` for a local file."""

    key: str
    doi: str = ""
    outcome: str = ERROR
    added: int = 0
    source: str = ""  # the service or file the full text came from ("europepmc", "pdf file")
    url: str = ""
    reason: str = ""
    at: str = ""

    @property
    def failed(self) -> bool:
        return self.outcome == ERROR

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _connect(collection: Collection):
    db = collection.state()
    db.execute(_SCHEMA)
    return contextlib.closing(db)


def record_outcomes(collection: Collection, outcomes: list[Outcome]) -> list[Outcome]:
    """Store (replace) papers' outcomes, stamped now, in one transaction."""
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    for outcome in outcomes:
        if outcome.outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome.outcome!r}")
        outcome.at = now
    with _connect(collection) as db:
        db.execute("BEGIN IMMEDIATE")
        db.executemany(
            "INSERT OR REPLACE INTO ingest_papers (key, doi, outcome, added, source, url, reason,"
            " at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(o.key, o.doi, o.outcome, o.added, o.source, o.url, o.reason[:500], o.at)
             for o in outcomes],
        )
        db.execute("COMMIT")
    return outcomes


def record_outcome(collection: Collection, outcome: Outcome) -> Outcome:
    """Store (replace) one paper's outcome, stamped now."""
    return record_outcomes(collection, [outcome])[0]


def previous_outcome(collection: Collection, key: str) -> Outcome | None:
    """The stored outcome of a paper, or None when it was never ingested."""
    with _connect(collection) as db:
        row = db.execute(
            "SELECT key, doi, outcome, added, source, url, reason, at FROM ingest_papers"
            " WHERE key=?", (key,)).fetchone()
    return Outcome(*row) if row else None


def is_done(outcome: Outcome | None) -> bool:
    """A paper that needs no new attempt: it ended in anything but an error."""
    return outcome is not None and not outcome.failed


def skipped(previous: Outcome) -> Outcome:
    """The report line for a paper not redone: what happened last time, nothing added now."""
    when = previous.at[:10]
    was = f"{previous.outcome} {previous.added}" if previous.outcome == ADDED else previous.outcome
    return Outcome(previous.key, previous.doi, SKIPPED, 0, previous.source, previous.url,
                   f"{was} on {when}; --force redoes it", previous.at)
