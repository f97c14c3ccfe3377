"""`cxrbank crawl radiopaedia`: images that arrive broken, non-chest cases, challenge pages,
permanently broken CT slices and the real site's settings (review findings)."""

from __future__ import annotations

from click.testing import CliRunner

from crawler.radiopaedia import Case, Study, chest_study
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
        f"{web.url(f'/static/images/{image.image_id}/big.png')}: HTTP 200, an HTML page; "
        "retried next crawl"]
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
    assert report["skipped"] == [
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
