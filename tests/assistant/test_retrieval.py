"""Retrieval logic on the fake embedder: fusion, grouping, filters, privacy, follow-ups."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from assistant.calibration import Abstention, DomainGate
from assistant.models import Filters, Signals
from assistant.retrieval import (
    Query,
    RetrievalParams,
    _fuse,
    allowed_mask,
    contextual_query,
    decide,
    retrieve,
)
from assistant.service import Assistant
from corpus.chunking import ChunkingSettings
from corpus.errors import ConfigurationError
from corpus.models import Resource
from embeddings.builder import build_index
from embeddings.store import ResourceIndex
from tests.fakes import FakeEmbedder

# The fake embedder's cosines are far from the real model's: answer everything in logic tests.
OPEN = RetrievalParams()  # never abstains


def test_relative_score_fusion_is_exact() -> None:
    dense = {0: 0.9, 1: 0.8, 2: 0.7}
    lexical = {1: 10.0, 2: 5.0, 3: 0.0}
    fused = _fuse(dense, lexical, RetrievalParams(lexical_weight=0.6))
    # dense normalized: 1, .5, 0 ; lexical normalized: -, 1, .5, 0
    assert fused == pytest.approx({0: 0.4, 1: 0.2 + 0.6, 2: 0.0 + 0.3, 3: 0.0})
    assert max(fused, key=fused.__getitem__) == 1  # lexical and dense agree on row 1


def test_single_method_fusion_keeps_raw_scores() -> None:
    assert _fuse({0: 0.5}, {1: 2.0}, RetrievalParams(method="dense")) == {0: 0.5}
    assert _fuse({0: 0.5}, {1: 2.0}, RetrievalParams(method="lexical")) == {1: 2.0}


RULE = Abstention(
    features=("coverage", "dense_rel"),
    mean=(0.5, 0.1),
    scale=(0.25, 0.05),
    coef=(2.0, 1.0),
    intercept=0.0,
    abstain_below=0.2,
    low_below=0.6,
)


def test_outcome_from_the_abstention_model_and_the_domain_gate() -> None:
    p = RetrievalParams(abstention=RULE)
    # z = 2·(cov − 0.5)/0.25 + (rel − 0.1)/0.05
    assert decide(Signals(coverage=0.5, dense_rel=0.1), p) == (0.5, "low_confidence", "")
    prob, outcome, _ = decide(Signals(coverage=0.75, dense_rel=0.1), p)  # z = 2
    assert prob == pytest.approx(1 / (1 + np.exp(-2))) and outcome == "answered"
    assert decide(Signals(coverage=0.25, dense_rel=0.1), p)[1:] == ("abstained", "evidence")
    gate = DomainGate(weights=(1.0, 0.0), bias=0.0, threshold=-0.5)
    gated = replace(p, domain=gate)
    # A strong match is still refused when the gate says the question is out of the domain.
    assert decide(Signals(coverage=1.0, dense_rel=0.3, domain=-1.0), gated) == (
        0.0,
        "abstained",
        "domain",
    )
    assert decide(Signals(coverage=1.0, dense_rel=0.3, domain=0.0), gated)[1] == "answered"
    assert gate.logit(np.array([-0.7, 0.2], dtype=np.float32)) == pytest.approx(-0.7)
    assert gate.logit(np.zeros(3, dtype=np.float32)) == np.inf  # another model: no verdict


def test_signals_are_shares_and_ranks(fake_assistant: Assistant) -> None:
    fake_assistant.params = OPEN
    s = fake_assistant.retrieve("collectif GARE Vaillant gare").signals
    assert s.coverage == pytest.approx(1.0)  # every word of the question is in the best passage
    assert s.agreement == 1.0  # both methods put the same resource first
    index = fake_assistant.index()
    q = fake_assistant.embedder.embed_query("collectif GARE Vaillant gare")
    assert 0 < s.dense <= 1.0
    assert s.dense_rel == pytest.approx(s.dense - float(index.vectors.mean(axis=0) @ q), abs=1e-5)
    partial = fake_assistant.retrieve("collectif GARE zorglubette").signals
    assert 0 < partial.coverage < 1.0  # an unknown word counts against the coverage


def test_hybrid_finds_the_financing_resources(fake_assistant: Assistant) -> None:
    fake_assistant.params = OPEN
    r = fake_assistant.retrieve("Comment financer l'ESS en milieu rural ?")
    ids = [g.resource.id for g in r.resources]
    assert len(ids) == len(set(ids)) >= 3  # grouped: each resource once
    assert any("4-leviers" in i or "webinaire" in i for i in ids[:2])
    best = r.resources[0]
    assert best.hits == tuple(sorted(best.hits, key=lambda h: -h.score))
    assert all(h.chunk.resource_id == best.resource.id for h in best.hits)


def test_filters_restrict_resources(fake_assistant: Assistant) -> None:
    fake_assistant.params = OPEN
    r = fake_assistant.retrieve("ESS", filters=Filters(zones=("haute-marne",)))
    assert [g.resource.zone for g in r.resources] == ["Haute-Marne"]
    r = fake_assistant.retrieve("ESS", filters=Filters(types=("Fiche technique",)))
    assert {g.resource.kind for g in r.resources} == {"Fiche technique"}
    r = fake_assistant.retrieve("ESS", filters=Filters(date_from="2020-06"))
    assert r.resources and all((g.resource.date or "") >= "2020-06" for g in r.resources)
    r = fake_assistant.retrieve("ESS", filters=Filters(themes=("politique de la ville",)))
    assert r.resources and all("politique de la ville" in g.resource.themes for g in r.resources)


def test_filter_parsing() -> None:
    f = Filters.parse(
        ["type=Guide", "theme=ruralité", "zone=Haute-Marne", "date>=2020", "date<=2021-06"]
    )
    assert f == Filters(("Guide",), ("ruralité",), ("Haute-Marne",), "2020", "2021-06")
    with pytest.raises(ConfigurationError, match="filtre"):
        Filters.parse(["couleur=bleu"])
    with pytest.raises(ConfigurationError, match="date"):
        Filters.parse(["date>=hier"])


def test_private_resources_are_never_returned(tmp_path, fake_embedder: FakeEmbedder) -> None:
    public = Resource(
        id="pub", title="Fiche publique", body="Les SCIC en milieu rural."
    ).with_hash()
    private = Resource(
        id="priv",
        title="Note interne",
        body="Les SCIC en milieu rural, note interne confidentielle.",
        private=True,
    ).with_hash()
    build_index(
        [public, private], embedder=fake_embedder, index_dir=tmp_path, chunking=ChunkingSettings()
    )
    index = ResourceIndex.load(tmp_path)
    r = retrieve(index, fake_embedder, "note interne confidentielle SCIC", params=OPEN)
    assert [g.resource.id for g in r.resources] == ["pub"]
    mask = allowed_mask(index, None, include_private=False)
    assert mask is not None and mask.tolist() == [c.resource_id == "pub" for c in index.chunks]


def test_follow_up_uses_the_previous_question() -> None:
    shift = contextual_query("Et en ville ?", ["Un guide sur l'ESS rurale ?"])
    assert shift == Query("Et en ville ?", "Un guide sur l'ESS rurale ?", "shift")
    assert shift.text == "Un guide sur l'ESS rurale ? Et en ville ?"
    reference = contextual_query("Qui l'a organisé ?", ["Le webinaire TRESSONS"])
    assert reference.kind == "reference" and reference.text.startswith("Le webinaire")
    assert contextual_query("What about cities?", ["ESS rurale"]).kind == "shift"
    standalone = (
        "Quelles initiatives ESS dans les quartiers prioritaires de la politique de la ville ?"
    )
    assert contextual_query(standalone, ["autre chose"]) == Query(standalone)
    assert contextual_query("Et en ville ?", []) == Query("Et en ville ?")


def test_a_topic_shift_lets_the_new_words_win(fake_assistant: Assistant) -> None:
    """«Et en ville ?» after a rural question: the city resource comes first, not the rural
    answer again (the follow-up's own words weigh more than the previous question's)."""
    fake_assistant.params = OPEN
    first = fake_assistant.retrieve("Comment financer l'ESS en milieu rural ?")
    assert "quartiers" not in first.resources[0].resource.id
    shifted = fake_assistant.retrieve(
        "Et dans les quartiers de la ville ?", history=["Comment financer l'ESS en milieu rural ?"]
    )
    assert "quartiers-politique-de-la-ville" in shifted.resources[0].resource.id
    assert shifted.term_weights  # the previous question's terms weigh less than the new ones
    new = max(w for t, w in shifted.term_weights.items() if t.startswith("quarti"))
    old = max(w for t, w in shifted.term_weights.items() if t.startswith("rural"))
    idf = fake_assistant.index().lexical.idf_of(["quarti", "rural"])
    assert new / idf["quarti"] == pytest.approx(1.0) and old / idf["rural"] == pytest.approx(0.5)


def test_follow_up_retrieval_keeps_the_subject(fake_assistant: Assistant) -> None:
    fake_assistant.params = OPEN
    r = fake_assistant.retrieve(
        "Qui y intervenait ?", history=["Le webinaire sur l'écosystème d'accompagnement"]
    )
    assert "webinaire" in r.resources[0].resource.id


def test_dense_search_with_mask_matches_brute_force(
    fake_assistant: Assistant, fake_embedder: FakeEmbedder
) -> None:
    index = fake_assistant.index()
    q = fake_embedder.embed_query("coopération rurale")
    mask = np.zeros(len(index), dtype=bool)
    mask[::2] = True
    got = index.search_dense(q, 5, mask)
    scores = index.vectors @ q
    expected = sorted(np.flatnonzero(mask), key=lambda r: -scores[r])[:5]
    assert [r for r, _ in got] == list(expected)
