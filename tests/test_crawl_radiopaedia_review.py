"""`cxrbank crawl radiopaedia`: images that arrive broken, non-chest cases, challenge pages,
permanently broken CT slices and the real site's settings (review findings)."""

from __future__ import annotations

import nibabel as nib
import pytest
from click.testing import CliRunner

from crawler.radiopaedia import Case, Study, chest_study
from crawler.radiopaedia_settings import BadSetting, spider_settings
from cxrbank.cli import main
from tests.fixtures.radiopaedia_site import (
    CHALLENGE_HTML,
    FakeImage,
    FakeRadiopaedia,
    FakeStudy,
    Page,
    build_site,
    make_cases,
    png,
)
from tests.test_radiopaedia import FAST, crawl, read_rows, site_requests

HTML_HICCUP = Page(b"<html><body>Temporarily unavailable</body></html>", 200,
                   {"Content-Type": "text/html"})


def plain_crawl(web, root, *args: str):
    """`cxrbank crawl radiopaedia` without --json: (exit code, stdout, stderr)."""
    result = CliRunner().invoke(
        main, ["crawl", "radiopaedia", "--root", str(root), *FAST, *args],
        env={"CXRBANK_RADIOPAEDIA_URL": web.base, "CXRBANK_CONTACT": "tests@example.org",
             "CXRBANK_RADIOPAEDIA_STATIC_URL": web.url("/static")})
    return result.exit_code, result.stdout, result.stderr


def test_an_image_answered_once_with_an_html_page_is_fetched_again_next_crawl(web, tmp_path):
    site = build_site(web, count=2, faults=False)
    image = site.cases[0].studies[0].images[0]
    web.add(f"/static/images/{image.image_id}/big.png",
            [HTML_HICCUP, Page(png(image.image_id), 200, {"Content-Type": "image/png"})])
    root = tmp_path / "c"
    code, report, _ = crawl(web, root)
    assert code == 1
    assert [e["rid"] for e in report["incomplete"]] == [str(site.cases[0].rid)]
    assert report["errors"] == [
        f"{web.url(f'/static/images/{image.image_id}/big.png')}: HTTP 200, an HTML page "
        "(1 of 3 crawls; then it is left out)"]
    assert f"/{image.image_id}" not in " ".join(r["source_id"] for r in read_rows(root))

    before = len(web.requests)
    code, report, _ = crawl(web, root)
    assert code == 0 and report["errors"] == [] and report["images_added"] == 1
    assert f"/static/images/{image.image_id}/big.png" in site_requests(web, before)
    ids = [r["source_id"] for r in read_rows(root)]
    assert f"{site.cases[0].rid}/{site.cases[0].studies[0].study_id}/{image.image_id}" in ids
    code, report, _ = crawl(web, root)  # complete now: nothing fetched again
    assert code == 0 and report["unchanged"] == 2 and report["images_added"] == 0


def test_a_ct_slice_answered_with_an_html_page_fails_its_stack_not_the_volume(web, tmp_path):
    site = build_site(web, count=1, faults=False)
    ct = site.cases[0].studies[1]
    web.add(f"/static/images/{ct.images[2].image_id}/big.png", [
        HTML_HICCUP, Page(png(ct.images[2].image_id), 200, {"Content-Type": "image/png"})])
    root = tmp_path / "c"
    code, report, _ = crawl(web, root)
    assert code == 1 and not any(r["modality"] == "CT" for r in read_rows(root))
    assert not list(root.glob("volumes/*.nii.gz"))
    code, report, _ = crawl(web, root)
    assert code == 0, report
    assert [r["modality"] for r in read_rows(root)].count("CT") == 1
    assert len(list(root.glob("volumes/*.nii.gz"))) == 1



def test_covid_cases_of_other_body_parts_give_no_rows(web, tmp_path):
    cases = make_cases(2)
    brain = cases[0]
    brain.title, brain.systems = "COVID-19 associated acute necrotising encephalopathy", \
        "Central Nervous System"
    brain.studies[0].description, brain.studies[1].description = "Hand X-ray", "CT brain"
    mixed = cases[1]
    mixed.systems = "Chest, Musculoskeletal"
    mixed.studies.append(FakeStudy(9001, "X-ray", "Knee", "Effusion.",
                                   [FakeImage(990001, 0, "AP")]))
    FakeRadiopaedia(web, cases)
    root = tmp_path / "c"
    code, report, _ = crawl(web, root)
    assert code == 0, report
    assert sorted(report["skipped"]) == [
        f"rID {brain.rid} study {brain.studies[0].study_id} (Hand X-ray): not a chest study",
        f"rID {brain.rid} study {brain.studies[1].study_id} (CT brain): not a chest study",
        f"rID {mixed.rid} study 9001 (Knee): not a chest study"]
    rows = read_rows(root)
    assert {r["source_id"].split("/")[0] for r in rows} == {str(mixed.rid)}
    assert sorted(r["source_id"].split("/")[1] for r in rows) == [str(mixed.studies[0].study_id)] * 2
    assert "/studies/9001/stacks" not in " ".join(site_requests(web))
    code, out, _ = plain_crawl(web, tmp_path / "c2")
    assert code == 0
    assert f"skipped: rID {brain.rid} study {brain.studies[1].study_id} (CT brain): " \
        "not a chest study" in out.splitlines()


def test_chest_study_rules():
    case = Case(url="u", rid="1", title="t", systems=["Chest"])
    assert chest_study(case, Study("1", "Day 3"))
    assert chest_study(case, Study("2", "CT abdomen and chest"))
    assert not chest_study(case, Study("3", "CT brain"))
    assert not chest_study(Case(url="u", rid="1", title="t", systems=["Hepatobiliary"]),
                           Study("4", "Day 3"))
    assert chest_study(Case(url="u", rid="1", title="t", systems=["Hepatobiliary"]),
                       Study("5", "Chest radiograph"))


def test_a_503_challenge_page_is_requested_once_and_stops_the_crawl(web, tmp_path):
    build_site(web, count=3, faults=False)
    web.add("/search", Page(CHALLENGE_HTML.encode(), 503, {"Content-Type": "text/html"}))
    code, report, _ = crawl(web, tmp_path / "c")
    assert code == 1 and "challenge" in report["stopped"]
    assert site_requests(web) == ["/search?lang=us&q=covid&scope=cases&page=1"]


def test_real_site_floors_hold_whatever_the_user_sets():
    settings = spider_settings("me@example.org", True, {
        "AUTOTHROTTLE_MAX_DELAY": 0, "AUTOTHROTTLE_START_DELAY": 0, "DOWNLOAD_DELAY": 0.1,
        "AUTOTHROTTLE_TARGET_CONCURRENCY": 8.0, "CONCURRENT_REQUESTS": 16,
        "CONCURRENT_REQUESTS_PER_DOMAIN": 8, "AUTOTHROTTLE_ENABLED": False})
    assert settings["DOWNLOAD_DELAY"] == 2.0 and settings["DOWNLOAD_DELAY_JITTER"] == 0.0
    assert settings["AUTOTHROTTLE_ENABLED"] is True
    assert settings["AUTOTHROTTLE_START_DELAY"] >= 2.0 and settings["AUTOTHROTTLE_MAX_DELAY"] >= 2.0
    assert settings["AUTOTHROTTLE_TARGET_CONCURRENCY"] == 1.0
    assert (settings["CONCURRENT_REQUESTS"], settings["CONCURRENT_REQUESTS_PER_DOMAIN"],
            settings["CONCURRENT_REQUESTS_PER_IP"], settings["DOWNLOAD_SLOTS"]) == (1, 1, 0, {})
    assert settings["ROBOTSTXT_OBEY"] is True
    assert settings["DOWNLOADER_MIDDLEWARES"]["crawler.middlewares.BackoffRetryMiddleware"] == 550
    slower = spider_settings("me@example.org", True, {"DOWNLOAD_DELAY": 5, "AUTOTHROTTLE_MAX_DELAY": 90})
    assert (slower["DOWNLOAD_DELAY"], slower["AUTOTHROTTLE_MAX_DELAY"]) == (5.0, 90.0)


@pytest.mark.parametrize("name,value", [
    ("DOWNLOAD_SLOTS", {"radiopaedia.org": {"concurrency": 8, "delay": 0}}),
    ("DOWNLOADER_MIDDLEWARES", {"scrapy.downloadermiddlewares.robotstxt.RobotsTxtMiddleware": None}),
    ("ROBOTSTXT_OBEY", False), ("CONCURRENT_REQUESTS_PER_IP", 8), ("EXTENSIONS", {}),
    ("RANDOMIZE_DOWNLOAD_DELAY", True)])
def test_real_site_refuses_settings_that_would_bypass_its_limits(name, value):
    with pytest.raises(BadSetting, match=f"-s {name} cannot be set"):
        spider_settings("me@example.org", True, {name: value})
    spider_settings("me@example.org", True, {"CXRBANK_RADIOPAEDIA_URL": "http://127.0.0.1:9",
                                            name: value})  # a loopback test site takes them


@pytest.mark.parametrize("setting,words", [
    ("DOWNLOAD_DELAY=2s", "DOWNLOAD_DELAY takes a number >= 0"),
    ("CONCURRENT_REQUESTS_PER_IP=8", "cannot be set when crawling the real Radiopaedia"),
    ("CONCURRENT_REQUESTS_PER_DOMAIN=0", "takes a whole number >= 1"),
    ("AUTOTHROTTLE_ENABLED=yes", "takes true or false"),
    ("CXRBANK_RADIOPAEDIA_RECHECK_DAYS=NaN", "takes a number >= 0")])
def test_a_bad_setting_for_the_real_site_is_a_one_line_usage_error(setting, words, monkeypatch,
                                                                   tmp_path):
    monkeypatch.delenv("CXRBANK_RADIOPAEDIA_URL", raising=False)
    result = CliRunner().invoke(
        main, ["crawl", "radiopaedia", "--root", str(tmp_path / "c"), "--accept-terms",
               "-s", setting], env={"CXRBANK_CONTACT": "tests@example.org"})
    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and words in errors[0], result.stderr
    assert "Traceback" not in result.output and not (tmp_path / "c").exists()


def test_a_bad_setting_value_on_a_test_site_is_a_usage_error_too(web, tmp_path):
    build_site(web, count=1, faults=False)
    code, _, result = crawl(web, tmp_path / "c", "-s", "DOWNLOAD_TIMEOUT=-1")
    assert code == 2 and "DOWNLOAD_TIMEOUT takes a number > 0" in result.stderr
    assert site_requests(web) == []


def test_a_ct_slice_gone_for_good_is_left_out_after_three_crawls(web, tmp_path):
    site = build_site(web, count=1, faults=False)
    ct = site.cases[0].studies[1]
    bad = ct.images[2].image_id
    web.add(f"/static/images/{bad}/big.png", Page(b"gone", 404, {"Content-Type": "text/plain"}))
    root = tmp_path / "c"
    for attempt in (1, 2):
        code, out, err = plain_crawl(web, root)
        assert code == 1
        assert out.splitlines()[0].startswith("new cases: 0, updated: 0, incomplete: 1, ")
        assert f"/static/images/{bad}/big.png: 404 ({attempt} of 3 crawls; " in err
        assert not any(r["modality"] == "CT" for r in read_rows(root))
    before = len(web.requests)
    code, out, err = plain_crawl(web, root)
    assert code == 0, err
    assert f"skipped: rID {site.cases[0].rid} study {ct.study_id}: CT volume built without " \
        "1 of 6 slices, gone (HTTP 404 in 3 crawls)" in out.splitlines()
    assert sum(p.startswith("/static/") for p in site_requests(web, before)) == 6
    (row,) = [r for r in read_rows(root) if r["modality"] == "CT"]
    assert "CT volume without 1 of 6 slices (gone at the source)" in row["other_notes"]
    volume = nib.load(root / row["volume"])
    assert volume.shape[2] == 5
    before = len(web.requests)
    code, out, _ = plain_crawl(web, root)
    assert code == 0 and "unchanged: 1" in out
    assert site_requests(web, before) == ["/search?lang=us&q=covid&scope=cases&page=1"]


def test_a_ct_stack_with_many_slices_gone_is_left_out_not_retried_forever(web, tmp_path):
    site = build_site(web, count=1, faults=False)
    ct = site.cases[0].studies[1]
    for image in ct.images[:2]:
        web.add(f"/static/images/{image.image_id}/big.png", Page(b"", 404))
    root = tmp_path / "c"
    assert [plain_crawl(web, root)[0] for _ in range(2)] == [1, 1]
    code, out, _ = plain_crawl(web, root)
    assert code == 0
    assert f"skipped: rID {site.cases[0].rid} study {ct.study_id}: CT stack left out, 2 of 6 " \
        "slices are gone (HTTP 404 in 3 crawls)" in out.splitlines()
    before = len(web.requests)
    code, report, _ = crawl(web, root, "-s", "CXRBANK_RADIOPAEDIA_RECHECK_DAYS=1e-9")
    assert code == 0 and report["errors"] == [] and report["unchanged"] == 1
    assert not any(p.startswith("/static/") for p in site_requests(web, before))
    assert not any(r["modality"] == "CT" for r in read_rows(root))
