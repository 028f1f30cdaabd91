"""Tests of the pure HTML rendering: escaping, highlight spans, links, resource viewer."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from assistant.models import Answer, Citation
from corpus.models import Resource
from ui.render import (
    PASSAGE_ANCHOR,
    answer_html,
    citations_html,
    french_date,
    resource_html,
    safe_url,
    spans_html,
)

ATTACKS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[clic](javascript:alert(1))",
    '"><svg onload=alert(1)>',
    "**gras** <a href='javascript:alert(1)'>x</a> ![i](x)",
]

BODY = (
    "Introduction générale.\n\n"
    "Les sociétés coopératives d’intérêt collectif (SCIC) associent les collectivités. "
    "Elles financent l’ESS en milieu rural.\n\nConclusion « à suivre »."
)
PASSAGE_START = BODY.index("Les sociétés")
PASSAGE_END = BODY.index("\n\nConclusion")
PASSAGE = BODY[PASSAGE_START:PASSAGE_END]


def _citation(**changes: object) -> Citation:
    values: dict[str, object] = dict(
        n=1,
        resource_id="scic",
        title="Fiche « SCIC » d’intérêt collectif",
        type="Ressources RTES",
        kind="Fiche technique",
        date="2020-09",
        url="https://www.rtes.fr/scic",
        passage=PASSAGE,
        start=PASSAGE_START,
        end=PASSAGE_END,
        score=0.873,
        highlights=((PASSAGE.index("coopératives"), PASSAGE.index("coopératives") + 12),),
        used=((0, PASSAGE.index(" Elles")),),
    )
    values.update(changes)
    return Citation(**values)  # type: ignore[arg-type]


def _resource(**changes: object) -> Resource:
    values: dict[str, object] = dict(
        id="scic",
        title="Fiche SCIC",
        body=BODY,
        type="Ressources RTES",
        kind="Fiche technique",
        summary="Résumé\nsur deux lignes",
        themes=("coopération",),
        date="2020-09-10",
        zone="Haute-Marne",
        url="https://www.rtes.fr/scic",
    )
    values.update(changes)
    return Resource(**values)  # type: ignore[arg-type]


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


ALLOWED_TAGS = {
    "div",
    "span",
    "sup",
    "a",
    "mark",
    "strong",
    "blockquote",
    "br",
    "p",
    "article",
    "h3",
    "dl",
    "dt",
    "dd",
}
ALLOWED_ATTRS = {"class", "id", "href", "title", "rel", "target", "style"}


def _no_live_markup(rendered: str) -> None:
    """Parsed as a browser would, `rendered` holds only our own tags and attributes."""
    parser = _Tags()
    parser.feed(rendered)
    parser.close()
    for tag, attrs in parser.tags:
        assert tag in ALLOWED_TAGS, tag
        for name, value in attrs:
            assert name in ALLOWED_ATTRS, (tag, name)
            if name == "href":
                assert value and (value.startswith("#source-") or value.startswith("http")), value
            if name == "style":
                assert re.fullmatch(r"width:\d+%", value or ""), value


# ---------------------------------------------------------------------- spans helper


def test_spans_html_escapes_before_wrapping() -> None:
    text = "a <b> & c"
    assert spans_html(text, [([(2, 5)], "<mark>", "</mark>")]) == "a <mark>&lt;b&gt;</mark> &amp; c"


def test_spans_html_nests_overlapping_layers() -> None:
    text = "abcdefgh"
    out = spans_html(text, [([(0, 6)], "<u>", "</u>"), ([(4, 8)], "<i>", "</i>")])
    assert out == "<u>abcd</u><u><i>ef</i></u><i>gh</i>"


def test_spans_html_clips_bad_spans_and_converts_newlines() -> None:
    out = spans_html("ab\r\ncd", [([(-5, 1), (3, 99), (2, 2)], "<m>", "</m>")])
    assert out == "<m>a</m>b<m><br>cd</m>"


def test_highlights_land_on_accented_words_and_apostrophes() -> None:
    text = "L’économie sociale et l’ESS à Saint-Étienne"
    spans = [
        (text.index("économie"), text.index("économie") + len("économie")),
        (text.index("l’ESS"), text.index("l’ESS") + len("l’ESS")),
        (text.index("Saint-Étienne"), len(text)),
    ]
    out = spans_html(text, [(spans, "<mark>", "</mark>")])
    assert re.findall(r"<mark>(.*?)</mark>", out) == ["économie", "l’ESS", "Saint-Étienne"]
    assert out.startswith("L’<mark>")


# ---------------------------------------------------------------------- answer


def test_answer_markers_become_badges_and_stay_visible() -> None:
    answer = Answer(
        question="q",
        text="Première phrase. [1]\nDeuxième [2] et [9].",
        abstained=False,
        citations=(_citation(), _citation(n=2, title="Autre")),
    )
    out = answer_html(answer)
    assert '<sup class="cite-badge"><a href="#source-1"' in out
    assert 'title="Fiche « SCIC » d’intérêt collectif"' in out
    assert 'class="cite-n1"><span class="visually-hidden">source 1 : Fiche' in out
    assert 'class="cite-n2"><span class="visually-hidden">source 2 : Autre</span></a></sup>' in out
    assert "[9]." in out and "#source-9" not in out  # no such source: left as text
    assert "<br>" in out


def test_answer_notices_are_shown_above() -> None:
    answer = Answer(
        question="q",
        text="Texte [1]",
        abstained=False,
        citations=(_citation(),),
        notices=("Votre question était très longue (3000 caractères) : tronquée.",),
    )
    out = answer_html(answer)
    assert out.index('class="notice"') < out.index('class="answer"')
    assert "très longue" in out


@pytest.mark.parametrize("attack", ATTACKS)
def test_answer_text_and_notices_are_inert(attack: str) -> None:
    answer = Answer(
        question=attack,
        text=f"{attack} [1]",
        abstained=False,
        citations=(_citation(title=attack),),
        notices=(attack,),
    )
    out = answer_html(answer)
    _no_live_markup(out)
    if "<script>" in attack:
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out


# ---------------------------------------------------------------------- citations


def test_citation_card_fields() -> None:
    out = citations_html(
        Answer(question="q", text="t [1]", abstained=False, citations=(_citation(),))
    )
    assert 'id="source-1"' in out
    assert "Fiche « SCIC » d’intérêt collectif" in out
    assert "Fiche technique" in out and "septembre 2020" in out
    assert (
        '<a class="original-link" href="https://www.rtes.fr/scic" '
        'rel="noopener noreferrer" target="_blank">Lien vers l\'original</a>'
    ) in out
    assert "Pertinence : 87\u00a0%" in out


def test_citation_type_falls_back_to_export_type() -> None:
    out = citations_html(
        Answer(question="q", text="t", abstained=False, citations=(_citation(kind=""),))
    )
    assert "Ressources RTES" in out


def test_passage_marks_question_words_and_emphasizes_used_sentence() -> None:
    out = citations_html(Answer(question="q", text="t", abstained=False, citations=(_citation(),)))
    passage = re.search(r'<blockquote class="passage">(.*?)</blockquote>', out).group(1)
    assert re.findall(r"<mark>(.*?)</mark>", passage) == ["coopératives"]
    used = re.findall(r'<strong class="used">(.*?)</strong>', passage)
    assert "".join(used).replace("<mark>", "").replace("</mark>", "") == (
        "Les sociétés coopératives d’intérêt collectif (SCIC) associent les collectivités."
    )
    assert "Elles financent" in passage.split("</strong>")[-1]


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        " javascript:alert(1)",
        "data:text/html,x",
        "vbscript:x",
        "//evil.example",
        "http://",
        "java\nscript:alert(1)",
        "",
        None,
    ],
)
def test_unsafe_links_are_dropped(url: str | None) -> None:
    assert safe_url(url) is None
    out = citations_html(
        Answer(question="q", text="t", abstained=False, citations=(_citation(url=url),))
    )
    assert "Lien vers l'original" not in out
    assert "href" not in out.replace('href="#', "")


def test_link_with_quotes_is_escaped() -> None:
    url = 'https://example.org/a"onmouseover="alert(1)'
    out = citations_html(
        Answer(question="q", text="t", abstained=False, citations=(_citation(url=url),))
    )
    assert 'href="https://example.org/a&quot;onmouseover=&quot;alert(1)"' in out
    _no_live_markup(out)


@pytest.mark.parametrize("attack", ATTACKS)
def test_citation_fields_are_inert(attack: str) -> None:
    passage = f"Début {attack} fin."
    citation = _citation(
        title=attack,
        kind=attack,
        date=attack,
        passage=passage,
        highlights=((0, 5), (6, 6 + len(attack))),
        used=((0, len(passage)),),
    )
    out = citations_html(
        Answer(question=attack, text=attack, abstained=False, citations=(citation,))
    )
    _no_live_markup(out)


def test_no_answer_and_no_citations() -> None:
    assert "s'afficheront" in citations_html(None)
    assert "Aucune source" in citations_html(Answer(question="q", text="t", abstained=True))


def test_french_date() -> None:
    assert french_date("2020-09-10") == "10 septembre 2020"
    assert french_date("2021-08-01") == "1er août 2021"
    assert french_date("2020-02") == "février 2020"
    assert french_date("2020") == "2020"
    assert french_date(None) == ""
    assert french_date("automne 2020") == "automne 2020"


# ---------------------------------------------------------------------- resource viewer


def test_resource_viewer_highlights_exactly_the_cited_passage() -> None:
    out = resource_html(_resource(), _citation())
    marked = re.findall(r'<mark class="cited"[^>]*>(.*?)</mark>', out)
    text = "".join(marked)
    text = re.sub(r"</?(strong|mark)[^>]*>", "", text)
    assert text == PASSAGE.replace("\n", "<br>")
    assert out.count(f'id="{PASSAGE_ANCHOR}"') == 1
    before = out.split(f'id="{PASSAGE_ANCHOR}"')[0]
    assert "Introduction générale.<br><br>" in before
    assert "Conclusion « à suivre »." in out.split("</mark>")[-1]
    assert '<strong class="used">' in out


def test_resource_viewer_metadata_and_summary() -> None:
    out = resource_html(_resource())
    assert "<h3" in out and "Fiche SCIC" in out
    assert "10 septembre 2020" in out and "Haute-Marne" in out and "coopération" in out
    assert "Résumé<br>sur deux lignes" in out
    assert "Lien vers l'original" in out
    assert "<mark" not in out  # no citation, no highlight


def test_resource_viewer_falls_back_to_passage_text_when_offsets_moved() -> None:
    moved = _resource(body="Nouvelle intro.\n\n" + BODY)
    out = resource_html(moved, _citation())
    marked = re.sub(
        r"</?(strong|mark)[^>]*>",
        "",
        "".join(re.findall(r'<mark class="cited"[^>]*>(.*?)</mark>', out)),
    )
    assert marked == PASSAGE.replace("\n", "<br>")


def test_resource_viewer_ignores_citation_of_other_resource() -> None:
    out = resource_html(_resource(), _citation(resource_id="autre"))
    assert "<mark" not in out


@pytest.mark.parametrize("attack", ATTACKS)
def test_resource_viewer_is_inert(attack: str) -> None:
    body = f"Avant. {attack} Après."
    resource = _resource(
        title=attack,
        body=body,
        summary=attack,
        themes=(attack,),
        zone=attack,
        keywords=(attack,),
        kind=attack,
        url=f"javascript:{attack}",
    )
    citation = _citation(
        passage=attack,
        start=body.index(attack),
        end=body.index(attack) + len(attack),
        used=((0, len(attack)),),
    )
    out = resource_html(resource, citation)
    _no_live_markup(out)
    assert "Lien vers l'original" not in out
    if "<script>" in attack:
        assert "&lt;script&gt;" in out


def test_low_confidence_answer_is_shown_distinctly() -> None:
    from assistant.compose import LOW_CONFIDENCE

    answer = Answer(
        question="q",
        text="t [1]",
        abstained=False,
        citations=(_citation(),),
        notices=(LOW_CONFIDENCE,),
        outcome="low_confidence",
    )
    html_out = answer_html(answer)
    assert 'class="notice low-confidence"' in html_out and "Réponse incertaine" in html_out
    assert 'class="answer low-confidence"' in html_out
    assert "Remarque" not in html_out
