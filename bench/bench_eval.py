"""Answer-level quality on both evaluation bases, per method and per style (`make eval`).

    python bench/bench_eval.py [--split sealed|tuning|all] [--ablation] [--data-dir DIR]

Builds (incrementally) the bundled base and the grown base (`tests/data/grown_base/`,
169 resources) under `--data-dir`, then runs every question of `tests/data/sets/` of the split
through the production path (`ess-assistant eval`), lexical, dense and hybrid side by side.
`--ablation` adds the hybrid figures with the thesaurus switched off (lexical index rebuilt in
memory), for the README's ablation table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from calibrate_default import assistant_for  # noqa: E402

from assistant.eval_data import load_questions, select  # noqa: E402
from assistant.evaluation import Metrics, compute_metrics, evaluate  # noqa: E402
from assistant.retrieval import METHODS  # noqa: E402

SETS = ROOT / "tests" / "data" / "sets"
BASES = {"bundled": ROOT / "corpus" / "resources", "grown": ROOT / "tests" / "data" / "grown_base"}
COLUMNS = (
    ("cité≥1", "cited_useful"),
    ("cité=2", "cited_answering"),
    ("MRR", "mrr"),
    ("R@3", "recall_at_3"),
    ("rép. abst.", "answerable_abstained"),
    ("rép. faible", "answerable_low_confidence"),
    ("rien abst.", "nothing_abstained"),
    ("lointain", "far_abstained"),
    ("proche", "near_abstained"),
    ("faits", "fact_rate"),
)


def _row(label: str, m: Metrics) -> str:
    cells = []
    for _, attr in COLUMNS:
        value = getattr(m, attr)
        cells.append("—" if value is None else f"{value:.3f}")
    return f"| {label} | " + " | ".join(cells) + " |"


def _header(first: str) -> list[str]:
    return [
        f"| {first} | " + " | ".join(c for c, _ in COLUMNS) + " |",
        "|" + " --- |" * (len(COLUMNS) + 1),
    ]


def without_thesaurus(assistant: object) -> None:
    """Switch the thesaurus off and rebuild the lexical index in memory."""
    import embeddings.french as french
    from embeddings.lexical import LexicalIndex

    french.concept_phrases = lambda _joined: []  # type: ignore[assignment]
    index = assistant.index()  # type: ignore[attr-defined]
    index.lexical = LexicalIndex.build(index.chunks, resources=index.resources)
    index._terms.clear()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", choices=["sealed", "tuning", "all"], default="sealed")
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".eval-data")
    parser.add_argument("--ablation", action="store_true")
    args = parser.parse_args()

    assistants = {
        name: assistant_for(corpus, args.data_dir, name) for name, corpus in BASES.items()
    }
    questions = {
        name: select(load_questions(SETS / f"{name}.jsonl"), split=args.split) for name in BASES
    }
    results = {name: evaluate(assistants[name], questions[name], METHODS) for name in BASES}

    print(f"## {args.split} part, per method\n")
    for line in _header("base / method"):
        print(line)
    for name in BASES:
        for method in METHODS:
            print(_row(f"{name} / {method}", compute_metrics(results[name][method])))
    for name in BASES:
        hybrid = results[name]["hybrid"]
        print(f"\n## {name}, hybrid, per style ({len(hybrid)} questions)\n")
        for line in _header("style (n)"):
            print(line)
        for style in sorted({r.question.style for r in hybrid}):
            rs = [r for r in hybrid if r.question.style == style]
            print(_row(f"{style} ({len(rs)})", compute_metrics(rs)))
    if args.ablation:
        print("\n## ablation: hybrid without the thesaurus\n")
        for line in _header("base"):
            print(line)
        for name in BASES:
            without_thesaurus(assistants[name])
            rs = evaluate(assistants[name], questions[name], ["hybrid"])["hybrid"]
            print(_row(f"{name}, no thesaurus", compute_metrics(rs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
