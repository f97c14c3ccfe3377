"""Radiopaedia crawl cost on a 200-case fake site: first crawl, unchanged re-crawl, small edit.

    python bench/crawl.py [--cases 200] [--per-page 20]

Prints, for each crawl: requests (robots.txt, listing pages, case pages, stacks, images), wall
time, and for re-crawls the requests per case beyond the listing pages (target 0 when nothing
changed) and the images downloaded (target 0).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from click.testing import CliRunner  # noqa: E402

from cxrbank.cli import main as cli  # noqa: E402
from cxrbank.localweb import LocalWeb as TestWeb  # noqa: E402
from tests.fixtures.radiopaedia_site import build_site  # noqa: E402


def kind_of(path: str) -> str:
    for prefix, kind in (("/robots.txt", "robots"), ("/search", "listing"), ("/cases/", "case"),
                         ("/studies/", "stacks"), ("/static/", "image")):
        if path.startswith(prefix):
            return kind
    return "other"


def crawl(web: TestWeb, root: Path, label: str, cases: int) -> dict:
    before = len(web.requests)
    started = time.perf_counter()
    result = CliRunner().invoke(
        cli, ["crawl", "radiopaedia", "--root", str(root), "--json", "--max-cases", str(cases)],
        env={"CXRBANK_RADIOPAEDIA_URL": web.base, "CXRBANK_CONTACT": "bench@example.org"},
    )
    seconds = time.perf_counter() - started
    report = json.loads(result.stdout)
    kinds = Counter(kind_of(r.path) for r in web.requests[before:])
    beyond = sum(n for k, n in kinds.items() if k not in ("robots", "listing"))
    print(
        f"{label:<22} exit {result.exit_code}  {seconds:6.2f} s  requests {sum(kinds.values()):5d}"
        f"  (listing {kinds['listing']}, case {kinds['case']}, stacks {kinds['stacks']},"
        f" images {kinds['image']}, robots {kinds['robots']})"
        f"  beyond listing per case {beyond / cases:.3f}"
        f"  new {len(report['new'])} updated {len(report['updated'])}"
        f" unchanged {report['unchanged']} images added {report['images_added']}"
    )
    return {"kinds": kinds, "report": report, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--per-page", type=int, default=20)
    args = parser.parse_args()
    web = TestWeb()
    try:
        site = build_site(web, count=args.cases, faults=False, per_page=args.per_page)
        print(f"fake Radiopaedia: {args.cases} cases, {args.per_page} per listing page, "
              f"{sum(len(s.images) for c in site.cases for s in c.studies)} image files "
              "(local test web, loopback; delays off; other work shared the CPU)")
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            crawl(web, root, "first crawl", args.cases)
            crawl(web, root, "re-crawl, unchanged", args.cases)
            for case in site.cases[:5]:
                site.edit(case, title=case.title + " (edited)")
            crawl(web, root, "re-crawl, 5 edited", args.cases)
    finally:
        web.close()


if __name__ == "__main__":
    main()
