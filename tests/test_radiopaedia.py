"""The Radiopaedia spider: parsing on fake responses, and whole crawls through the CLI."""

from __future__ import annotations

import csv
import gzip
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import nibabel as nib
import pytest
from click.testing import CliRunner
from scrapy.http import HtmlResponse

from crawler.radiopaedia import (
    Card,
    LayoutChanged,
    StackImage,
    canonical_url,
    is_challenge,
    parse_age,
    parse_case,
    parse_date,
    parse_listing,
    parse_stacks,
)
from crawler.radiopaedia_rows import LICENSE, finding_of, study_offset, view_of
from crawler.spiders.radiopaedia import spider_settings
from cxrbank.cli import main
from cxrbank.collection import Collection, NewImage
from tests.fixtures.radiopaedia_site import (
    CHALLENGE_HTML,
    FakeRadiopaedia,
    build_site,
    make_cases,
    png,
)

BASE = "http://127.0.0.1:9"
FAST = ["-s", "CONCURRENT_REQUESTS_PER_DOMAIN=4"]


class _NoWeb:
    """Stands in for the test web when only the site's page bodies are needed."""

    base = BASE

    def add(self, *args, **kwargs):
        return ""

    def url(self, path: str) -> str:
        return BASE + path


def html_response(url: str, body: str, status: int = 200) -> HtmlResponse:
    return HtmlResponse(url=url, body=body.encode(), encoding="utf-8", status=status)


def offline_site(count: int = 12) -> FakeRadiopaedia:
    return FakeRadiopaedia(_NoWeb(), make_cases(count))


def crawl(web, root: Path, *args: str, env: dict | None = None):
    """Run `cxrbank crawl radiopaedia` against the local site; (exit code, JSON report)."""
    environment = {
        "CXRBANK_RADIOPAEDIA_URL": web.base,
        "CXRBANK_RADIOPAEDIA_STATIC_URL": web.url("/static"),
        "CXRBANK_CONTACT": "tests@example.org",
        **(env or {}),
    }
    result = CliRunner().invoke(
        main, ["crawl", "radiopaedia", "--root", str(root), "--json", *FAST, *args],
        env=environment,
    )
    try:
        report = json.loads(result.stdout)
    except ValueError:
        report = {"output": result.output}
    return result.exit_code, report, result


def read_rows(root: Path) -> list[dict[str, str]]:
    with open(root / "metadata.csv", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def site_requests(web, since: int = 0) -> list[str]:
    return [r.path for r in web.requests[since:] if r.path != "/robots.txt"]


# -- parsing on fake responses


def test_listing_cards_in_old_and_new_markup():
    site = offline_site(12)
    page = site._search(type("R", (), {"path": "/search?q=covid&page=1"})())
    listing = parse_listing(html_response(BASE + "/search?q=covid", page.body.decode()))
    assert len(listing.cards) == 10 and listing.hints == 10
    old, new = listing.cards[0], listing.cards[1]
    assert old == Card(
        url=f"{BASE}/cases/covid-19-pneumonia-0", title="COVID-19 pneumonia",
        author="Dr Author 0", published="2020-03-01", certainty="Diagnosis certain",
        modalities="CT, X-ray",
    )
    assert new.url == f"{BASE}/cases/covid-19-pneumonia-1"  # ?lang=us dropped
    assert (new.title, new.author, new.published) == ("COVID-19 pneumonia 1", "Dr Author 1",
                                                      "2020-03-02")
    assert listing.next_url == f"{BASE}/search?lang=us&page=2&q=covid&scope=cases"


def test_listing_card_revisions_change_its_fingerprint():
    body = (
        '<a class="search-result search-result-case" href="/cases/x" data-revisions="4">'
        '<h4 class="search-result-title">X</h4></a>'
    )
    card = parse_listing(html_response(BASE + "/search", body)).cards[0]
    assert card.revisions == 4
    assert card.fingerprint() != Card(url=card.url, title="X", revisions=5).fingerprint()


def test_listing_with_unreadable_cards_counts_them_as_hints():
    body = "<div class='search-result search-result-case'><b>COVID</b></div>" * 3
    listing = parse_listing(html_response(BASE + "/search", body))
    assert listing.cards == [] and listing.hints == 3


@pytest.mark.parametrize("index,markup", [(0, "old"), (1, "new")])
def test_case_page_facts_in_both_markups(index, markup):
    site = offline_site()
    fake = site.cases[index]
    assert fake.markup == markup
    case = parse_case(html_response(f"{BASE}/cases/{fake.slug}?lang=us", site.case_html(fake)))
    assert case.rid == str(fake.rid)
    assert case.url == f"{BASE}/cases/{fake.slug}"
    assert case.author == fake.author
    assert case.revisions == fake.revisions
    assert case.published == fake.published.isoformat()
    assert case.age == str(30 + index) and case.sex == ("F" if index % 2 == 0 else "M")
    assert case.certainty == fake.certainty
    assert case.presentation == fake.presentation
    assert [s.study_id for s in case.studies] == [str(s.study_id) for s in fake.studies]
    assert [s.modality for s in case.studies] == [s.modality for s in fake.studies]


def test_case_page_without_rid_is_a_layout_change():
    with pytest.raises(LayoutChanged, match="layout changed"):
        parse_case(html_response(BASE + "/cases/x", "<h1 class='header-title'>T</h1>"))


def test_stacks_sorted_by_position_with_spacing_and_static_urls():
    site = offline_site(11)
    ct_study = site.cases[10].studies[1]
    data = site.stacks_json(ct_study)
    data[0]["images"][0]["fullscreen_filename"] = ""  # falls back to the relative public name
    (stack,) = parse_stacks(json.dumps(data), "http://static.test/")
    assert stack.modality == "CT"
    assert [i.position for i in stack.images] == [0, 1, 2, 3, 4, 5]
    assert stack.spacing == (0.7, 0.7, 5.0)
    first_id = str(ct_study.images[0].image_id)
    assert [i.url for i in stack.images if i.image_id == first_id] == [
        f"http://static.test/images/{first_id}/big.png"
    ]
    with pytest.raises(LayoutChanged):
        parse_stacks("{}", "http://static.test")


@pytest.mark.parametrize(
    "title,certainty,expected",
    [
        ("COVID-19 pneumonia", "Diagnosis certain", "Pneumonia/Viral/COVID-19"),
        ("SARS-CoV-2 pneumonia with ARDS", "", "Pneumonia/Viral/COVID-19"),
        ("Klebsiella pneumonia", "Diagnosis almost certain", "Pneumonia/Bacterial/Klebsiella"),
        ("COVID-19 pneumonia", "Diagnosis probable", "todo"),
        ("Possible COVID-19", "", "todo"),
        ("Pneumocystis pneumonia", "Diagnosis possible", "todo"),
        ("Pneumonia - lobar", "Diagnosis certain", "Pneumonia"),
        ("Fractured rib", "Diagnosis certain", "todo"),
    ],
)
def test_finding_from_title_and_certainty(title, certainty, expected):
    assert finding_of(title, "", certainty) == expected


@pytest.mark.parametrize(
    "plane,caption,modality,expected",
    [("PA", "", "X-ray", "PA"), ("Lateral", "", "X-ray", "L"), ("", "AP supine", "X-ray",
     "AP Supine"), ("Frontal", "", "X-ray", ""), ("Axial", "", "CT", "Axial"),
     ("Coronal", "", "CT", "Coronal")],
)
def test_view_from_plane_or_caption(plane, caption, modality, expected):
    image = StackImage(image_id="1", position=0, url="", plane=plane, caption=caption)
    assert view_of(modality, image) == expected


def test_offset_from_study_title_findings_or_presentation():
    case = parse_case(html_response(BASE + "/cases/a", offline_site().case_html(
        offline_site().cases[0])))
    first, ct = case.studies
    assert study_offset(case, first) == "1"  # "Day 1"
    first.description = "Chest radiograph"
    assert study_offset(case, first) == "2"  # presentation: "Fever and cough for 2 days."
    assert study_offset(case, ct) == ""
    ct.findings = "Follow-up 10 days after admission."
    assert study_offset(case, ct) == "10"


def test_small_parsers():
    assert parse_age("6 months") == "0.5" and parse_age("45 years") == "45"
    assert parse_age("") == ""
    assert parse_date("Published 12 Mar 2020") == "2020-03-12"
    assert parse_date("March 12, 2020") == "2020-03-12"
    assert canonical_url("https://r.org/cases/a/?lang=us#x") == "https://r.org/cases/a"
    assert is_challenge(403, CHALLENGE_HTML)
    assert not is_challenge(200, "<html>COVID-19 pneumonia</html>")


def test_ordinary_pages_with_cloudflare_scripts_or_recaptcha_are_not_challenges():
    page = ('<html><head><title>COVID-19 pneumonia | Radiology Case | Radiopaedia.org</title>'
            '<script src="/cdn-cgi/challenge-platform/scripts/jsd/main.js"></script></head>'
            '<body><form class="g-recaptcha">Sign up</form>case text</body></html>')
    assert not is_challenge(200, page)
    assert is_challenge(200, "<html><title>Just a moment...</title></html>")
    assert is_challenge(503, page)  # the same markers on an error status are a challenge


def test_real_site_settings_keep_polite_floors():
    settings = spider_settings("me@example.org", True, {"DOWNLOAD_DELAY": 0,
                                                      "CONCURRENT_REQUESTS_PER_DOMAIN": 8})
    assert settings["CXRBANK_RADIOPAEDIA_URL"] == "https://radiopaedia.org"
    assert settings["ROBOTSTXT_OBEY"] is True
    assert settings["AUTOTHROTTLE_ENABLED"] is True
    assert settings["DOWNLOAD_DELAY"] >= 2
    assert settings["CONCURRENT_REQUESTS_PER_DOMAIN"] == 1
    assert "mailto:me@example.org" in settings["USER_AGENT"]


# -- whole crawls through the CLI


def test_first_crawl_then_recrawl_fetches_listing_pages_only(web, tmp_path):
    site = build_site(web, faults=False)
    code, report, result = crawl(web, tmp_path, "--max-cases", "100")
    assert code == 0, result.output
    assert len(report["new"]) == 32 and report["errors"] == []
    rows = read_rows(tmp_path)
    ct_cases = [c for c in site.cases if len(c.studies) > 1]
    assert report["images_added"] == len(rows) == 32 * 2 + len(ct_cases)
    assert Counter(r["modality"] for r in rows) == {"X-ray": 64, "CT": len(ct_cases)}
    assert {r["view"] for r in rows if r["modality"] == "X-ray"} == {"PA", "L"}

    first = next(r for r in rows if r["source_id"].startswith("70001/2010/") and r["view"] == "PA")
    assert first["patientid"] and first["sex"] == "M" and first["age"] == "31"
    assert first["finding"] == "Pneumonia/Viral/COVID-19"
    assert first["url"] == f"{web.base}/cases/covid-19-pneumonia-1"
    assert first["license"] == LICENSE and first["source"] == "radiopaedia"
    assert first["other_notes"].startswith("Case courtesy of Dr Author 1, Radiopaedia.org, "
                                           "rID: 70001")
    assert "Fever and cough" in first["clinical_notes"]
    assert "Bilateral peripheral opacities (1)." in first["clinical_notes"]
    assert first["offset"] == "2"
    probable = next(r for r in rows if r["source_id"].startswith("70002/"))
    assert probable["finding"] == "todo"

    ct = next(r for r in rows if r["source_id"].startswith("70010/") and r["modality"] == "CT")
    assert ct["view"] == "Axial" and ct["volume"].startswith("volumes/")
    volume = nib.load(tmp_path / ct["volume"])
    assert volume.shape == (32, 32, 6)
    assert tuple(float(z) for z in volume.header.get_zooms()) == pytest.approx((0.7, 0.7, 5.0))
    middle = sorted(site.cases[10].studies[1].images, key=lambda i: i.position)[3]
    assert ct["source_id"] == f"70010/2101/{middle.image_id}"

    before = len(web.requests)
    code, again, result = crawl(web, tmp_path, "--max-cases", "100")
    assert code == 0, result.output
    assert again["unchanged"] == 32 and again["new"] == [] and again["images_added"] == 0
    assert site_requests(web, before) == [r for r in site_requests(web, before)
                                          if r.startswith("/search")]
    assert again["listing_pages"] == 4
    assert len(read_rows(tmp_path)) == len(rows)


def test_faults_alias_edit_and_errors(web, tmp_path):
    site = build_site(web)
    site.slow_delay = 4.0
    code, report, result = crawl(web, tmp_path, "--max-cases", "100",
                                 "-s", "DOWNLOAD_TIMEOUT=2", "-s", "RETRY_TIMES=0")
    assert code == 1  # the 500 and the timeout, each one line; the rest kept
    errors = report["errors"]
    assert len(errors) == 2, errors
    assert any("covid-19-pneumonia-7" in e and "500" in e for e in errors)
    assert any("/studies/2090/stacks" in e for e in errors)
    assert "Error: " in result.stderr
    rows = read_rows(tmp_path)
    assert not any(r["source_id"].startswith(("70007/", "70009/")) for r in rows)
    # The alias: two URLs, one rID, one patient, each image once.
    alias_rows = [r for r in rows if r["source_id"].startswith("70003/")]
    assert len(alias_rows) == 2 and len({r["patientid"] for r in alias_rows}) == 1
    assert len({r["sha256"] for r in rows}) == len(rows)

    # Between crawls: an author edits a case (new certainty, a new image) and faults clear.
    edited = site.cases[2]
    new_image = site.edit(edited, title="COVID-19 pneumonia 2")
    site.broken_slug = site.slow_study = None
    before = len(web.requests)
    code, again, result = crawl(web, tmp_path, "--max-cases", "100")
    assert code == 0, result.output
    assert [c["rid"] for c in again["updated"]] == ["70002"]
    assert sorted(c["rid"] for c in again["new"]) == ["70007", "70009"]
    fetched = site_requests(web, before)
    expected_images = {new_image.image_id} | {
        i.image_id for c in (site.cases[7], site.cases[9]) for s in c.studies for i in s.images
    }
    assert sorted(p for p in fetched if p.startswith("/static/")) == sorted(
        f"/static/images/{i}/big.png" for i in expected_images
    )
    assert sum(1 for p in fetched if p.startswith("/cases/")) == 3
    new_rows = [r for r in read_rows(tmp_path) if r["source_id"].startswith("70002/")]
    assert len(new_rows) == 3 and len({r["patientid"] for r in new_rows}) == 1
    added = next(r for r in new_rows if r["source_id"].endswith(f"/{new_image.image_id}"))
    assert added["view"] == "AP" and added["finding"] == "Pneumonia/Viral/COVID-19"
    alias_patient = alias_rows[0]["patientid"]
    with sqlite3.connect(tmp_path / ".cxrbank" / "state.sqlite") as db:
        urls = dict(db.execute("SELECT url, rid FROM radiopaedia_urls WHERE rid='70003'"))
        keys = dict(db.execute("SELECT key, patientid FROM patients"))
    assert set(urls) == {f"{web.base}/cases/{site.cases[3].slug}",
                         f"{web.base}/cases/{site.cases[3].slug}-alias"}
    assert keys["radiopaedia:70003"] == alias_patient


def test_edit_hidden_from_listing_is_found_when_cases_are_rechecked(web, tmp_path):
    site = build_site(web, count=6, faults=False)
    assert crawl(web, tmp_path)[0] == 0
    edited = site.cases[1]
    image = site.edit(edited, certainty=edited.certainty)  # the card looks the same
    code, report, _ = crawl(web, tmp_path)
    assert report["unchanged"] == 6 and report["images_added"] == 0
    before = len(web.requests)
    code, report, _ = crawl(web, tmp_path, "-s", "CXRBANK_RADIOPAEDIA_RECHECK_DAYS=1e-9")
    assert code == 0
    assert [c["rid"] for c in report["updated"]] == ["70001"] and report["unchanged"] == 5
    fetched = site_requests(web, before)
    assert sum(p.startswith("/cases/") for p in fetched) == 6
    assert sum(p.startswith("/studies/") for p in fetched) == 1  # only the edited case's
    assert [p for p in fetched if p.startswith("/static/")] == [
        f"/static/images/{image.image_id}/big.png"
    ]


def test_max_cases_and_since_and_resuming(web, tmp_path):
    build_site(web, count=12, faults=False)
    code, report, _ = crawl(web, tmp_path, "--max-cases", "4", "--since", "2020-03-03")
    assert code == 0
    assert len(report["new"]) == 4 and report["more_left"] is True
    assert report["before_since"] == 2
    code, report, _ = crawl(web, tmp_path, "--max-cases", "20", "--since", "2020-03-03")
    assert len(report["new"]) == 6 and report["unchanged"] == 4
    assert {r["source_id"].split("/")[0] for r in read_rows(tmp_path)} == {
        str(70000 + i) for i in range(2, 12)
    }


def test_crawl_killed_midway_resumes_without_duplicates(web, tmp_path):
    site = build_site(web, count=12, faults=False)
    site.image_delay = 0.15
    env = {**os.environ, "CXRBANK_RADIOPAEDIA_URL": web.base,
           "CXRBANK_CONTACT": "tests@example.org"}
    command = [sys.executable, "-c", "from cxrbank.cli import main; main()", "crawl",
               "radiopaedia", "--root", str(tmp_path), *FAST]
    process = subprocess.Popen(command, env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            if (tmp_path / "metadata.csv").exists() and len(read_rows(tmp_path)) >= 2:
                break
            time.sleep(0.05)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    kept = len(read_rows(tmp_path))
    assert 2 <= kept < 12 * 2 + 3
    site.image_delay = 0.0
    code, report, result = crawl(web, tmp_path, "--max-cases", "100")
    assert code == 0, result.output
    rows = read_rows(tmp_path)
    assert len(rows) == 12 * 2 + 3 == kept + report["images_added"]
    assert len({r["source_id"] for r in rows}) == len(rows)
    assert len(report["new"]) + report["unchanged"] == 12


def test_lost_state_is_rebuilt_from_metadata_without_new_patients(web, tmp_path):
    build_site(web, count=6, faults=False)
    assert crawl(web, tmp_path)[0] == 0
    patients = {r["source_id"]: r["patientid"] for r in read_rows(tmp_path)}
    (tmp_path / ".cxrbank" / "state.sqlite").unlink()
    for extra in (tmp_path / ".cxrbank").glob("state.sqlite-*"):
        extra.unlink()
    before = len(web.requests)
    code, report, _ = crawl(web, tmp_path)
    assert code == 0
    assert report["images_added"] == 0 and report["unchanged"] == 6 and report["new"] == []
    assert not any(p.startswith("/static/") for p in site_requests(web, before))
    assert {r["source_id"]: r["patientid"] for r in read_rows(tmp_path)} == patients


def test_upstream_row_of_a_case_keeps_its_patient_id(web, tmp_path):
    site = build_site(web, count=3, faults=False)
    collection = Collection.create(tmp_path)
    collection.add_images([NewImage(png(424242), "covid-19-pneumonia-1-PA", {
        "patientid": "446", "finding": "Pneumonia/Viral/COVID-19", "source": "upstream",
        "url": "https://radiopaedia.org/cases/covid-19-pneumonia-1",
        "other_notes": "Case courtesy of Dr Author 1, Radiopaedia.org, rID: 70001",
    })])
    code, report, _ = crawl(web, tmp_path)
    assert code == 0
    assert [c["rid"] for c in report["updated"]] == ["70001"] and len(report["new"]) == 2
    crawled = [r for r in read_rows(tmp_path) if r["source_id"].startswith("70001/")]
    assert len(crawled) == len(site.cases[1].studies[0].images)
    assert {r["patientid"] for r in crawled} == {"446"}
    others = {r["patientid"] for r in read_rows(tmp_path) if r["source"] == "radiopaedia"}
    assert len(others) == 3


def test_single_case_urls_and_modality(web, tmp_path):
    site = build_site(web, count=6, faults=False)
    url = web.url(f"/cases/{site.cases[5].slug}?lang=us")
    code, report, _ = crawl(web, tmp_path, "--case", url, "--modality", "CT")
    assert code == 0 and len(report["new"]) == 1
    assert not any(p.startswith("/search") for p in site_requests(web))
    rows = read_rows(tmp_path)
    assert [(r["modality"], r["view"]) for r in rows] == [("CT", "Axial")]
    with gzip.open(tmp_path / rows[0]["volume"]) as handle:
        assert handle.read(348)[344:348] == b"n+1\x00"  # a NIfTI-1 single-file header


def test_challenge_page_stops_the_crawl(web, tmp_path):
    site = build_site(web, count=6, faults=False)
    site.challenge = True
    code, report, result = crawl(web, tmp_path)
    assert code == 1
    assert "challenge (captcha) page" in report["stopped"]
    assert "never tries to get past" in result.stderr
    assert site_requests(web) == ["/search?lang=us&q=covid&scope=cases&page=1"]
    assert read_rows(tmp_path) == []


def test_robots_txt_is_obeyed(web, tmp_path):
    build_site(web, count=2, faults=False)
    web.add("/robots.txt", "User-agent: *\nDisallow: /studies/\n",
            headers={"Content-Type": "text/plain"})
    code, report, _ = crawl(web, tmp_path)
    assert code == 1
    assert len(report["errors"]) == 3  # each study (case 0 has two), refused, one line each
    assert all("robots.txt" in e for e in report["errors"])
    assert not any(p.startswith("/studies/") for p in site_requests(web))


def test_listing_layout_change_exits_1(web, tmp_path):
    site = build_site(web, count=6, faults=False)
    site.layout_broken = True
    code, report, result = crawl(web, tmp_path)
    assert code == 1
    assert "the page layout changed" in result.stderr
    assert report["new"] == []


def test_real_site_refused_without_accepting_terms(web, tmp_path):
    real = {"CXRBANK_RADIOPAEDIA_URL": "https://radiopaedia.org"}
    code, _, result = crawl(web, tmp_path, env=real)
    assert code == 1
    assert "forbid bulk automated downloading" in result.stderr
    assert "--accept-terms" in result.stderr
    assert web.requests == []
