"""Evaluation questions: the JSON Lines format, loading, and the sealed split.

One object per line::

    {"id": "c012", "question": "…", "style": "fact",
     "relevant": {"resource-id": 2, "other-id": 1},   # judged grades, 0 omitted
     "out_of_scope": null | "near" | "far",            # the writer's intent
     "expect": "170" | null,                           # a string a right answer contains
     "history": ["previous question", …],              # follow-ups
     "base": "bundled" | "grown", "split": "tuning" | "sealed", "writer": "c"}

The format of the first sets (`expected`: ids or title fragments, all grade 2;
`out_of_scope`: bool; `category`; `fact`) is read too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from corpus.errors import ConfigurationError

SPLITS = ("tuning", "sealed")
OUT_OF_SCOPE = ("near", "far")


@dataclass(frozen=True)
class EvalQuestion:
    id: str
    question: str
    style: str = ""
    relevant: Mapping[str, int] = field(default_factory=dict)
    out_of_scope: str = ""  # "", "near", "far" ("oos" when the old format does not say)
    expect: str | None = None
    history: tuple[str, ...] = ()
    base: str = ""
    split: str = ""
    writer: str = ""

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "question": self.question,
            "style": self.style,
            "relevant": dict(self.relevant),
            "out_of_scope": self.out_of_scope or None,
            "expect": self.expect,
            "history": list(self.history),
            "base": self.base,
            "split": self.split,
            "writer": self.writer,
        }


def question_from_json(d: Mapping[str, object], default_id: str) -> EvalQuestion:
    """One question from a parsed line (new or old format); raises ValueError/TypeError."""
    question = d["question"]
    if not isinstance(question, str) or not question.strip():
        raise ValueError("«question» doit être un texte non vide")
    relevant: dict[str, int] = {}
    raw_relevant = d.get("relevant")
    if raw_relevant is not None:
        if not isinstance(raw_relevant, dict):
            raise TypeError("«relevant» doit être un objet {id: note}")
        for rid, grade in raw_relevant.items():
            if grade not in (0, 1, 2):
                raise ValueError(f"note {grade!r} pour {rid} : attendu 0, 1 ou 2")
            if grade:
                relevant[str(rid)] = int(grade)
    else:
        expected = d.get("expected") or []
        if not isinstance(expected, list | tuple):
            raise TypeError("«expected» doit être une liste")
        for item in expected:
            relevant[str(item)] = 2
    oos = d.get("out_of_scope")
    if oos is True:
        oos = "oos"
    elif oos in (False, None):
        oos = ""
    elif oos not in OUT_OF_SCOPE:
        raise ValueError(f"«out_of_scope» {oos!r} : attendu near, far, true, false ou null")
    history = d.get("history") or ()
    if not isinstance(history, list | tuple) or not all(isinstance(h, str) for h in history):
        raise TypeError("«history» doit être une liste de textes")
    expect = d.get("expect", d.get("fact"))
    split = str(d.get("split") or "")
    if split and split not in SPLITS:
        raise ValueError(f"«split» {split!r} : attendu tuning ou sealed")
    return EvalQuestion(
        id=str(d.get("id") or default_id),
        question=question,
        style=str(d.get("style") or d.get("category") or ""),
        relevant=relevant,
        out_of_scope=str(oos),
        expect=str(expect) if expect else None,
        history=tuple(history),
        base=str(d.get("base") or ""),
        split=split,
        writer=str(d.get("writer") or ""),
    )


def load_questions(path: Path) -> list[EvalQuestion]:
    """Read an evaluation JSONL file; a malformed line is an error naming its number."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"impossible de lire {path} : {exc}") from exc
    out: list[EvalQuestion] = []
    seen: set[str] = set()
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            if not isinstance(d, dict):
                raise TypeError("la ligne doit être un objet JSON")
            q = question_from_json(d, f"l{no}")
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigurationError(f"{path}, ligne {no} : question invalide ({exc})") from exc
        if q.id in seen:
            raise ConfigurationError(f"{path}, ligne {no} : identifiant répété « {q.id} »")
        seen.add(q.id)
        out.append(q)
    return out


def write_questions(path: Path, questions: Iterable[EvalQuestion]) -> None:
    text = "".join(json.dumps(q.to_json(), ensure_ascii=False) + "\n" for q in questions)
    Path(path).write_text(text, encoding="utf-8")


def assign_splits(
    questions: Sequence[EvalQuestion], *, seed: str, sealed_share: float = 0.5
) -> list[EvalQuestion]:
    """Split once, by a fixed seed: within each (writer, style) group, questions ordered by a
    seeded hash of their id, alternately sealed and tuning so that every style of every writer
    is in both parts and each part holds about half of each set."""
    from dataclasses import replace

    def key(q: EvalQuestion) -> bytes:
        return hashlib.sha256(f"{seed}:{q.id}".encode()).digest()

    groups: dict[tuple[str, str], list[EvalQuestion]] = {}
    for q in questions:
        groups.setdefault((q.writer, q.style), []).append(q)
    split: dict[str, str] = {}
    carry = 0.0  # keeps the overall share right when groups have odd sizes
    for name in sorted(groups):
        for q in sorted(groups[name], key=key):
            carry += sealed_share
            if carry >= 0.5:
                split[q.id], carry = "sealed", carry - 1.0
            else:
                split[q.id] = "tuning"
    return [replace(q, split=split[q.id]) for q in questions]


def select(
    questions: Sequence[EvalQuestion], *, split: str | None = None, styles: Sequence[str] = ()
) -> list[EvalQuestion]:
    """The questions of one split (None or "all": every question) and of the given styles."""
    if split not in (None, "all", *SPLITS):
        raise ConfigurationError(f"split inconnu « {split} » : tuning, sealed ou all")
    out = [q for q in questions if split in (None, "all") or q.split == split]
    if styles:
        out = [q for q in out if q.style in styles]
    return out
