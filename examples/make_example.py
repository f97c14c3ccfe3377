"""Make examples/case-report.pdf: a small synthetic COVID-19 case report (CC0, made by cxrbank)."""

from __future__ import annotations

import sys
from pathlib import Path

from cxrbank.samples import case_report_pdf


def main() -> int:
    target = Path(__file__).resolve().parent / "case-report.pdf"
    target.write_bytes(case_report_pdf())
    print(f"wrote {target} ({target.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
