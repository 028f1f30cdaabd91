"""Hybrid retrieval: dense (FAISS) + lexical (BM25, French analysis), fused, grouped by resource,
with metadata filters, follow-up handling and the signals abstention decides on.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from assistant.models import Filters, Hit, ResourceHit, Retrieval
from embeddings.base import Embedder
from embeddings.lexical import analyze
from embeddings.store import ResourceIndex

log = logging.getLogger(__name__)

METHODS = ("lexical", "dense", "hybrid")
RANK_DEPTH = 10  # resources ranked per question (evaluation, the closest resources shown)


@dataclass(frozen=True)
class RetrievalParams:
    """Tunables of retrieval; the defaults were chosen on the evaluation set (see README)."""

    method: str = "hybrid"
    candidates: int = 50  # chunks taken from each method before fusion
    lexical_weight: float = 0.6  # weight of the lexical side in the relative-score fusion
    passages_per_resource: int = 3
    # Abstention (hybrid): a logistic model over three retrieval signals, fitted on
    # tests/data/eval_questions.jsonl with the default model: the best dense cosine, the best
    # BM25 score over the question's idf sum (how fully the best passage covers the question,
    # whatever its length) and log(1 + best BM25). Its decision boundary is
    # «dense + w_cov·coverage + w_lex·log1p(bm25) < threshold»; the threshold keeps in-scope
    # abstention ≤ 5 % on that set (README, «Abstention»).
    abstain_cov_weight: float = 0.1289
    abstain_lex_weight: float = 0.0828
    abstain_threshold: float = 0.9641
    # Single-method runs (evaluation): one signal each, same calibration rule.
    dense_only_threshold: float = 0.83
    lexical_only_threshold: float = 2.0


# A follow-up is short or leans on the previous turn («et en ville ?», «qui l'a organisé ?»).
_FOLLOWUP_START = re.compile(
    r"^\s*(et|mais|aussi|alors|puis|sinon|ou|and|what about|et pour|et si|pareil|idem)\b", re.I
)
_ANAPHORA = re.compile(
    r"\b(il|elle|ils|elles|l['’]a|l['’]ont|ce|cet|cette|ces|celui|celle|ceux|ça|cela|y|en|"
    r"le livret|ce guide|ce webinaire|cette fiche|cette ressource|ce document|it|this|that|they)\b",
    re.I,
)


def contextual_query(question: str, history: Sequence[str]) -> str:
    """The text to retrieve with: the question, completed by the previous question when it is
    a follow-up that cannot stand alone."""
    if not history:
        return question
    content = analyze(question)
    previous = history[-1].strip()
    if not previous:
        return question
    if (
        len(content) <= 2
        or _FOLLOWUP_START.match(question)
        or (len(content) <= 4 and _ANAPHORA.search(question))
    ):
        return f"{previous} {question}"
    return question


def allowed_mask(
    index: ResourceIndex, filters: Filters | None, *, include_private: bool
) -> np.ndarray | None:
    """Row mask of the chunks retrieval may return, or None when everything is allowed."""
    if filters is None or not filters.active:
        return None if include_private else index.public_mask  # precomputed: no per-question loop
    keep = [
        rid
        for rid, r in index.resources.items()
        if (include_private or not r.private) and (filters is None or filters.matches(r))
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
    params: RetrievalParams = RetrievalParams(),
    include_private: bool = False,
    query_vector: np.ndarray | None = None,
) -> Retrieval:
    """Rank resources for `question`; see `RetrievalParams` for the knobs."""
    query = contextual_query(question, history)
    mask = allowed_mask(index, filters, include_private=include_private)
    k = params.candidates

    dense: dict[int, float] = {}
    lexical: dict[int, float] = {}
    if params.method in ("dense", "hybrid"):
        if query_vector is None:
            if embedder is None:
                raise ValueError("dense retrieval needs an embedder or a query vector")
            query_vector = embedder.embed_query(query)
        dense = dict(index.search_dense(query_vector, k, mask))
    if params.method in ("lexical", "hybrid"):
        lexical = dict(index.lexical.search(query, k, allowed=mask))

    rows = set(dense) | set(lexical)
    if params.method == "hybrid" and query_vector is not None and rows:
        # Complete the dense side for rows only the lexical side found (cheap dot products).
        missing = [r for r in rows if r not in dense]
        if missing:
            scores = index.vectors[np.asarray(missing)] @ query_vector
            dense.update(zip(missing, map(float, scores), strict=True))

    fused = _fuse(dense, lexical, params)
    ranked = _group(index, fused, dense, lexical, params.passages_per_resource)[:max_resources]

    top_dense = max(dense.values(), default=0.0)
    top_lexical = max(lexical.values(), default=0.0)
    coverage = top_lexical / (index.lexical.idf_sum(query) or 1.0)
    abstain = not ranked or should_abstain(top_dense, top_lexical, coverage, params)
    return Retrieval(
        query=query,
        resources=tuple(ranked),
        top_dense=top_dense,
        top_lexical=top_lexical,
        coverage=coverage,
        abstain=abstain,
    )


def should_abstain(
    top_dense: float, top_lexical: float, coverage: float, params: RetrievalParams
) -> bool:
    """True when the best matches are too weak to answer (see `RetrievalParams`)."""
    if params.method == "lexical":
        return top_lexical < params.lexical_only_threshold
    if params.method == "dense":
        return top_dense < params.dense_only_threshold
    score = (
        top_dense
        + params.abstain_cov_weight * coverage
        + params.abstain_lex_weight * math.log1p(top_lexical)
    )
    return score < params.abstain_threshold


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
