"""Hybrid retrieval: dense (FAISS) + lexical (BM25, French analysis), fused, grouped by resource,
with metadata filters, follow-up handling, and the signals the outcome is decided on.

The outcome (answered / low confidence / abstained) comes from the calibration
(`assistant.calibration`): a domain gate over the question's embedding, then a logistic model
over `Signals` — measures chosen to keep their meaning when the base grows (shares of the
question, similarity relative to the base's own, agreement between methods), not raw scores
that drift with the number of passages.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from assistant.calibration import Abstention, Calibration, DomainGate
from assistant.models import Filters, Hit, ResourceHit, Retrieval, Signals
from embeddings.base import Embedder
from embeddings.lexical import analyze
from embeddings.store import ResourceIndex, citable

log = logging.getLogger(__name__)

METHODS = ("lexical", "dense", "hybrid")
RANK_DEPTH = 10  # resources ranked per question (evaluation, the closest resources shown)
COVERAGE_HITS = 3  # passages whose coverage of the question is measured
SENTENCE_HITS = 2  # best passages of each of those resources whose sentences are compared


@dataclass(frozen=True)
class RetrievalParams:
    """Tunables of retrieval; the fitted ones come from the calibration file."""

    method: str = "hybrid"
    candidates: int = 50  # chunks taken from each method before fusion
    lexical_weight: float = 0.5  # weight of the lexical side in the relative-score fusion
    passages_per_resource: int = 3
    # A follow-up's own words weigh 1, the previous question's words this much: for a topic
    # shift («Et en ville ?») and for a reference to the previous answer («Qui l'a écrit ?»).
    context_weight: float = 0.5
    reference_weight: float = 1.0
    citation_ratio: float = 0.0  # cite resources scoring at least this share of the best
    abstention: Abstention = field(default_factory=lambda: Abstention.constant("answered"))
    domain: DomainGate | None = None

    @classmethod
    def from_calibration(cls, calibration: Calibration, **changes: object) -> RetrievalParams:
        values: dict[str, object] = {
            "lexical_weight": calibration.lexical_weight,
            "context_weight": calibration.context_weight,
            "reference_weight": calibration.reference_weight,
            "citation_ratio": calibration.citation_ratio,
            "abstention": calibration.abstention,
            "domain": calibration.domain,
        }
        values.update(changes)
        return cls(**values)  # type: ignore[arg-type]

    def weight_of_context(self, query: Query) -> float:
        return self.reference_weight if query.kind == "reference" else self.context_weight


# ---------------------------------------------------------------------------- follow-ups

# A follow-up leans on the previous turn: it opens on a continuation word («Et en ville ?»,
# «what about …»), or it is short and points back with a pronoun («Qui l'a organisé ?»).
_CONTINUATION = re.compile(
    r"^\s*(et|mais|aussi|alors|puis|sinon|ou|pareil|idem|and|but|what about|how about)\b", re.I
)
_ANAPHORA = re.compile(
    r"\b(il|elle|ils|elles|l['’]a|l['’]ont|l['’]avez|lui|leur|ce|cet|cette|ces|celui|celle|"
    r"ceux|ça|cela|y|it|its|this|that|they|them|their)\b",
    re.I,
)
_SHORT = 4  # content words: at most this many and the question cannot stand alone


@dataclass(frozen=True)
class Query:
    """What retrieval searches for. `context` is the previous question when `question` is a
    follow-up that cannot stand alone: a `shift` («Et en ville ?») changes one aspect, so its
    own words weigh more; a `reference` («Qui l'a écrit ?») keeps the previous topic."""

    question: str
    context: str = ""
    kind: str = "standalone"  # "standalone", "shift" or "reference"

    @property
    def text(self) -> str:
        return f"{self.context} {self.question}" if self.context else self.question


def contextual_query(question: str, history: Sequence[str]) -> Query:
    """The query for `question` given the earlier questions of the conversation."""
    previous = history[-1].strip() if history else ""
    if not previous:
        return Query(question)
    content = len(analyze(question, thesaurus=False))
    if _CONTINUATION.match(question) or content == 0:
        return Query(question, previous, "shift")
    if content <= _SHORT and _ANAPHORA.search(question):
        return Query(question, previous, "reference")
    if content <= 2:
        return Query(question, previous, "shift")
    return Query(question)


def embed_query(embedder: Embedder, query: Query) -> np.ndarray:
    """The dense query vector; a shift adds the follow-up's own vector so it weighs more."""
    vector = embedder.embed_query(query.text)
    if query.kind == "shift":
        vector = vector + embedder.embed_query(query.question)
        vector = vector / (np.linalg.norm(vector) or 1.0)
    return vector


# ---------------------------------------------------------------------------- retrieval


def allowed_mask(
    index: ResourceIndex, filters: Filters | None, *, include_private: bool
) -> np.ndarray | None:
    """Row mask of the chunks retrieval may return, or None when everything is allowed."""
    if filters is None or not filters.active:
        return None if include_private else index.public_mask  # precomputed: no per-question loop
    keep = [
        rid
        for rid, r in index.resources.items()
        if (include_private or citable(r)) and (filters is None or filters.matches(r))
    ]
    if len(keep) == len(index.resources):
        return None
    return index.mask_for(keep)


def retrieve(
    index: ResourceIndex,
    embedder: Embedder | None,
    question: str,
    *,
    history: Sequence[str] = (),
    filters: Filters | None = None,
    max_resources: int = 3,
    params: RetrievalParams | None = None,
    include_private: bool = False,
    query_vector: np.ndarray | None = None,
) -> Retrieval:
    """Rank resources for `question` and decide the outcome; see `RetrievalParams`."""
    params = params or RetrievalParams()
    query = contextual_query(question, history)
    mask = allowed_mask(index, filters, include_private=include_private)
    k = params.candidates

    if query_vector is None and embedder is not None:
        query_vector = embed_query(embedder, query)
    dense: dict[int, float] = {}
    if query_vector is not None:
        dense = dict(index.search_dense(query_vector, k, mask))
    lexical = dict(
        index.lexical.search(
            query.question,
            k,
            allowed=mask,
            context=query.context,
            weight=params.weight_of_context(query),
        )
    )
    if query_vector is not None and lexical:
        # Complete the dense side for rows only the lexical side found (cheap dot products).
        missing = [r for r in lexical if r not in dense]
        if missing:
            scores = index.vectors[np.asarray(missing)] @ query_vector
            dense.update(zip(missing, map(float, scores), strict=True))

    fused = _fuse(dense, lexical, params)
    ranked = _replace_superseded(_group(index, fused, dense, lexical, params.passages_per_resource))
    weights = _term_weights(index, query, params.weight_of_context(query))
    signals = _signals(index, query_vector, dense, lexical, ranked, weights, params)
    probability, outcome, reason = decide(signals, params)
    if not ranked:
        outcome = "abstained"
        reason = "filters" if mask is not None and not mask.any() else "evidence"
    return Retrieval(
        query=query.text,
        resources=tuple(ranked[:max_resources]),
        signals=signals,
        probability=probability,
        outcome=outcome,
        term_weights=weights,
        focus=query.question,
        reason=reason,
    )


def decide(signals: Signals, params: RetrievalParams) -> tuple[float, str, str]:
    """(probability that the base answers, outcome, reason of an abstention): the domain gate
    first, then the abstention model."""
    if params.domain is not None and signals.domain < params.domain.threshold:
        return 0.0, "abstained", "domain"
    probability = params.abstention.probability(signals.values())
    outcome = params.abstention.outcome(probability)
    return probability, outcome, "evidence" if outcome == "abstained" else ""


def _signals(
    index: ResourceIndex,
    vector: np.ndarray | None,
    dense: dict[int, float],
    lexical: dict[int, float],
    ranked: list[ResourceHit],
    weights: dict[str, float],
    params: RetrievalParams,
) -> Signals:
    top_dense = max(dense.values(), default=0.0)
    background = float(index.dense_mean @ vector) if vector is not None and len(index) else 0.0
    total = sum(weights.values()) or 1.0
    key = sorted(weights, key=lambda t: (-weights[t], t))[:2]
    top_weight = index.lexical.max_idf() or 1.0
    # The passage (best of each of the top resources) that holds most of the question.
    present: set[str] = set()
    coverage = -1.0
    for group in ranked[:COVERAGE_HITS]:
        terms = set(analyze(_passage_text(index, group.best)))
        share = sum(w for t, w in weights.items() if t in terms) / total
        if share > coverage:
            coverage, present = share, terms
    coverage = max(coverage, 0.0)
    key_share = sum(1 for t in key if t in present) / (len(key) or 1)
    missing = max((w for t, w in weights.items() if t not in present), default=0.0) / top_weight
    sentence = 0.0
    if vector is not None and index.sentences is not None:
        rows = (h.row for group in ranked[:COVERAGE_HITS] for h in group.hits[:SENTENCE_HITS])
        sentence = index.sentences.best_similarity(rows, vector)
    resource_coverage = 0.0
    if ranked:
        whole = index.resource_terms(ranked[0].resource.id)
        resource_coverage = sum(w for t, w in weights.items() if t in whole) / total
    return Signals(
        dense=top_dense,
        dense_rel=top_dense - background,
        sentence=sentence,
        coverage=coverage,
        resource_coverage=resource_coverage,
        key_terms=key_share,
        missing=missing,
        lexical=math.log1p(max(lexical.values(), default=0.0)),
        agreement=_agreement(index, dense, lexical),
        domain=params.domain.logit(vector) if params.domain and vector is not None else 0.0,
    )


def _passage_text(index: ResourceIndex, hit: Hit) -> str:
    r = index.resources.get(hit.chunk.resource_id)
    head = f"{r.title}\n{r.summary}\n" if r is not None else ""
    return head + hit.chunk.text


def _term_weights(index: ResourceIndex, query: Query, context_weight: float) -> dict[str, float]:
    """Analyzed query terms → weight × idf (terms unknown to the base get the largest idf)."""
    own = dict.fromkeys(analyze(query.question))
    context = [t for t in dict.fromkeys(analyze(query.context)) if t not in own]
    idf = index.lexical.idf_of([*own, *context])
    weights = {t: idf[t] for t in own}
    weights.update({t: context_weight * idf[t] for t in context})
    return weights


def _agreement(index: ResourceIndex, dense: dict[int, float], lexical: dict[int, float]) -> float:
    """1 / rank, in the lexical ranking of resources, of the dense side's best resource."""
    if not dense or not lexical:
        return 0.0
    best_row = max(dense.items(), key=lambda kv: (kv[1], -kv[0]))[0]
    best = index.chunks[best_row].resource_id
    order: list[str] = []
    for row, _ in sorted(lexical.items(), key=lambda kv: (-kv[1], kv[0])):
        rid = index.chunks[row].resource_id
        if rid not in order:
            order.append(rid)
            if rid == best:
                return 1.0 / len(order)
    return 0.0


def _replace_superseded(ranked: list[ResourceHit]) -> list[ResourceHit]:
    """A superseded resource gives way to its successor when both match (the successor
    keeps its own rank; the old one is dropped)."""
    present = {g.resource.id for g in ranked}
    return [
        g
        for g in ranked
        if not (g.resource.status == "superseded" and g.resource.superseded_by in present)
    ]


def _normalize(scores: dict[int, float]) -> dict[int, float]:
    if not scores:
        return {}
    hi, lo = max(scores.values()), min(scores.values())
    span = hi - lo
    if span <= 1e-9:
        return {r: 1.0 for r in scores}
    return {r: (s - lo) / span for r, s in scores.items()}


def _fuse(
    dense: dict[int, float], lexical: dict[int, float], params: RetrievalParams
) -> dict[int, float]:
    """Relative-score fusion: each side min-max normalized over its candidates, then weighted."""
    if params.method == "dense":
        return dict(dense)
    if params.method == "lexical":
        return dict(lexical)
    nd, nl = _normalize(dense), _normalize(lexical)
    w = params.lexical_weight
    return {r: (1 - w) * nd.get(r, 0.0) + w * nl.get(r, 0.0) for r in set(nd) | set(nl)}


def _group(
    index: ResourceIndex,
    fused: dict[int, float],
    dense: dict[int, float],
    lexical: dict[int, float],
    per_resource: int,
) -> list[ResourceHit]:
    by_resource: dict[str, list[Hit]] = {}
    for row, score in sorted(fused.items(), key=lambda kv: (-kv[1], kv[0])):
        chunk = index.chunks[row]
        by_resource.setdefault(chunk.resource_id, []).append(
            Hit(row=row, chunk=chunk, score=score, dense=dense.get(row), lexical=lexical.get(row))
        )
    groups = [
        ResourceHit(
            resource=index.resources[rid], score=hits[0].score, hits=tuple(hits[:per_resource])
        )
        for rid, hits in by_resource.items()
    ]
    groups.sort(key=lambda g: (-g.score, g.resource.id))
    return groups
