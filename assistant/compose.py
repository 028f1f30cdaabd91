"""Extractive answer composition: sentence-level selection over the retrieved passages.

Every sentence of the answer is copied from a source passage and carries its `[n]` marker; no
sentence is written without a source. Sentences that hold the kind of fact the question asks
for (a date, a count, a name, an e-mail…) are preferred.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from assistant.models import Answer, Citation, Hit, ResourceHit, Retrieval
from embeddings.lexical import analyze

MAX_WORDS = 120
MAX_SENTENCES = 4

NOT_FOUND = (
    "Je n'ai pas trouvé de réponse à cette question dans les ressources du réseau. "
    "Vous pouvez la reformuler, ou consulter l'équipe du RTES."
)

# Sentence ends: ., !, ?, … followed by a space and an upper-case letter, a quote or a digit;
# line breaks always end a sentence (lists, headings).
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\s\u00a0]+(?=[«\"“(A-ZÀ-ÖØ-Þ0-9])|\n+")
_WORD = re.compile(r"\w+(?:[-'’]\w+)*", re.UNICODE)

_MONTHS = "janvier|février|fevrier|mars|avril|mai|juin|juillet|août|aout|septembre|octobre|novembre|décembre|decembre"
_FACT_PATTERNS: dict[str, re.Pattern[str]] = {
    "date": re.compile(
        rf"\b(\d{{1,2}}(er)?\s+({_MONTHS})\s+\d{{4}}|({_MONTHS})\s+\d{{4}}|(19|20)\d{{2}})\b", re.I
    ),
    "count": re.compile(r"\b\d+\b"),
    "email": re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+"),
    "url": re.compile(r"https?://\S+"),
    "name": re.compile(r"\b[A-ZÉÈ][a-zéèêëïîôûç]+(?:[\s-][A-ZÉÈ][a-zéèêëïîôûç]+)+\b"),
    "place": re.compile(
        r"\b(\d{5}\s+[A-ZÉÈ]+|Zone d'action|[A-ZÉÈ][a-zéè]+(?:-[A-ZÉÈ][a-zéè]+)+)\b"
    ),
}
_ASKS: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(
            r"\b(quand|quelle date|en quelle année|depuis quand|date|when|what year|année)\b", re.I
        ),
        "date",
    ),
    (re.compile(r"\b(combien|nombre|how many|how much|pages)\b", re.I), "count"),
    (
        re.compile(r"\b(e-?mail|courriel|adresse (électronique|mail)|contacter|commander)\b", re.I),
        "email",
    ),
    (re.compile(r"\b(site|lien|url|website|internet)\b", re.I), "url"),
    (re.compile(r"\b(qui|who|quel intervenant|quelle personne|nom|animé)\b", re.I), "name"),
    (
        re.compile(
            r"\b(où|ou se trouve|where|dans quel(le)? (ville|commune|département|territoire))\b",
            re.I,
        ),
        "place",
    ),
]


@dataclass(frozen=True)
class Sentence:
    start: int  # offset in the resource body
    end: int
    text: str


def split_sentences(text: str, base: int = 0) -> list[Sentence]:
    """Split `text` into sentences with offsets (relative to `base`), dropping empty pieces."""
    out: list[Sentence] = []
    pos = 0
    for match in [*_SENTENCE_END.finditer(text), None]:
        end = match.start() if match else len(text)
        piece = text[pos:end]
        stripped = piece.strip(" \t\u00a0•·-–")
        if stripped:
            lead = piece.index(stripped)
            out.append(Sentence(base + pos + lead, base + pos + lead + len(stripped), stripped))
        if match:
            pos = match.end()
    return out


def asked_facts(question: str) -> set[str]:
    """The kinds of fact a question asks for."""
    return {kind for pattern, kind in _ASKS if pattern.search(question)}


def highlight_spans(text: str, terms: set[str]) -> tuple[tuple[int, int], ...]:
    """Spans of the words of `text` whose analyzed form is one of `terms`."""
    spans = []
    for match in _WORD.finditer(text):
        if set(analyze(match.group(0))) & terms:
            spans.append((match.start(), match.end()))
    return tuple(spans)


def _score(sentence: Sentence, terms: set[str], facts: set[str], rank: int, order: int) -> float:
    words = set(analyze(sentence.text))
    overlap = len(words & terms)
    score = overlap / max(1, len(terms)) * 2.0
    for kind in facts:
        if _FACT_PATTERNS[kind].search(sentence.text):
            score += 1.5 if overlap else 0.5
    if sentence.text.rstrip().endswith("?"):
        score -= 2.0  # a question in the source (a heading, a webinar's agenda) answers nothing
    n_words = len(sentence.text.split())
    if n_words < 4:
        score -= 1.0
    elif n_words > 60:
        score -= 0.5
    return score - 0.25 * rank - 0.02 * order


def compose_answer(
    question: str,
    retrieval: Retrieval,
    *,
    notices: Sequence[str] = (),
    max_sources: int = 3,
) -> Answer:
    """Compose the extractive answer for `retrieval` from its first `max_sources` resources,
    or the plain «Je n'ai pas trouvé»."""
    if retrieval.abstain or not retrieval.resources:
        return Answer(question=question, text=NOT_FOUND, abstained=True, notices=tuple(notices))
    terms = set(analyze(retrieval.query))
    facts = asked_facts(question)

    candidates: list[tuple[float, int, Sentence, int]] = []  # score, resource rank, sentence, hit
    for rank, group in enumerate(retrieval.resources[:max_sources]):
        seen: set[tuple[int, int]] = set()
        for h_i, hit in enumerate(group.hits):
            for order, s in enumerate(split_sentences(hit.chunk.text, hit.chunk.start)):
                if (s.start, s.end) in seen:
                    continue  # overlapping chunks repeat sentences
                seen.add((s.start, s.end))
                candidates.append((_score(s, terms, facts, rank, order), rank, s, h_i))
    candidates.sort(key=lambda c: -c[0])

    chosen: list[tuple[int, Sentence, int]] = []
    words = 0
    # The best resource always contributes its best sentence first.
    for score, rank, s, h_i in candidates:
        if len(chosen) >= MAX_SENTENCES:
            break
        n = len(s.text.split())
        if chosen and (words + n > MAX_WORDS or score <= 0):
            continue
        if any(c[1].text == s.text for c in chosen):
            continue
        chosen.append((rank, s, h_i))
        words += n
    if not chosen:
        return Answer(question=question, text=NOT_FOUND, abstained=True, notices=tuple(notices))

    # Number the sources in the order the answer cites them; keep sentences by source order.
    chosen.sort(key=lambda c: (c[0], c[1].start))
    numbers: dict[int, int] = {}
    for rank, _, _ in chosen:
        numbers.setdefault(rank, len(numbers) + 1)
    lines = [f"{_clip(s.text)} [{numbers[rank]}]" for rank, s, _ in chosen]

    citations = []
    for rank, n in numbers.items():
        group = retrieval.resources[rank]
        used = [s for r, s, _ in chosen if r == rank]
        hit = _hit_holding(group, used[0])
        citations.append(_citation(n, group, hit, used, terms))
    return Answer(
        question=question,
        text="\n".join(lines),
        abstained=False,
        citations=tuple(citations),
        notices=tuple(notices),
    )


def _clip(text: str) -> str:
    text = re.sub(r"[\s\u00a0]+", " ", text).strip()
    return text if text[-1:] in '.!?…»)"' else text + "."


def _hit_holding(group: ResourceHit, sentence: Sentence) -> Hit:
    for hit in group.hits:
        if hit.chunk.start <= sentence.start and sentence.end <= hit.chunk.end:
            return hit
    return group.best


def _citation(
    n: int, group: ResourceHit, hit: Hit, used: list[Sentence], terms: set[str]
) -> Citation:
    r = group.resource
    chunk = hit.chunk
    used_spans = tuple(
        (s.start - chunk.start, s.end - chunk.start)
        for s in used
        if chunk.start <= s.start and s.end <= chunk.end
    )
    return Citation(
        n=n,
        resource_id=r.id,
        title=r.title,
        type=r.type,
        kind=r.kind,
        date=r.date,
        url=r.url,
        passage=chunk.text,
        start=chunk.start,
        end=chunk.end,
        score=group.score,
        highlights=highlight_spans(chunk.text, terms),
        used=used_spans,
    )
