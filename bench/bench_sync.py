"""Sync time for N local pages: the first sync, then a re-run with nothing changed.

    python bench/bench_sync.py [--pages 200] [--delay 0] [--concurrency 2] [--no-lastmod]

A local server (the CMS-like pages of the sync tests) serves N pages and a sitemap; the
re-run skips pages by their sitemap `lastmod` (`--no-lastmod`: by 304 answers to conditional
requests instead). `--delay` is the politeness delay between two requests (default 0 here to
measure the work; the product's default is 1 s, i.e. ≥ N seconds for a first sync).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import load_average, machine_line, print_table  # noqa: E402
from corpus.site import SyncSettings, sync_site  # noqa: E402
from tests.corpus.site_server import Site, cms_page, serve_site  # noqa: E402


def make_site(pages: int, lastmod: bool) -> Site:
    site = Site()
    for i in range(pages):
        path = f"/ressources/fiche-{i:04d}"
        site.pages[path] = cms_page(
            f"Fiche ressource n° {i}",
            [
                f"La fiche {i} présente une initiative d'économie sociale et solidaire portée par "
                f"une commune et ses partenaires, avec {10 + i} emplois créés.",
                "Elle détaille le montage, le financement et les contacts utiles.",
            ],
        )
        site.lastmod[path] = "2024-01-05" if lastmod else None
    return site


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--no-lastmod", action="store_true")
    args = parser.parse_args()
    print(machine_line(), flush=True)
    site = make_site(args.pages, lastmod=not args.no_lastmod)
    rows = []
    with tempfile.TemporaryDirectory() as folder, serve_site(site) as base:
        settings = SyncSettings(
            url=f"{base}/sitemap.xml", delay=args.delay, concurrency=args.concurrency
        )
        for label in ("first sync", "re-run, nothing changed"):
            before = sum(site.requests.values())
            started = time.perf_counter()
            report = sync_site(settings, Path(folder))
            seconds = time.perf_counter() - started
            requests = sum(site.requests.values()) - before
            rows.append((label, seconds, requests, report.summary_line()))
    print(f"{args.pages} pages, delay {args.delay} s, concurrency {args.concurrency}, "
          f"{'304 answers' if args.no_lastmod else 'sitemap lastmod'} for unchanged pages; "
          f"load average {load_average()}")  # fmt: skip
    print_table(["run", "seconds", "HTTP requests", "summary"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
