"""Extractive answer composition: sentence-level selection over the retrieved passages.

Every sentence of the answer is copied from a source passage and carries its `[n]` marker; no
sentence is written without a source. The sentence that answers comes first: sentences are
scored by the share of the question's weighted terms they hold (idf × the follow-up weights of
retrieval) and, when the question asks for a kind of fact (a date, a count, a name, an
e-mail…), by holding one; headings, metadata lines and questions are never quoted. Every
resource the evidence supports (score within `citation_ratio` of the best, up to
`max_sources`) contributes its best sentence, so a right source ranked 2nd or 3rd is cited.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence

from assistant.freshness import past_review, too_old
from assistant.models import Answer, Citation, Hit, ResourceHit, Retrieval
from corpus.enrich import MONTHS
from corpus.models import Resource
from corpus.text import Sentence, split_sentences
from embeddings.lexical import analyze

MAX_WORDS = 120
MAX_SENTENCES = 4
MIN_CONTENT_TERMS = 3  # fewer analyzed terms: a heading, a label or a metadata line

NOT_FOUND = (
    "Je n'ai pas trouvé de réponse à cette question dans les ressources du réseau. "
    "Vous pouvez la reformuler, ou consulter l'équipe du RTES."
)
OUT_OF_DOMAIN = (
    "Je n'ai pas trouvé de réponse : cette question semble sortir du champ de l'assistant "
    "(l'économie sociale et solidaire et l'action publique locale). Vous pouvez la reformuler, "
    "ou consulter l'équipe du RTES."
)
NO_MATCH_FOR_FILTERS = (
    "Aucune ressource ne correspond aux filtres choisis : élargissez-les ou retirez-les, "
    "puis reposez la question."
)
LOW_CONFIDENCE = (
    "Je ne suis pas sûr que les ressources du réseau répondent exactement à cette question : "
    "voici les passages les plus proches, à vérifier."
)

_WORD = re.compile(r"\w+(?:[-'’]\w+)*", re.UNICODE)

_MONTHS = "|".join(sorted(MONTHS, key=len, reverse=True))
_FACT_PATTERNS: dict[str, re.Pattern[str]] = {
    "date": re.compile(
        rf"\b(\d{{1,2}}(er)?\s+({_MONTHS})\s+\d{{4}}|({_MONTHS})\s+\d{{4}}|(19|20)\d{{2}})\b", re.I
    ),
    "count": re.compile(r"\b\d+\b"),
    "email": re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+"),
    "url": re.compile(r"https?://\S+"),
    "name": re.compile(r"\b[A-ZÉÈ][a-zéèêëïîôûç]+(?:[\s-][A-ZÉÈ][a-zéèêëïîôûç]+)+\b"),
    "place": re.compile(
        r"\b(\d{5}\s+[A-ZÉÈ]+|[A-ZÉÈ][a-zéè]+(?:-[A-ZÉÈ][a-zéè]+)+|(?:à|en|dans) [A-ZÉÈ]\w+)"
    ),
}
_ASKS: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(
            r"\b(quand|quelle date|quel jour|en quelle année|depuis quand|date|dates|when|"
            r"what year|année)\b",
            re.I,
        ),
        "date",
    ),
    (re.compile(r"\b(combien|nombre|how many|how much|pages|montant|taux)\b", re.I), "count"),
    (
        re.compile(
            r"\b(e-?mail|courriel|mail|adresse (électronique|mail)|contacter|contact|commander)\b",
            re.I,
        ),
        "email",
    ),
    (re.compile(r"\b(site|lien|url|website|internet)\b", re.I), "url"),
    (re.compile(r"\b(qui|who|quel intervenant|quelle personne|nom|animé|animait)\b", re.I), "name"),
    (
        re.compile(
            r"\b(où|ou se trouve|where|quelle ville|quelle commune|dans quel(le)? (ville|commune|"
            r"département|territoire|région))\b",
            re.I,
        ),
        "place",
    ),
]


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


def _weights(retrieval: Retrieval) -> Mapping[str, float]:
    return retrieval.term_weights or dict.fromkeys(analyze(retrieval.query), 1.0)


def score_sentence(
    sentence: Sentence, weights: Mapping[str, float], facts: set[str], rank: int
) -> float | None:
    """How well `sentence` answers; None for a sentence that must not be quoted."""
    text = sentence.text
    terms = analyze(text, thesaurus=False)
    if len(terms) < MIN_CONTENT_TERMS or text.rstrip().endswith("?"):
        return None  # a heading, a label, a metadata line, or a question (answers nothing)
    total = sum(weights.values()) or 1.0
    present = set(analyze(text))
    share = sum(w for t, w in weights.items() if t in present) / total
    score = 2.0 * share
    for kind in facts:
        if _FACT_PATTERNS[kind].search(text):
            score += 1.0 if share > 0 else 0.3
    if len(text.split()) > 60:
        score -= 0.3  # a run-on paragraph: a worse quote
    if text[:1].islower():
        score -= 0.3  # a fragment of a list or a cut sentence
    return score - 0.15 * rank


def compose_answer(
    question: str,
    retrieval: Retrieval,
    *,
    notices: Sequence[str] = (),
    max_sources: int = 3,
    citation_ratio: float = 0.0,
    today: dt.date | None = None,
    stale_years: int = 5,
) -> Answer:
    """Compose the extractive answer for `retrieval` from its first `max_sources` resources
    (those whose score is at least `citation_ratio` × the best), or the plain «Je n'ai pas
    trouvé»; a low-confidence retrieval gives an answer with the `LOW_CONFIDENCE` notice."""
    if retrieval.abstain or not retrieval.resources:
        return _not_found(question, retrieval, notices)
    groups = _supported(retrieval.resources[:max_sources], citation_ratio)
    weights = _weights(retrieval)
    facts = asked_facts(question) or (
        asked_facts(retrieval.query)
        if retrieval.focus and retrieval.focus != retrieval.query
        else set()
    )

    per_resource: list[list[tuple[float, Sentence]]] = []
    for rank, group in enumerate(groups):
        seen: set[tuple[int, int]] = set()
        scored = []
        for hit in group.hits:
            for s in split_sentences(hit.chunk.text, hit.chunk.start):
                if (s.start, s.end) in seen:
                    continue  # overlapping chunks repeat sentences
                seen.add((s.start, s.end))
                score = score_sentence(s, weights, facts, rank)
                if score is not None:
                    scored.append((score, s))
        scored.sort(key=lambda x: (-x[0], x[1].start))
        per_resource.append(scored)

    # Each supported resource's best sentence, then the best of the rest, within the limits.
    picks: list[tuple[float, int, Sentence]] = [
        (scored[0][0], rank, scored[0][1]) for rank, scored in enumerate(per_resource) if scored
    ]
    rest = sorted(
        ((sc, rank, s) for rank, scored in enumerate(per_resource) for sc, s in scored[1:]),
        key=lambda x: (-x[0], x[1], x[2].start),
    )
    rest = [x for x in rest if x[0] > 0]  # beyond each resource's best: only sentences that match
    chosen: list[tuple[float, int, Sentence]] = []
    words = 0
    for score, rank, s in [*sorted(picks, key=lambda x: (-x[0], x[1])), *rest]:
        n = len(s.text.split())
        if len(chosen) >= MAX_SENTENCES or (chosen and words + n > MAX_WORDS):
            continue
        if any(c[2].text == s.text for c in chosen):
            continue
        chosen.append((score, rank, s))
        words += n
    if not chosen:
        return _not_found(question, retrieval, notices)

    # The best sentence first; sources numbered in the order the answer cites them.
    chosen.sort(key=lambda c: -c[0])
    numbers: dict[int, int] = {}
    for _, rank, _ in chosen:
        numbers.setdefault(rank, len(numbers) + 1)
    lines = [f"{_clip(s.text)} [{numbers[rank]}]" for _, rank, s in chosen]
    terms = set(weights)
    citations = []
    for rank, n in numbers.items():
        group = groups[rank]
        used = sorted((s for _, r, s in chosen if r == rank), key=lambda s: s.start)
        citations.append(_citation(n, group, _hit_holding(group, used[0]), used, terms))
    all_notices = tuple(notices)
    stale = freshness_notice(
        [(n, groups[rank].resource) for rank, n in numbers.items()],
        today or dt.date.today(),
        stale_years,
    )
    if stale:
        all_notices = (*all_notices, stale)
    if retrieval.outcome == "low_confidence":
        all_notices = (LOW_CONFIDENCE, *all_notices)
    return Answer(
        question=question,
        text="\n".join(lines),
        abstained=False,
        citations=tuple(citations),
        notices=all_notices,
        outcome=retrieval.outcome,
    )


def freshness_notice(
    cited: Sequence[tuple[int, Resource]], today: dt.date, stale_years: int
) -> str | None:
    """One French notice for the cited resources that may be out of date: older than
    `stale_years`, or past their `review_by` date."""
    parts = []
    for n, r in cited:
        if past_review(r, today):
            parts.append(f"[{n}] à revoir depuis {r.review_by}")
        elif too_old(r, today, stale_years):
            parts.append(f"[{n}] de {(r.date or '')[:4]}")
    if not parts:
        return None
    if len(parts) == 1:
        return f"Source {parts[0]} : vérifiez qu'elle est à jour."
    return f"Sources {', '.join(parts)} : vérifiez qu'elles sont à jour."


def _supported(groups: Sequence[ResourceHit], ratio: float) -> list[ResourceHit]:
    """The resources the evidence supports: the best, and those within `ratio` of it."""
    if not groups:
        return []
    best = groups[0].score
    return [g for i, g in enumerate(groups) if i == 0 or g.score >= ratio * best]


def _not_found(question: str, retrieval: Retrieval, notices: Sequence[str]) -> Answer:
    text = {"domain": OUT_OF_DOMAIN, "filters": NO_MATCH_FOR_FILTERS}.get(
        retrieval.reason, NOT_FOUND
    )
    return Answer(question=question, text=text, abstained=True, notices=tuple(notices))


_MARKUP = re.compile(r"\*\*|__|^[#>\s]+")  # Markdown emphasis, heading and quote marks


def _clip(text: str) -> str:
    """A source sentence as quoted: one line, no Markdown marks, ending with punctuation."""
    text = _MARKUP.sub("", re.sub(r"[\s\u00a0]+", " ", text).strip()).strip()
    text = text.rstrip(" ;:,–-")
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
