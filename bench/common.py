"""Shared helpers of the benchmarks: machine facts, load average, RSS, timers, tables and the
deterministic synthetic data (resources, chunk texts, questions) built from the bundled corpus.

Every generator is seeded, so two runs (or two scripts) see the same data.
"""

from __future__ import annotations

import json
import os
import platform
import random
import re
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from corpus.bundled import bundled_corpus_dir  # noqa: E402
from corpus.loaders import load_corpus  # noqa: E402
from corpus.models import Chunk, Resource  # noqa: E402

EVAL_QUESTIONS = ROOT / "tests" / "data" / "eval_questions.jsonl"
DEFAULT_WORK = Path("/tmp/ess-bench")
THEMES = ("ruralité", "coopération", "financement", "politique de la ville", "emploi",
          "alimentation", "mobilité", "tiers-lieux")  # fmt: skip
KINDS = ("Guide", "Fiche technique", "Webinaire", "Fiche initiative")
_SENTENCE = re.compile(r"(?<=[.!?…])\s+(?=[«A-ZÀ-Ö0-9])")


# ---------------------------------------------------------------------- machine and process


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (or platform's guess elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> str:
    """The 1/5/15-minute load averages, formatted."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def rss_mb() -> float:
    """Resident memory of this process in MB."""
    import psutil

    return psutil.Process().memory_info().rss / 1e6


def machine_line() -> str:
    """One line with CPU model, core count, RAM, Python, torch threads and the load average."""
    import psutil

    try:
        import torch

        threads = f", torch threads {torch.get_num_threads()}"
    except ImportError:
        threads = ""
    ram = psutil.virtual_memory().total / 2**30
    return (f"machine: {cpu_model()}, {os.cpu_count()} cores, {ram:.0f} GiB RAM, "
            f"Python {platform.python_version()}{threads}; load average {load_average()}")  # fmt: skip


def dir_size_mb(path: Path) -> float:
    """Total size of the files under `path`, in MB."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file()) / 1e6


@contextmanager
def timer(out: list[float]) -> Iterator[None]:
    """Append the elapsed seconds of the `with` block to `out`."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        out.append(time.perf_counter() - t0)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0–100) by linear interpolation; 0.0 for no values."""
    if not values:
        return 0.0
    data = sorted(values)
    pos = (len(data) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def ms_stats(seconds: Sequence[float]) -> tuple[float, float, float]:
    """(p50, p95, mean) in milliseconds."""
    return (percentile(seconds, 50) * 1e3, percentile(seconds, 95) * 1e3,
            statistics.fmean(seconds) * 1e3 if seconds else 0.0)  # fmt: skip


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print a Markdown table (so results paste into RESULTS.md as they are)."""
    cells = [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(headers)]  # fmt: skip
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells:
        print("| " + " | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) + " |")
    sys.stdout.flush()


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def setup_offline() -> None:
    """No model hub: every model comes from the local rebuild."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


# ---------------------------------------------------------------------- synthetic data


def corpus_paragraphs() -> list[str]:
    """Paragraphs (> 80 characters) of the bundled corpus."""
    out: list[str] = []
    for resource in load_corpus(bundled_corpus_dir()).resources:
        out.extend(p.strip() for p in resource.body.split("\n\n") if len(p.strip()) > 80)
    return out


def corpus_sentences() -> list[str]:
    """Sentences (> 30 characters) of the bundled corpus."""
    out: list[str] = []
    for paragraph in corpus_paragraphs():
        out.extend(s.strip() for s in _SENTENCE.split(" ".join(paragraph.split())) if len(s) > 30)
    return out


def generate_resources(count: int, *, seed: int = 20240611, chars: int = 1500) -> list[Resource]:
    """`count` resources of about `chars` characters: bundled paragraphs recombined under new
    titles, kinds, themes and dates (in memory, with their content hash)."""
    rng = random.Random(seed)
    paragraphs = corpus_paragraphs()
    out: list[Resource] = []
    for i in range(count):
        parts: list[str] = []
        while sum(len(p) + 2 for p in parts) < chars:
            parts.append(rng.choice(paragraphs))
        theme = THEMES[i % len(THEMES)]
        out.append(Resource(
            id=f"bench-{i:05d}",
            title=f"Ressource n°{i} : l'ESS et la {theme} dans les territoires",
            body="\n\n".join(parts),
            type="Ressources RTES",
            kind=KINDS[i % len(KINDS)],
            summary=parts[0][:300],
            themes=(theme,),
            date=f"{2015 + i % 10}-{1 + i % 12:02d}",
        ).with_hash())  # fmt: skip
    return out


def edit_resource(resource: Resource) -> Resource:
    """The resource with one paragraph appended (what a staff member editing a sheet does)."""
    from dataclasses import replace

    body = (resource.body + "\n\nMise à jour : la communauté de communes a voté un nouveau "
            "budget participatif dédié aux tiers-lieux et aux recycleries.")  # fmt: skip
    return replace(resource, body=body).with_hash()


def synthetic_chunks(
    count: int, *, per_resource: int = 8, seed: int = 7, chars: int = 750
) -> tuple[list[Chunk], dict[str, Resource]]:
    """`count` French-like chunks (bundled sentences recombined, about `chars` characters),
    `per_resource` per resource, with their resources; no embedding involved."""
    rng = random.Random(seed)
    sentences = corpus_sentences()
    n_sent = len(sentences)
    resources: dict[str, Resource] = {}
    chunks: list[Chunk] = []
    rid = ""
    title = ""
    for i in range(count):
        if i % per_resource == 0:
            r = i // per_resource
            theme = THEMES[r % len(THEMES)]
            rid = f"syn-{r:07d}"
            title = f"{sentences[rng.randrange(n_sent)][:60]} ({theme})"
            resources[rid] = Resource(
                id=rid, title=title, body="", kind=KINDS[r % len(KINDS)],
                summary=sentences[rng.randrange(n_sent)][:200], themes=(theme,),
                date=f"{2012 + r % 13}-{1 + r % 12:02d}",
            )  # fmt: skip
        parts: list[str] = []
        size = 0
        while size < chars:
            s = sentences[rng.randrange(n_sent)]
            parts.append(s)
            size += len(s) + 1
        text = " ".join(parts)[: chars + 200]
        pos = i % per_resource
        chunks.append(Chunk(resource_id=rid, position=pos, start=pos * chars,
                            end=pos * chars + len(text), text=text, title=title))  # fmt: skip
    return chunks, resources


def eval_questions() -> list[str]:
    """The in-scope and out-of-scope questions of the evaluation set."""
    lines = EVAL_QUESTIONS.read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["question"] for line in lines if line.strip()]


_PREFIXES = ("Bonjour, ", "Pouvez-vous m'indiquer : ", "Question d'une élue : ", "")
_SUFFIXES = (
    " Merci d'avance.",
    " (commune rurale)",
    " C'est urgent pour le conseil municipal.",
    "",
)


def questions(count: int = 220, *, seed: int = 11) -> list[str]:
    """`count` French questions: the evaluation set, then variations of it (a polite prefix,
    a suffix, or a shortened form), deterministic."""
    rng = random.Random(seed)
    base = eval_questions()
    out = list(base[:count])
    while len(out) < count:
        q = rng.choice(base)
        variant = rng.randrange(3)
        if variant == 0:
            q = rng.choice(_PREFIXES) + q[0].lower() + q[1:]
        elif variant == 1:
            q = q.rstrip() + rng.choice(_SUFFIXES)
        else:
            words = q.split()
            q = " ".join(words[: max(4, len(words) * 2 // 3)]) + " ?"
        out.append(q)
    return out
