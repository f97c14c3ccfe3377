"""Time `cxrbank --help` (start-up cost) over repeated runs: median and worst, in seconds."""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time


def main(runs: int = 15) -> None:
    exe = shutil.which("cxrbank")
    command = [exe, "--help"] if exe else [sys.executable, "-m", "cxrbank.cli", "--help"]
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        timings.append(time.perf_counter() - start)
    print(f"cxrbank --help over {runs} runs: median {statistics.median(timings):.3f} s,"
          f" worst {max(timings):.3f} s (target < 0.5 s)")


if __name__ == "__main__":
    main()
