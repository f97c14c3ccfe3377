"""`cxrbank crawl radiopaedia`: images that arrive broken, non-chest cases, challenge pages,
permanently broken CT slices and the real site's settings (review findings)."""

from __future__ import annotations

from tests.fixtures.radiopaedia_site import Page, build_site, png
from tests.test_radiopaedia import crawl, read_rows, site_requests

HTML_HICCUP = Page(b"<html><body>Temporarily unavailable</body></html>", 200,
                   {"Content-Type": "text/html"})


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

