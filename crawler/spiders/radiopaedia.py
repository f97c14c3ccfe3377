"""The Radiopaedia spider: listing -> case -> studies -> stacks -> image files, incrementally."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar
from urllib.parse import urlencode

import scrapy
from scrapy.exceptions import CloseSpider

from crawler import radiopaedia_state as state
from crawler.radiopaedia import (
    Card,
    LayoutChanged,
    StackImage,
    Study,
    canonical_url,
    chest_study,
    is_challenge,
    parse_case,
    parse_listing,
    parse_stacks,
    terms_accepted,
)
from crawler.radiopaedia_jobs import GONE_ATTEMPTS, CaseJob, CtStack, buildable, image_problem
from crawler.radiopaedia_rows import case_row
from crawler.radiopaedia_settings import spider_settings
from cxrbank.collection import Collection, NewImage
from cxrbank.schema import normalize_modality

__all__ = ["RadiopaediaSpider", "spider_settings"]

CHALLENGE_MESSAGE = (
    "Radiopaedia answered {url} with a challenge (captcha) page: the crawl stopped. cxrbank "
    "never tries to get past such pages; wait, crawl less (--max-cases) or ask the site."
)


class RadiopaediaSpider(scrapy.Spider):
    """Collects Radiopaedia cases into a collection; skips what earlier crawls already hold."""

    name = "radiopaedia"
    custom_settings: ClassVar[dict[str, Any]] = {
        "ITEM_PIPELINES": {"crawler.radiopaedia_state.CollectionPipeline": 300},
    }

    def __init__(
        self,
        root: str,
        query: str = "covid",
        modality: str = "",
        cases: list[str] | None = None,
        max_cases: int = 20,
        since: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.collection = Collection.create(root)
        self.query = query
        self.modality = normalize_modality(modality)
        self.case_urls = [canonical_url(u) for u in cases or []]
        self.max_cases = int(max_cases)
        self.since = since
        self.fetched = 0
        self.seen_urls: set[str] = set()
        self.in_progress: set[str] = set()
        self.report: dict[str, Any] = {
            "new": [], "updated": [], "incomplete": [], "unchanged": 0, "aliases": 0, "before_since": 0,
            "images_added": 0, "listing_pages": 0, "more_left": False, "errors": [],
            "stopped": "", "skipped": [],
        }
        self.db: Any = None

    # -- set-up
    @property
    def base(self) -> str:
        return str(self.settings.get("CXRBANK_RADIOPAEDIA_URL")).rstrip("/")

    @property
    def static_url(self) -> str:
        return str(self.settings.get("CXRBANK_RADIOPAEDIA_STATIC_URL") or self.base)

    def search_url(self, page: int = 1) -> str:
        params = {"lang": "us", "q": self.query, "scope": "cases", "page": page}
        if self.modality:
            params["modality"] = self.modality
        return f"{self.base}/search?{urlencode(params)}"

    async def start(self) -> Any:
        accepted = self.settings.getbool("CXRBANK_RADIOPAEDIA_ACCEPT_TERMS")
        if not terms_accepted(self.base, accepted):
            self.report["stopped"] = "terms not accepted"
            return
        self.db = state.connect(self.collection)
        state.adopt_rows(self.db, self.collection)
        if self.case_urls:
            for url in self.case_urls:
                if url not in self.seen_urls:
                    self.seen_urls.add(url)
                    yield self.case_request(url, None)
            return
        yield scrapy.Request(self.search_url(), callback=self.on_listing, errback=self.on_error)

    def closed(self, reason: str) -> None:
        if self.db is not None:
            self.db.close()

    def crawl_summary(self) -> dict[str, Any]:
        return {"radiopaedia": self.report}

    # -- listing
    def on_listing(self, response: Any) -> Iterator[Any]:
        self.stop_on_challenge(response)
        self.report["listing_pages"] += 1
        listing = parse_listing(response)
        if listing.hints and not listing.cards:
            self.report["stopped"] = (
                f"{response.url}: {listing.hints} result cards but no case could be read "
                "(the page layout changed)"
            )
            raise CloseSpider("layout_changed")
        recheck = self.settings.getfloat("CXRBANK_RADIOPAEDIA_RECHECK_DAYS", 30.0)
        for card in listing.cards:
            if card.url in self.seen_urls:
                continue
            self.seen_urls.add(card.url)
            if self.since and card.published and card.published < self.since:
                self.report["before_since"] += 1
                continue
            known = state.known_by_url(self.db, card.url)
            if (
                known is not None
                and known.complete
                and known.fingerprint == card.fingerprint()
                and (card.revisions is None or card.revisions == known.revisions)
                and state.is_fresh(known.checked, recheck)
            ):
                self.report["unchanged"] += 1
                continue
            if self.fetched >= self.max_cases:
                self.report["more_left"] = True
                continue
            yield self.case_request(card.url, card)
        if listing.next_url and self.fetched < self.max_cases:
            yield response.follow(listing.next_url, callback=self.on_listing, errback=self.on_error)
        elif listing.next_url:
            self.report["more_left"] = True

    def case_request(self, url: str, card: Card | None) -> scrapy.Request:
        self.fetched += 1
        return scrapy.Request(
            f"{url}?lang=us", callback=self.on_case, errback=self.on_error,
            cb_kwargs={"asked": url, "card": card},
        )

    # -- case
    def on_case(self, response: Any, asked: str, card: Card | None) -> Iterator[Any]:
        self.stop_on_challenge(response)
        try:
            case = parse_case(response)
        except LayoutChanged as exc:
            self.report["errors"].append(str(exc))
            return
        if card is not None and not case.author:
            case.author = card.author
        with state.transaction(self.db):
            state.remember_url(self.db, asked, case.rid, card.fingerprint() if card else None)
            if case.url != asked:
                state.remember_url(self.db, case.url, case.rid, None)
        if case.rid in self.in_progress:
            self.report["aliases"] += 1
            return
        self.in_progress.add(case.rid)
        known = state.known_by_rid(self.db, case.rid)
        if (
            known is not None
            and known.complete
            and case.revisions is not None
            and known.revisions == case.revisions
        ):
            state.remember_case(self.db, case.rid, case.url, case.title, case.revisions, True)
            self.report["unchanged"] += 1
            return
        failures, reasons = state.failure_counts(self.db, case.rid)
        job = CaseJob(
            case=case,
            status="updated" if known is not None and known.complete else "new",
            patientid=self.collection.patient_id(f"radiopaedia:{case.rid}"),
            have=state.known_images(self.db, case.rid),
            failures=failures,
            reasons=reasons,
        )
        for study in case.studies:
            study_modality = normalize_modality(study.modality)
            if self.modality and study_modality and study_modality != self.modality:
                continue
            if not chest_study(case, study):
                self.report["skipped"].append(
                    f"rID {case.rid} study {study.study_id} "
                    f"({study.description or study.modality or 'no description'}): not a chest study")
                continue
            job.pending += 1
            yield scrapy.Request(
                f"{self.base}/studies/{study.study_id}/stacks?lang=us",
                callback=self.on_stacks, errback=self.on_error,
                cb_kwargs={"job": job, "study": study},
            )
        yield from self.finish_if_done(job)

    def on_stacks(self, response: Any, job: CaseJob, study: Study) -> Iterator[Any]:
        job.pending -= 1
        self.stop_on_challenge(response)
        try:
            stacks = parse_stacks(response.body, self.static_url)
        except ValueError as exc:  # JSONDecodeError and LayoutChanged are ValueErrors
            job.errors.append(f"{response.url}: unreadable stacks JSON ({exc})")
            stacks = []
        for stack in stacks:
            modality = stack.modality or normalize_modality(study.modality)
            if self.modality and modality != self.modality:
                continue
            if modality == "X-ray":
                for image in stack.images:
                    if image.image_id not in job.have and not job.is_gone(image.image_id):
                        job.pending += 1
                        yield self.image_request(image, self.on_xray, job, study=study)
            elif modality == "CT" and stack.images:
                if any(image.image_id in job.have for image in stack.images):
                    continue
                ct = CtStack(stack, study)
                ct.missing = {i.image_id for i in stack.images if job.is_gone(i.image_id)}
                if not buildable(len(stack.images), len(ct.missing)):
                    self.left_out(job, ct)
                    continue
                for image in stack.images:
                    if image.image_id not in ct.missing:
                        ct.expected += 1
                        job.pending += 1
                        yield self.image_request(image, self.on_slice, job, ct=ct)
        yield from self.finish_if_done(job)

    def image_request(self, image: StackImage, callback: Any, job: CaseJob, **kw: Any) -> Any:
        return scrapy.Request(
            image.url, callback=callback, errback=self.on_error,
            cb_kwargs={"job": job, "image": image, **kw},
        )

    def failed(self, job: CaseJob, image: StackImage, message: str, reason: str, slice_: bool
               ) -> bool:
        """Count a failure of the image itself (404/410, not an image, unreadable): an error
        the next crawl retries, or after GONE_ATTEMPTS crawls a note that it is left out (for
        a CT slice, its stack's note says so). True when it is left out now."""
        job.gone[image.image_id] = reason
        if job.is_gone(image.image_id, now=True):
            if not slice_:
                job.notes.append(f"rID {job.case.rid} image {image.image_id}: left out, {reason} "
                                 f"in {GONE_ATTEMPTS} crawls ({image.url})")
            return True
        job.errors.append(f"{message} ({job.failures.get(image.image_id, 0) + 1} of "
                          f"{GONE_ATTEMPTS} crawls; then it is left out)")
        return False

    def bad_body(self, response: Any, job: CaseJob, image: StackImage, slice_: bool = False
                 ) -> tuple[bool, bool]:
        """(bad, gone now) for an image URL's answer that is no usable image, such as an HTML
        error page with HTTP 200 or a damaged file."""
        problem = image_problem(response.body)
        if problem is None:
            return False, False
        message = f"{response.url}: HTTP {response.status}, {problem}"
        return True, self.failed(job, image, message, problem, slice_)

    def on_xray(self, response: Any, job: CaseJob, image: StackImage, study: Study) -> Any:
        job.pending -= 1
        self.stop_on_challenge(response)
        if self.bad_body(response, job, image)[0]:
            yield from self.finish_if_done(job)
            return
        case = job.case
        job.images.append(
            NewImage(
                data=response.body,
                name=f"radiopaedia-{case.rid}-{study.study_id}-{image.image_id}",
                row=case_row(case, study, image, "X-ray", job.patientid),
            )
        )
        job.image_ids.append((image.image_id, study.study_id, "xray"))
        yield from self.finish_if_done(job)

    def on_slice(self, response: Any, job: CaseJob, image: StackImage, ct: CtStack) -> Any:
        job.pending -= 1
        self.stop_on_challenge(response)
        ct.answered += 1
        bad, gone_now = self.bad_body(response, job, image, slice_=True)
        if gone_now:
            ct.missing.add(image.image_id)
        elif bad:
            ct.failed += 1
        else:
            ct.slices[image.image_id] = response.body
        self.finish_ct(job, ct)
        yield from self.finish_if_done(job)

    def left_out(self, job: CaseJob, ct: CtStack) -> None:
        job.notes.append(
            f"rID {job.case.rid} study {ct.study.study_id}: CT stack left out, "
            f"{len(ct.missing)} of {len(ct.stack.images)} slices are gone "
            f"({job.why(ct.missing)})")

    def finish_ct(self, job: CaseJob, ct: CtStack) -> None:
        """Once every slice is in: the NIfTI volume plus its middle slice as the 2D row. A few
        slices gone for good (404 in GONE_ATTEMPTS crawls) leave a gap, said in the row."""
        if ct.answered < ct.expected:
            return
        study, case = ct.study, job.case
        if ct.failed:
            job.errors.append(
                f"rID {case.rid} study {study.study_id}: {ct.failed} CT slices failed; "
                "the stack is left for the next crawl"
            )
            return
        if not buildable(len(ct.stack.images), len(ct.missing)):
            self.left_out(job, ct)
            return
        # parse_stacks sorted them by position
        ordered = [i for i in ct.stack.images if i.image_id not in ct.missing]
        middle = ordered[len(ordered) // 2]
        try:
            volume = state.nifti_bytes([ct.slices[i.image_id] for i in ordered], ct.stack.spacing)
        except Exception as exc:  # one stack's bad data must not lose the case's other images
            job.errors.append(f"rID {case.rid} study {study.study_id}: no CT volume ({exc})")
            return
        row = case_row(case, study, middle, "CT", job.patientid)
        if ct.missing:
            gap = f"{len(ct.missing)} of {len(ct.stack.images)} slices"
            row["other_notes"] += f"; CT volume without {gap} (gone at the source)"
            job.notes.append(f"rID {case.rid} study {study.study_id}: CT volume built without "
                             f"{gap}, gone ({job.why(ct.missing)})")
        job.images.append(
            NewImage(
                data=ct.slices[middle.image_id],
                name=f"radiopaedia-{case.rid}-{study.study_id}-{middle.image_id}",
                row=row,
                volume=volume,
            )
        )
        job.image_ids.extend((i.image_id, study.study_id, "ct") for i in ordered)

    def finish_if_done(self, job: CaseJob) -> Iterator[dict[str, CaseJob]]:
        if job.pending == 0 and not job.finished:
            job.finished = True
            yield {"radiopaedia_case": job}

    # -- failures
    def on_error(self, failure: Any) -> Iterator[Any]:
        request = failure.request
        response = getattr(failure.value, "response", None)
        if response is not None:
            self.stop_on_challenge(response)
        what = response.status if response is not None else failure.getErrorMessage()
        message = f"{request.url}: {what}"
        job: CaseJob | None = request.cb_kwargs.get("job")
        if job is None:
            self.report["errors"].append(message)
            return
        job.pending -= 1
        ct: CtStack | None = request.cb_kwargs.get("ct")
        image: StackImage | None = request.cb_kwargs.get("image")
        gone_now = False
        if image is not None and response is not None and response.status in (404, 410):
            gone_now = self.failed(job, image, message, f"HTTP {response.status}", ct is not None)
        else:
            job.errors.append(message)
        if ct is not None:
            ct.answered += 1
            if gone_now:
                ct.missing.add(image.image_id)
            else:
                ct.failed += 1
            self.finish_ct(job, ct)
        yield from self.finish_if_done(job)

    def stop_on_challenge(self, response: Any) -> None:
        content_type = response.headers.get(b"Content-Type", b"").decode("latin-1").lower()
        if "html" not in content_type and response.status < 400:
            return
        body = response.body[:20000].decode("utf-8", "replace")
        if is_challenge(response.status, body):
            self.report["stopped"] = CHALLENGE_MESSAGE.format(url=response.url)
            raise CloseSpider("challenge")

