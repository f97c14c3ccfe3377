"""Radiopaedia crawl work in progress: a case's job, a CT stack's slices, files gone for good."""

from __future__ import annotations

from dataclasses import dataclass, field

from crawler.radiopaedia import Case, Stack, Study
from cxrbank.collection import NewImage

GONE_ATTEMPTS = 3  # crawls in which an image answered 404/410 before it is left out for good


def max_gap(slices: int) -> int:
    """How many slices of a CT stack may be gone for good with the volume still built."""
    return max(1, slices // 10)


@dataclass
class CtStack:
    """The slices of one CT stack being downloaded."""

    stack: Stack
    study: Study
    expected: int = 0  # slices requested
    answered: int = 0  # responses and failures so far
    slices: dict[str, bytes] = field(default_factory=dict)
    failed: int = 0  # failures this time: the stack waits for the next crawl
    missing: set[str] = field(default_factory=set)  # slices gone for good (GONE_ATTEMPTS x 404)


@dataclass
class CaseJob:
    """One case being collected: its pending requests, images received, and errors."""

    case: Case
    status: str  # new or updated
    patientid: str
    have: set[str]  # image ids already collected
    pending: int = 0
    images: list[NewImage] = field(default_factory=list)
    image_ids: list[tuple[str, str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    finished: bool = False
    failures: dict[str, int] = field(default_factory=dict)  # image id -> 404s in past crawls
    gone: list[str] = field(default_factory=list)  # image ids answered 404/410 this time
    notes: list[str] = field(default_factory=list)  # what is left out on purpose, said once

    def is_gone(self, image_id: str, now: bool = False) -> bool:
        """True once an image answered 404/410 in GONE_ATTEMPTS crawls (this one if `now`)."""
        return self.failures.get(image_id, 0) + now >= GONE_ATTEMPTS
