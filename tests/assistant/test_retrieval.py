"""Retrieval logic on the fake embedder: fusion, grouping, filters, privacy, follow-ups."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from assistant.models import Filters
from assistant.retrieval import (
    RetrievalParams,
    _fuse,
    allowed_mask,
    contextual_query,
    retrieve,
    should_abstain,
)
from assistant.service import Assistant
from corpus.chunking import ChunkingSettings
from corpus.errors import ConfigurationError
from corpus.models import Resource
from embeddings.builder import build_index
from embeddings.store import ResourceIndex
from tests.fakes import FakeEmbedder

# The fake embedder's cosines are far from the real model's: answer everything in logic tests.
OPEN = RetrievalParams(abstain_threshold=-1.0)


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


def test_abstention_rule() -> None:
    p = RetrievalParams()
    # score = dense + 0.1289·coverage + 0.0828·ln(1 + bm25), abstain under 0.9641
    assert should_abstain(0.80, 0.0, 0.0, p)
    assert not should_abstain(0.97, 0.0, 0.0, p)
    assert not should_abstain(0.85, 10.0, 0.5, p)  # 0.85 + 0.064 + 0.199 = 1.11
    assert should_abstain(0.85, 1.0, 0.1, p)  # 0.85 + 0.013 + 0.057 = 0.92
    assert should_abstain(0.0, 1.0, 1.0, replace(p, method="lexical"))
    assert not should_abstain(0.0, 3.0, 1.0, replace(p, method="lexical"))
    assert should_abstain(0.80, 9.0, 1.0, replace(p, method="dense"))


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
    assert (
        contextual_query("Et en ville ?", ["Un guide sur l'ESS rurale ?"])
        == "Un guide sur l'ESS rurale ? Et en ville ?"
    )
    assert contextual_query("Qui l'a organisé ?", ["Le webinaire TRESSONS"]).startswith(
        "Le webinaire"
    )
    standalone = (
        "Quelles initiatives ESS dans les quartiers prioritaires de la politique de la ville ?"
    )
    assert contextual_query(standalone, ["autre chose"]) == standalone
    assert contextual_query("Et en ville ?", []) == "Et en ville ?"


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
