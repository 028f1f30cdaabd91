"""The French analyzer and the BM25 lexical index."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from corpus.models import Chunk, Resource
from embeddings.french import STOPWORDS, analyze
from embeddings.lexical import LexicalIndex, resource_field_text

# --- analyzer ----------------------------------------------------------------------------------


def base(text: str) -> list[str]:
    """The analysis without the ESS thesaurus (steps 1–7 of `embeddings.french`)."""
    return analyze(text, thesaurus=False)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("l’économie", ["econom"]),
        ("l'économie", ["econom"]),
        ("d’emploi d'emploi", ["emploi", "emploi"]),
        ("qu’il jusqu’à lorsqu'on puisqu’elle aujourd’hui", []),
        ("c'est n'est s’engager m'appelle t’aider j'achète", ["engag", "appel", "aid", "achet"]),
    ],
)
def test_elisions_with_both_apostrophes(text: str, expected: list[str]) -> None:
    assert analyze(text) == expected


def test_plural_singular_and_verb_forms_share_a_stem() -> None:
    assert {
        t for w in ("financement", "financements", "financer", "Financé") for t in analyze(w)
    } == {"financ"}
    assert analyze("coopératives") == analyze("coopérative") == analyze("cooperatives")
    assert analyze("territoires") == analyze("territoire")


def test_accents_are_folded_after_stemming() -> None:
    assert analyze("Économie ÉCONOMIE economie") == ["econom"] * 3
    assert analyze("collectivités") == analyze("collectivite") == ["collect"]
    assert analyze("Œuvre") == ["oeuvr"]
    assert analyze("intérêt") == analyze("interet")


def test_acronyms_stay_whole_including_plurals() -> None:
    assert base("SCIC") == ["scic"]
    assert base("les SCICs et les CAE") == ["scic", "cae"]
    assert base("PTCE, CRESS, DLA, EPCI, RTES, SIAE, QPV, ANCT") == [
        "ptce", "cress", "dla", "epci", "rtes", "siae", "qpv", "anct",
    ]  # fmt: skip
    assert base("FEADER LEADER CCAS PAT GEIQ IAE SCOP TZCLD ESS") == [
        "feader", "leader", "ccas", "pat", "geiq", "iae", "scop", "tzcld", "ess",
    ]  # fmt: skip
    assert base("des EPCIs") == ["epci"]


def test_a_stem_never_collides_with_an_acronym() -> None:
    assert analyze("pâtes") == ["pat_"]
    assert "pat" not in analyze("pâtes fraîches")


@pytest.mark.parametrize(
    ("text", "acronym"),
    [
        ("société coopérative d’intérêt collectif", "scic"),
        ("Sociétés coopératives d'intérêt collectif", "scic"),
        ("coopérative d'activité et d'emploi", "cae"),
        ("pôle territorial de coopération économique", "ptce"),
        ("pôles territoriaux de coopération économique", "ptce"),
        ("l'économie sociale et solidaire", "ess"),
        ("quartiers politique de la ville", "qpv"),
        ("les quartiers prioritaires", "qpv"),
        ("établissement public de coopération intercommunale", "epci"),
        ("l’intercommunalité", "epci"),
        ("une communauté de communes", "epci"),
        ("projet alimentaire territorial", "pat"),
        ("structures d'insertion par l'activité économique", "siae"),
        ("Territoires zéro chômeur de longue durée", "tzcld"),
    ],
)
def test_expansions_also_emit_their_acronym(text: str, acronym: str) -> None:
    assert acronym in analyze(text)


def test_expansion_and_acronym_match_each_other() -> None:
    doc = set(analyze("Une société coopérative d'intérêt collectif (SCIC) associe"))
    assert "scic" in doc
    assert set(analyze("Qu'est-ce qu'une SCIC ?")) <= doc


def test_numbers_are_kept() -> None:
    assert base("En 2020, 12 projets") == ["2020", "12", "projet"]


def test_hyphenated_words_are_split() -> None:
    assert base("tiers-lieux") == ["tier", "lieux"]
    assert base("Tiers-Lieux") == base("tiers lieux")


def test_stopwords_and_question_words_are_dropped() -> None:
    assert len(STOPWORDS) >= 150
    assert base("Comment ? Pourquoi ? Quel, quelle, où, est-ce que c'est pour nous ?") == []
    assert base("Comment financer un projet d'ESS en milieu rural ?") == [
        "financ", "projet", "ess", "milieu", "rural",
    ]  # fmt: skip


def test_synonyms_add_a_shared_token_next_to_the_word() -> None:
    assert base("subvention") == ["subvent", "financ"]
    assert "financ" in base("argent") and "financ" in base("fonds")
    assert base("ruralité") == base("ruraux") == ["rural"]
    assert "rural" in base("à la campagne")
    assert {"commun", "collect"} <= set(base("la mairie"))


def test_non_breaking_spaces_crlf_and_guillemets() -> None:
    assert base("«\u00a0Tiers-lieux\u00a0»\r\nruraux") == ["tier", "lieux", "rural"]


def test_empty_text() -> None:
    assert analyze("") == []
    assert analyze("  ?! … ") == []


# --- index -------------------------------------------------------------------------------------


def _chunk(rid: str, text: str, title: str = "") -> Chunk:
    return Chunk(resource_id=rid, position=0, start=0, end=len(text), text=text, title=title)


@pytest.fixture
def chunks() -> list[Chunk]:
    return [
        _chunk("a", "Les tiers-lieux ruraux accueillent des associations.", "Tiers-lieux"),
        _chunk("b", "La SCIC associe salariés, usagers et collectivités.", "Les SCIC"),
        _chunk("c", "Financer une SCIC : subventions et prises de participation.", "Financement"),
        _chunk("d", "Les marchés publics responsables et les clauses sociales.", "Achat public"),
    ]


@pytest.fixture
def index(chunks: list[Chunk]) -> LexicalIndex:
    return LexicalIndex.build(chunks)


def test_ranking_on_a_tiny_corpus(index: LexicalIndex) -> None:
    assert [row for row, _ in index.search("tiers-lieux", 10)] == [0]
    # « SCIC » is in b's title (counted twice) and text; c has it once, in the text.
    assert [row for row, _ in index.search("Qu'est-ce qu'une SCIC ?", 10)] == [1, 2]
    # the expansion in the query finds the acronym in the documents
    assert [row for row, _ in index.search("société coopérative d'intérêt collectif", 10)] == [1, 2]
    # « subvention » → financ: c matches by title and text
    assert index.search("subvention", 10)[0][0] == 2
    assert [row for row, _ in index.search("clauses sociales des marchés publics", 10)] == [3]


def test_scores_are_positive_and_sorted(index: LexicalIndex) -> None:
    hits = index.search("SCIC financement collectivités", 10)
    scores = [s for _, s in hits]
    assert scores == sorted(scores, reverse=True) and all(s > 0 for s in scores)
    assert index.search("SCIC financement collectivités", 1) == hits[:1]


def test_ties_are_broken_by_lower_row() -> None:
    ix = LexicalIndex.build([_chunk(str(i), "coopérative") for i in range(30)])
    assert [row for row, _ in ix.search("coopérative", 3)] == [0, 1, 2]
    assert len({score for _, score in ix.search("coopérative", 30)}) == 1


def test_unknown_or_empty_query_gives_nothing(index: LexicalIndex) -> None:
    assert index.search("", 5) == []
    assert index.search("comment pourquoi où", 5) == []
    assert index.search("photovoltaïque", 5) == []
    assert index.search("SCIC", 0) == []


def test_allowed_mask_restricts_rows(index: LexicalIndex) -> None:
    allowed = np.array([True, False, True, True])
    assert [row for row, _ in index.search("SCIC", 10, allowed=allowed)] == [2]
    assert index.search("SCIC", 10, allowed=np.zeros(4, dtype=bool)) == []
    # k counts allowed rows only
    wide = LexicalIndex.build([_chunk(str(i), "coopérative") for i in range(50)])
    mask = np.zeros(50, dtype=bool)
    mask[[3, 17, 41]] = True
    assert [row for row, _ in wide.search("coopératives", 2, allowed=mask)] == [3, 17]
    with pytest.raises(ValueError):
        index.search("SCIC", 5, allowed=np.ones(3, dtype=bool))


def test_extra_texts_and_resources_count(chunks: list[Chunk]) -> None:
    extra = ["", "", "", "Guide sur l'économie sociale et solidaire"]
    ix = LexicalIndex.build(chunks, extra)
    assert [row for row, _ in ix.search("ESS", 5)] == [3]
    resource = Resource(
        id="d", title="Achat public", body="…", summary="Les PTCE", keywords=("QPV",)
    )
    assert resource_field_text(resource).split() == ["Les", "PTCE", "QPV"]
    ix = LexicalIndex.build(chunks, resources={"d": resource})
    assert [row for row, _ in ix.search("pôle territorial de coopération économique", 5)] == [3]
    with pytest.raises(ValueError):
        LexicalIndex.build(chunks, ["trop court"])


def test_save_load_round_trip(index: LexicalIndex, tmp_path: Path) -> None:
    index.save(tmp_path / "lexical")
    loaded = LexicalIndex.load(tmp_path / "lexical")
    assert len(loaded) == len(index) == 4
    for query in ("SCIC", "tiers-lieux ruraux", "subvention collectivités", "xyz"):
        assert loaded.search(query, 10) == index.search(query, 10)
        np.testing.assert_array_equal(loaded.scores(query), index.scores(query))
    mapped = LexicalIndex.load(tmp_path / "lexical", mmap=True)
    assert mapped.search("SCIC", 10) == index.search("SCIC", 10)


def test_empty_index_round_trip(tmp_path: Path) -> None:
    for ix in (LexicalIndex.build([]), LexicalIndex.build([_chunk("a", "le la les")])):
        assert ix.search("SCIC", 5) == []
        ix.save(tmp_path / str(len(ix)))
        loaded = LexicalIndex.load(tmp_path / str(len(ix)))
        assert len(loaded) == len(ix) and loaded.search("SCIC", 5) == []


def test_load_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        LexicalIndex.load(tmp_path / "nowhere")


def test_thesaurus_maps_everyday_and_english_wordings_to_the_base_vocabulary() -> None:
    groupement = set(analyze("les groupements d'employeurs"))
    assert groupement & set(analyze("partager un même salarié entre associations"))
    assert set(analyze("quartiers prioritaires")) & set(analyze("deprived urban neighbourhoods"))
    assert "financ" in analyze("where to find funding")
    assert set(analyze("économie circulaire")) <= set(analyze("une recyclerie de village"))


def test_thesaurus_adds_no_duplicate_token() -> None:
    tokens = analyze("subvention pour une recyclerie")
    assert len(tokens) == len(set(tokens))


# --- scoring and incremental builds -------------------------------------------------------------


def _bundled_chunks() -> tuple[list[Chunk], dict[str, Resource]]:
    from corpus.bundled import bundled_corpus_dir
    from corpus.chunking import ChunkingSettings, split_resource
    from corpus.loaders import load_corpus

    resources = {r.id: r for r in load_corpus(bundled_corpus_dir()).resources}
    out: list[Chunk] = []
    for r in resources.values():
        out.extend(split_resource(r, settings=ChunkingSettings()))
    return out, resources


def test_scores_are_lucene_bm25_as_bm25s_computes_them() -> None:
    import bm25s

    chunks, resources = _bundled_chunks()
    index = LexicalIndex.build(chunks, resources=resources)
    vocab: dict[str, int] = {}
    corpus = []
    for c in chunks:
        field = [c.title] * 2 + [resource_field_text(resources[c.resource_id]), c.text]
        corpus.append([vocab.setdefault(t, len(vocab)) for f in field for t in analyze(f)])
    reference = bm25s.BM25(method="lucene", k1=1.2, b=0.75)
    reference.index((corpus, vocab), show_progress=False)
    for question in ("financer une SCIC en milieu rural", "tiers-lieux et emploi", "RTES"):
        ids = [vocab[t] for t in dict.fromkeys(analyze(question)) if t in vocab]
        expected = np.asarray(reference.get_scores_from_ids(ids))
        np.testing.assert_allclose(index.scores(question), expected, rtol=1e-5, atol=1e-6)


def _arrays(index: LexicalIndex) -> dict[str, list[object]]:
    return {k: np.asarray(v).tolist() for k, v in index._arrays.items()} | {"vocab": index.vocab}


def test_incremental_build_writes_exactly_what_a_full_build_writes(tmp_path: Path) -> None:
    from embeddings.lexical import Reuse

    chunks, resources = _bundled_chunks()
    before = LexicalIndex.build(chunks, resources=resources)
    before.save(tmp_path / "before")
    previous = LexicalIndex.load(tmp_path / "before", mmap=True)
    # Edit: drop the first resource, change a chunk of the second, add a new resource.
    first = chunks[0].resource_id
    kept = [(i, c) for i, c in enumerate(chunks) if c.resource_id != first]
    edited_row = kept[3][0]
    changed = Chunk(**{**chunks[edited_row].__dict__, "text": "Une recyclerie coopérative."})
    added = _chunk("zz-new", "Un nouveau guide sur les PTCE et la commande publique.", "Nouveau")
    after: list[Chunk] = [changed if i == edited_row else c for i, c in kept] + [added]
    rows = np.asarray([-1 if i == edited_row else i for i, _ in kept] + [-1])
    resources = {rid: r for rid, r in resources.items() if rid != first}
    incremental = LexicalIndex.build(after, resources=resources, reuse=Reuse(previous, rows))
    full = LexicalIndex.build(after, resources=resources)
    assert _arrays(incremental) == _arrays(full)
    for question in ("recyclerie", "PTCE commande publique", "financer l'ESS en milieu rural"):
        assert incremental.search(question, 20) == full.search(question, 20)
    # The edited and the added rows are found by their new words.
    assert incremental.search("recyclerie", 1)[0][0] == after.index(changed)
    assert incremental.search("PTCE commande publique", 1)[0][0] == len(after) - 1


def test_counts_are_not_reused_from_another_analyzer(
    chunks: list[Chunk], monkeypatch: pytest.MonkeyPatch
) -> None:
    from embeddings import lexical
    from embeddings.lexical import Reuse

    previous = LexicalIndex.build(chunks)
    previous.fingerprint = "another-analyzer"
    # Claim every row is unchanged; with a stale fingerprint the rows are analyzed anyway.
    wrong = [_chunk(c.resource_id, "texte entièrement différent", "autre") for c in chunks]
    rebuilt = LexicalIndex.build(wrong, reuse=Reuse(previous, np.arange(len(chunks))))
    assert _arrays(rebuilt) == _arrays(LexicalIndex.build(wrong))
    monkeypatch.setattr(lexical, "analyzer_fingerprint", lambda: previous.fingerprint)
    reused = LexicalIndex.build(wrong, reuse=Reuse(previous, np.arange(len(chunks))))
    assert _arrays(reused) == _arrays(previous)


def test_empty_index_finds_nothing_and_round_trips(tmp_path: Path) -> None:
    index = LexicalIndex.empty(3)
    assert index.search("tiers-lieux", 5) == [] and len(index) == 3
    index.save(tmp_path / "lex")
    loaded = LexicalIndex.load(tmp_path / "lex")
    assert loaded.search("tiers-lieux", 5) == [] and len(loaded) == 3


def test_rows_without_any_term_score_nothing_and_count_in_the_average(
    chunks: list[Chunk],
) -> None:
    """Stopword-only rows (first and last) are rows of length 0: they change N and the
    average length like in bm25s, and are never returned."""
    empty = _chunk("vide", "le la les et")
    index = LexicalIndex.build([empty, *chunks, empty])
    assert len(index) == len(chunks) + 2
    found = index.search("SCIC", 10)
    assert found and all(0 < row <= len(chunks) for row, _ in found)
