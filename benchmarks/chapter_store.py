"""A chapter executed twice through nbval: first with an empty result store (it trains and stores every
task), then with the store it filled (it loads them). Prints both wall times and their ratio.

    python benchmarks/chapter_store.py [--chapter book/03_rich_lazy.md] [--profile quick]

Each run is ``python -m pytest --nbval-lax CHAPTER`` in a fresh process with ``REPALIGN_RESULTS_DIR``
set to the same new temporary directory (and claims written to another), so the second run finds
exactly what the first stored. The wall time includes the start of the kernel and the imports. The
chapter's own cells that do not go through the store (figures, MDS, exercises, explorers) run both
times, so the ratio is the chapter's, not the store's.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(chapter: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", chapter, "-q", "-p", "no:cacheprovider"],
                   cwd=ROOT, env=env, check=True)
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--chapter", default="book/03_rich_lazy.md")
    p.add_argument("--profile", default="quick", choices=("quick", "paper"))
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="repalign-chapter-store-"))
    env = {**os.environ, "BOOK_PROFILE": args.profile, "REPALIGN_RESULTS_DIR": str(tmp / "store"),
           "REPALIGN_CLAIMS_DIR": str(tmp / "claims")}
    empty = _run(args.chapter, env)
    stored = sum(1 for _ in (tmp / "store").rglob("*.npz"))
    loaded = _run(args.chapter, env)
    print(f"{args.chapter} ({args.profile} profile), store {tmp / 'store'} ({stored} results):")
    print(f"  empty store (trains and stores): {empty:7.1f} s")
    print(f"  filled store (loads):            {loaded:7.1f} s   ratio {empty / loaded:.2f}")


if __name__ == "__main__":
    main()
