"""Radiopaedia crawl work in progress: a case's job, a CT stack's slices, files gone for good."""

from __future__ import annotations

from dataclasses import dataclass, field

from crawler.radiopaedia import Case, Stack, Study
from cxrbank.collection import NewImage

GONE_ATTEMPTS = 3  # crawls in which an image failed for good (404/410, broken) before it is left out


def max_gap(slices: int) -> int:
    """How many slices of a CT stack may be gone for good with the volume still built."""
    return max(1, slices // 10)


def buildable(slices: int, missing: int) -> bool:
    """True when a CT stack of `slices` with `missing` gone for good still gives a volume: at
    least one slice left and at most max_gap missing."""
    return missing < slices and missing <= max_gap(slices)


def image_problem(body: bytes) -> str | None:
    """Why downloaded bytes are no usable image (an HTML page, not an image, unreadable), or None."""
    from cxrbank.collection import sniff_image_extension
    from extract.render import image_problem as decode_problem

    if sniff_image_extension(body) is None:
        return "an HTML page" if b"<html" in body[:2048].lower() else "not an image"
    why = decode_problem(body)  # JPEGs decoded at 1/8 scale: the whole stream is still read
    return f"unreadable image: {why}" if why else None


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
    failures: dict[str, int] = field(default_factory=dict)  # image id -> failed crawls so far
    reasons: dict[str, str] = field(default_factory=dict)  # image id -> its last failure's reason
    gone: dict[str, str] = field(default_factory=dict)  # image id -> this crawl's counted failure
    notes: list[str] = field(default_factory=list)  # what is left out on purpose, said once

    def is_gone(self, image_id: str, now: bool = False) -> bool:
        """True once an image failed for good (404/410, not an image, unreadable) in
        GONE_ATTEMPTS crawls (this one counted if `now`)."""
        return self.failures.get(image_id, 0) + now >= GONE_ATTEMPTS

    def why(self, image_ids: set[str] | list[str]) -> str:
        """The reasons these images are gone, e.g. 'HTTP 404 in 3 crawls'."""
        reasons = sorted({self.gone.get(i) or self.reasons.get(i) or "HTTP 404" for i in image_ids})
        return f"{', '.join(reasons)} in {GONE_ATTEMPTS} crawls"
