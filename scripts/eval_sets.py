"""Make the evaluation sets of `tests/data/sets/` from the writers' questions and the judges'
grades (see tests/data/README.md for the whole procedure).

    python scripts/eval_sets.py pool QUESTIONS.jsonl --corpus DIR --index DIR --out POOL.jsonl
        candidate resources for the judges (every resource of a base of ≤ 20); per question,
        the union of the top 5 of each
        method (lexical, dense, hybrid) and of the writer's own `expected`, in id order (the
        judge sees no rank and does not know which the writer named);
    python scripts/eval_sets.py merge --base bundled|grown --out SET.jsonl WRITER.jsonl …
        the writers' questions with the judges' grades (tests/data/judgments/*.jsonl), the
        writer's intent for out-of-scope questions, and the seeded sealed split.

Run with the project's environment (`.venv/bin/python scripts/eval_sets.py …`).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from assistant.eval_data import EvalQuestion, assign_splits, load_questions, write_questions  # noqa: E402

SEED = "ess-eval-2026-11"  # fixed once: changing it reshuffles the sealed part
SMALL_BASE = 20  # resources; up to this size every (question, resource) pair is judged
JUDGMENTS = REPO / "tests" / "data" / "judgments"


def cmd_pool(args: argparse.Namespace) -> int:
    from assistant.evaluation import pool
    from assistant.service import Assistant
    from assistant.settings import Settings

    assistant = Assistant(Settings.from_env(corpus_dir=args.corpus, index_dir=args.index))
    assistant.ensure_index()
    known = set(assistant.index().resources)
    questions = load_questions(args.questions)
    pools = pool(assistant, questions, depth=args.depth)
    with args.out.open("w", encoding="utf-8") as f:
        for q in questions:
            ids = set(pools[q.id]) | {rid for rid in q.relevant if rid in known}
            if len(known) <= SMALL_BASE:
                ids = known  # a small base is judged whole: no pooling bias at all
            row = {
                "id": q.id,
                "question": q.question,
                "history": list(q.history),
                "candidates": sorted(ids),
            }
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{len(questions)} questions, {sum(len(p) for p in pools.values())} paires → {args.out}")
    return 0


def _judgments() -> dict[str, dict[str, int]]:
    grades: dict[str, dict[str, int]] = {}
    for path in sorted(JUDGMENTS.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                grades.setdefault(row["id"], {}).update(
                    {rid: int(g) for rid, g in row["grades"].items()}
                )
    return grades


def cmd_merge(args: argparse.Namespace) -> int:
    grades = _judgments()
    merged: list[EvalQuestion] = []
    missing = []
    for path in args.writers:
        writer = path.stem.removeprefix("writer_")
        for q in load_questions(path):
            judged = grades.get(q.id)
            if judged is None:
                missing.append(q.id)
                continue
            oos = q.out_of_scope or {"oos_near": "near", "oos_far": "far"}.get(q.style, "")
            merged.append(
                EvalQuestion(
                    id=q.id,
                    question=q.question,
                    style=q.style,
                    relevant={rid: g for rid, g in sorted(judged.items()) if g > 0},
                    out_of_scope=oos,
                    expect=q.expect,
                    history=q.history,
                    base=args.base,
                    writer=writer,
                )
            )
    if missing:
        print(
            f"{len(missing)} questions sans jugement : {', '.join(missing[:10])}…", file=sys.stderr
        )
        return 1
    if args.training:  # fitting data only: never sealed
        merged = [replace(q, split="tuning") for q in merged]
    else:
        merged = assign_splits(merged, seed=SEED)
    write_questions(args.out, merged)
    sealed = sum(q.split == "sealed" for q in merged)
    print(f"{len(merged)} questions ({sealed} scellées) → {args.out}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pool")
    p.add_argument("questions", type=Path)
    p.add_argument("--corpus", type=Path, required=True)
    p.add_argument("--index", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--depth", type=int, default=5)
    m = sub.add_parser("merge")
    m.add_argument("writers", type=Path, nargs="+")
    m.add_argument("--base", choices=["bundled", "grown"], required=True)
    m.add_argument("--out", type=Path, required=True)
    m.add_argument(
        "--training", action="store_true", help="training questions: all in the tuning part"
    )
    args = parser.parse_args()
    return {"pool": cmd_pool, "merge": cmd_merge}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
