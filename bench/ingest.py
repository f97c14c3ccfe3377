"""Benchmark `ingest`: papers/min through the whole DOI path on a local server, politeness off.

Prints: papers per minute (resolve + download + extract + write), the share of crawl time spent
outside extraction, the crawl process's peak memory, and the CPU seconds one 3-figure paper
takes locally (network excluded). Run: `python bench/ingest.py [--papers N]`.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from crawler.local import ingest_file  # noqa: E402
from crawler.run import run_spider  # noqa: E402
from crawler.settings import crawl_settings  # noqa: E402
from crawler.spiders.papers import PapersSpider  # noqa: E402
from cxrbank import fakeweb as sw  # noqa: E402
from cxrbank.collection import Collection  # noqa: E402
from cxrbank.localweb import LocalWeb  # noqa: E402


def three_figure_pdf(seed: int) -> bytes:
    """A two-page case report with three captioned figures (radiograph, CT, radiograph)."""
    import pymupdf

    example = sw.example_module()
    images = [example.radiograph_like(seed=seed), example.ct_like(seed=seed + 1),
              example.radiograph_like(seed=seed + 2)]
    captions = ["Figure 1. PA chest radiograph on admission showing bilateral opacities.",
                "Figure 2. Axial CT on day 3 showing ground-glass opacities.",
                "Figure 3. AP chest radiograph on day 10 showing improvement."]
    doc = pymupdf.open()
    page = doc.new_page(width=595, height=842)
    page.insert_textbox(pymupdf.Rect(50, 40, 545, 120), example.CASE, fontsize=9.5)
    for i, (data, caption) in enumerate(zip(images, captions, strict=True)):
        if i == 2:
            page = doc.new_page(width=595, height=842)
        top = 130 + (i % 2) * 340
        page.insert_image(pymupdf.Rect(120, top, 470, top + 280), stream=data)
        page.insert_textbox(pymupdf.Rect(50, top + 285, 545, top + 320), caption, fontsize=9)
    data = doc.tobytes(garbage=4, deflate=True)
    doc.close()
    return data


def realistic_pdf(seed: int) -> bytes:
    """A multi-page case report from tests/fixtures/casereport.py (7+ figures, panels, logo)."""
    from tests.fixtures.casereport import LAYOUTS, make_case_report_pdf

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "case.pdf"
        make_case_report_pdf(path, layout=LAYOUTS[seed % len(LAYOUTS)], seed=seed)
        return path.read_bytes()


def serve_papers(web: LocalWeb, count: int, realistic: bool) -> list[str]:
    services = sw.ScholarlyWeb(web)
    dois = []
    make = realistic_pdf if realistic else three_figure_pdf
    for i in range(count):
        doi = f"10.5555/bench.{i}"
        services.add_europepmc(doi)
        services.add_unpaywall(doi, sw.unpaywall(doi, [(web.url(f"/files/{i}.pdf"), "cc-by")]))
        services.add_crossref(doi, sw.crossref(doi, "https://creativecommons.org/licenses/by/4.0"))
        services.add_file(f"/files/{i}.pdf", make(100 + 10 * i))
        dois.append(doi)
    return dois


def bench_crawl(count: int, realistic: bool) -> None:
    web = LocalWeb()
    try:
        dois = serve_papers(web, count, realistic)
        with tempfile.TemporaryDirectory() as root:
            overrides = {**sw.ScholarlyWeb(web).overrides, "CXRBANK_ROOT": root,
                         "CONCURRENT_REQUESTS_PER_DOMAIN": 16, "CXRBANK_INGEST_CONCURRENCY": 4,
                         "CXRBANK_OBEY_RATE_HEADERS": False}
            start = time.perf_counter()
            summary = run_spider(PapersSpider, crawl_settings("bench@example.org", overrides),
                                 dois=dois)
            wall = time.perf_counter() - start
            rows = len(Collection.open(root).read_rows())
    finally:
        web.close()
    stats = summary["stats"]
    extract = float(stats.get("cxrbank/extract_wall_s", 0.0))
    store = float(stats.get("cxrbank/store_wall_s", 0.0))
    added = sum(o["added"] for o in summary["outcomes"])
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    kind = "casereport.py multi-page" if realistic else "3-figure one/two-page"
    print(f"papers: {count} ({kind}), images added: {added}, rows: {rows}")
    print(f"whole path: {wall:.2f} s wall -> {count / wall * 60:.0f} papers/min "
          f"(child start and reactor included)")
    print(f"extraction: {extract:.2f} s wall; outside extraction: {1 - extract / wall:.0%} "
          f"of the crawl")
    print(f"writing rows and images (pipeline): {store:.2f} s wall")
    print(f"crawl process peak RSS: {peak_mb:.0f} MB")


def bench_local_paper() -> None:
    papers = [("3-figure paper", three_figure_pdf(seed=7)),
              ("casereport.py multi-page paper", realistic_pdf(seed=3))]
    with tempfile.TemporaryDirectory() as tmp:
        warm = Path(tmp) / "warm.pdf"
        warm.write_bytes(three_figure_pdf(seed=1))
        ingest_file(Path(tmp) / "warm", warm, "pdf", None, False)  # imports and caches
        for i, (name, data) in enumerate(papers):
            path = Path(tmp) / f"{i}.pdf"
            path.write_bytes(data)
            start_cpu, start = time.process_time(), time.perf_counter()
            outcome = ingest_file(Path(tmp) / "coll", path, "pdf", f"10.5555/local.{i}", False)
            cpu, wall = time.process_time() - start_cpu, time.perf_counter() - start
            print(f"{name}, local: {cpu:.2f} s CPU, {wall:.2f} s wall, "
                  f"{outcome.added} images added (target for 3 figures: < 2 s CPU)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=int, default=20)
    args = parser.parse_args()
    bench_local_paper()
    bench_crawl(args.papers, realistic=False)
    bench_crawl(args.papers, realistic=True)
    print("(measured on a shared machine with other work running)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
