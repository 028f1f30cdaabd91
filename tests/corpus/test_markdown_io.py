"""Tests of the Markdown front matter format and of the export importer."""

from __future__ import annotations

from pathlib import Path

import pytest

from corpus.errors import InvalidResourceError
from corpus.importer import import_export
from corpus.markdown_io import resource_from_markdown, resource_to_markdown
from corpus.models import Download, Resource

NBSP = "\u00a0"
BODY = (
    f"Les collectivités «{NBSP}coopèrent{NBSP}» avec l’ESS{NBSP}: c’est utile.\n\n"
    "  • une liste\n  • à puces   \n\n---\n\nFin.\n"
)
RESOURCE = Resource(
    id="guide-ess",
    title="Guide : l’ESS « en pratique »",
    body=BODY,
    type="Ressources RTES",
    kind="Guide",
    summary="Première ligne   \n\nSeconde ligne",
    themes=("ruralité", "financement"),
    keywords=("lieux partagés",),
    date="2020-09-10",
    zone="Haute-Marne",
    url="https://example.org/a?b=c",
    private=True,
    downloads=(Download('le livret "Formes de coopération"', 28, "septembre 2020"),),
)


def test_round_trip_is_exact_for_body_and_fields() -> None:
    text = resource_to_markdown(RESOURCE)
    back = resource_from_markdown(text, "guide-ess.md")
    assert back.body == RESOURCE.body
    assert back.summary == "Première ligne\n\nSeconde ligne"
    for field in (
        "id",
        "title",
        "type",
        "kind",
        "themes",
        "keywords",
        "date",
        "zone",
        "url",
        "private",
        "downloads",
    ):
        assert getattr(back, field) == getattr(RESOURCE, field), field


def test_front_matter_is_readable() -> None:
    text = resource_to_markdown(RESOURCE)
    assert text.startswith("---\nid: guide-ess\ntitle: ")
    assert "summary: |-\n  Première ligne\n" in text
    assert "ruralité" in text and "\\u" not in text
    assert "\n---\n\nLes collectivités" in text


def test_crlf_and_bom_are_normalized() -> None:
    text = "\ufeff" + resource_to_markdown(RESOURCE).replace("\n", "\r\n")
    assert resource_from_markdown(text, "x.md").body == BODY


def test_body_is_text_after_front_matter() -> None:
    text = "---\ntitle: Titre\n---\n\n\nCorps  \n\n"
    assert resource_from_markdown(text, "dossier/mon fichier.md").body == "Corps  \n\n"
    assert resource_from_markdown(text, "dossier/mon fichier.md").id == "mon-fichier"


def test_yaml_dates_become_strings() -> None:
    resource = resource_from_markdown("---\ntitle: T\ndate: 2020-09-10\n---\nx", "a.md")
    assert resource.date == "2020-09-10"


def test_bad_yaml_names_the_problem() -> None:
    with pytest.raises(InvalidResourceError, match="YAML invalide"):
        resource_from_markdown("---\ntitle: [non fermé\n---\ncorps", "bad.md")


def test_missing_title_is_an_error() -> None:
    with pytest.raises(InvalidResourceError, match="title"):
        resource_from_markdown("---\nid: sans-titre\n---\ncorps", "sans-titre.md")


def test_unclosed_front_matter_is_an_error() -> None:
    with pytest.raises(InvalidResourceError, match="non fermé"):
        resource_from_markdown("---\ntitle: T\ncorps", "open.md")


def test_no_front_matter_uses_heading() -> None:
    resource = resource_from_markdown("# Économie « solidaire »\n\nLe corps.\n", "eco.md")
    assert resource.title == "Économie « solidaire »"
    assert resource.body == "Le corps.\n"


def test_import_export_writes_and_keeps(tmp_path: Path) -> None:
    export = tmp_path / "export.txt"
    export.write_text(
        "Site\n\nTitre à l’essai\n\nCorps de la ressource.\nType de ressource\nAutres\n"
        "Ressource privée\nNon\nRésumé\n\nCorps de la ressource.\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    first = import_export(export, out)
    assert [p.name for p in first.written] == ["titre-a-l-essai.md"]
    (out / "titre-a-l-essai.md").write_text("---\ntitle: édité\n---\nmain", encoding="utf-8")
    second = import_export(export, out)
    assert second.written == () and [p.name for p in second.skipped] == ["titre-a-l-essai.md"]
    assert "édité" in (out / "titre-a-l-essai.md").read_text(encoding="utf-8")
    third = import_export(export, out, overwrite=True)
    assert len(third.written) == 1
