"""Benchmark: full build vs incremental rebuild after editing one resource.

Generates a deterministic base of French resources (paragraphs of the bundled corpus
recombined under new titles, about 1 500 characters each), builds the index with the real
model, edits one resource and rebuilds; both builds are measured side by side in one run.

    python bench/bench_incremental.py             # 1 000 resources, default model
    python bench/bench_incremental.py --quick     # 100 resources
    python bench/bench_incremental.py --model /path/or/hub-name --n 500
"""

from __future__ import annotations

import argparse
import logging
import random
import shutil
import sys
import time
from pathlib import Path

from assistant.settings import DEFAULT_MODEL, Settings
from corpus.bundled import bundled_corpus_dir
from corpus.chunking import ChunkingSettings
from corpus.loaders import load_corpus
from corpus.markdown_io import resource_to_markdown
from corpus.models import Resource
from embeddings.base import Embedder
from embeddings.builder import BuildReport, build_index
from embeddings.loading import load_embedder

TARGET_CHARS = 1500
THEMES = (
    "ruralité",
    "coopération",
    "financement",
    "politique de la ville",
    "emploi",
    "alimentation",
)
KINDS = ("Guide", "Fiche technique", "Webinaire", "Fiche initiative")


def _paragraphs() -> list[str]:
    paragraphs: list[str] = []
    for resource in load_corpus(bundled_corpus_dir()).resources:
        paragraphs.extend(p.strip() for p in resource.body.split("\n\n") if len(p.strip()) > 80)
    return paragraphs


def generate_corpus(folder: Path, count: int, *, seed: int = 20240611) -> None:
    """Write `count` deterministic Markdown resources of about `TARGET_CHARS` into `folder`."""
    rng = random.Random(seed)
    paragraphs = _paragraphs()
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        parts: list[str] = []
        while sum(len(p) for p in parts) < TARGET_CHARS:
            parts.append(rng.choice(paragraphs))
        body = "\n\n".join(parts)[: TARGET_CHARS + 400]
        theme = THEMES[i % len(THEMES)]
        resource = Resource(
            id=f"bench-{i:04d}",
            title=f"Ressource n°{i} : l'ESS et la {theme} dans les territoires",
            body=body,
            type="Ressources RTES",
            kind=KINDS[i % len(KINDS)],
            summary=parts[0][:300],
            themes=(theme,),
            date=f"{2015 + i % 10}-{1 + i % 12:02d}",
        )
        (folder / f"bench-{i:04d}.md").write_text(resource_to_markdown(resource), encoding="utf-8")


def edit_one(folder: Path) -> None:
    """Append a paragraph to the first resource (what a staff member editing a sheet does)."""
    path = sorted(folder.glob("*.md"))[0]
    text = path.read_text(encoding="utf-8")
    path.write_text(
        text + "\n\nMise à jour : la communauté de communes a voté un nouveau budget "
        "participatif dédié aux tiers-lieux et aux recycleries.\n",
        encoding="utf-8",
    )


def _build(
    folder: Path, index_dir: Path, embedder: Embedder, chunking: ChunkingSettings
) -> tuple[BuildReport, float]:
    started = time.perf_counter()
    loaded = load_corpus(folder)
    report = build_index(
        loaded.resources,
        embedder=embedder,
        index_dir=index_dir,
        chunking=chunking,
        errors=loaded.errors,
    )
    return report, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help="modèle d'embedding (nom ou chemin)")
    parser.add_argument("--n", type=int, default=1000, help="nombre de ressources")
    parser.add_argument("--quick", action="store_true", help="100 ressources")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/ess-bench-incremental"))
    parser.add_argument(
        "--cache-dir", type=Path, default=None, help="cache du modèle (défaut : <work-dir>/cache)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    count = 100 if args.quick else args.n

    work: Path = args.work_dir
    corpus_dir, index_dir = work / "corpus", work / "index"
    shutil.rmtree(corpus_dir, ignore_errors=True)
    shutil.rmtree(index_dir, ignore_errors=True)
    generate_corpus(corpus_dir, count)

    settings = Settings(data_dir=work)
    chunking = ChunkingSettings(size=settings.chunk_size, overlap=settings.chunk_overlap)
    t0 = time.perf_counter()
    embedder = load_embedder(args.model, cache_dir=args.cache_dir or work / "cache")
    embedder.embed_documents(["échauffement du modèle"])
    load_seconds = time.perf_counter() - t0

    full, full_s = _build(corpus_dir, index_dir, embedder, chunking)
    edit_one(corpus_dir)
    incr, incr_s = _build(corpus_dir, index_dir, embedder, chunking)
    noop, noop_s = _build(corpus_dir, index_dir, embedder, chunking)

    print(f"modèle : {embedder.name} (chargement {load_seconds:.1f} s) ; dossier : {work}")
    print(f"{'build':<28}{'ressources':>11}{'passages':>10}{'vectorisés':>12}{'temps (s)':>11}")
    for label, report, seconds in (
        ("complet", full, full_s),
        ("incrémental (1 modifiée)", incr, incr_s),
        ("incrémental (rien)", noop, noop_s),
    ):
        resources = len(report.added) + len(report.changed) + len(report.unchanged)
        print(
            f"{label:<28}{resources:>11}{report.total_chunks:>10}"
            f"{report.chunks_embedded:>12}{seconds:>11.2f}"
        )
        print(f"{'':<28}{report.summary_line()}")
    print(f"ratio temps complet / incrémental : {full_s / incr_s:.1f}×")
    if incr.changed != ("bench-0000",) or incr.added or incr.removed:
        print("ATTENTION : le build incrémental n'a pas vu 1 modification", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
