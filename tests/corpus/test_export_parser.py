"""Tests of the page-export parser, on literal excerpts and on the real seed file."""

from __future__ import annotations

from pathlib import Path

import pytest

from corpus.errors import InvalidResourceError
from corpus.export_parser import parse_export
from corpus.models import Download

SEED = Path("/work/shared/seed/000_b177bc2baba99d65.txt")
NBSP = "\u00a0"

GARE_BODY = (
    "Le collectif GARE (Groupement des Acteurs Ruraux en Ecoactivité) né en 2012 à Vaillant"
    " en Haute-Marne, est un pôle d’acteurs de l’ESS basé sur le site d’une ancienne gare.\n"
    "\n"
    f"Téléchargez la fiche{NBSP}Déniché pour vous n°87 : Collectif GARE.\n"
    "\n"
    f"Mots-clés : ruralité, lieux partagés{NBSP}- Mai 2020\n"
    "\n"
    f"Site internet :{NBSP}https://collectifgare.wordpress.com/2016/11/22/qui-sommes-nous/{NBSP}\n"
    "\n"
    "Zone d'action : Haute-Marne\n"
)

EXCERPT = (
    "Réseau des collectivités Territoriales pour une Économie Sociale et Solidaire\n"
    "\n"
    "Fiches techniques TRESSONS : 5 formes de coopération adaptées aux besoins des territoires"
    " ruraux\n"
    "\n"
    "Ce livret regroupe des fiches techniques présentant cinq formes d’organisation.\n"
    "\n"
    'Téléchargez le livret "Formes de coopération" (28 pages - septembre 2020)\n'
    "\n"
    "Retrouvez également les fiches techniques \"4 leviers d'actions pour renforcer l'ESS dans"
    ' les territoires ruraux".\n'
    "\n"
    "Catégorie\n"
    "Type de ressource\n"
    "Ressources RTES\n"
    "Ressource privée\n"
    "Non\n"
    "Résumé\n"
    "\n"
    "Ce livret regroupe des fiches techniques présentant cinq formes d’organisation.\n"
    "\n"
    'Téléchargez le livret "Formes de coopération" (28 pages - septembre 2020)\n'
    "\n"
    "Retrouvez également les fiches techniques \"4 leviers d'actions pour renforcer l'ESS dans"
    ' les territoires ruraux".\n'
    "\n"
    "Fiche Déniché pour vous n°87 : Collectif GARE\n"
    "\n"
    f"{GARE_BODY}"
    "\n"
    "Type de ressource\n"
    "Ressources RTES\n"
    "Ressource privée\n"
    "Oui\n"
    "Résumé\n"
    "\n"
    f"{GARE_BODY.replace('Mai 2020', 'Mai 2020' + NBSP)}"
    f"\n{NBSP}\n"
)


@pytest.fixture(scope="module")
def excerpt() -> list:
    return parse_export(EXCERPT, source="export.txt")


def test_excerpt_splits_two_resources(excerpt: list) -> None:
    assert [r.title for r in excerpt] == [
        "Fiches techniques TRESSONS : 5 formes de coopération adaptées aux besoins des"
        " territoires ruraux",
        "Fiche Déniché pour vous n°87 : Collectif GARE",
    ]


def test_repeated_summary_is_dropped_from_body(excerpt: list) -> None:
    first = excerpt[0]
    assert first.body.count("Ce livret regroupe") == 1
    assert "Résumé" not in first.body and "Type de ressource" not in first.body
    assert first.summary.startswith("Ce livret regroupe des fiches techniques")
    assert "Fiche Déniché" not in first.summary


def test_metadata_and_accents_kept(excerpt: list) -> None:
    first, gare = excerpt
    assert first.type == "Ressources RTES" and first.private is False
    assert gare.private is True
    assert "pôle d’acteurs de l’ESS" in gare.body
    assert f"fiche{NBSP}Déniché" in gare.body
    assert first.source_path == "export.txt"


def test_downloads_and_date(excerpt: list) -> None:
    first = excerpt[0]
    assert first.downloads == (
        Download('le livret "Formes de coopération"', pages=28, date="septembre 2020"),
    )
    assert first.date == "2020-09"
    assert first.kind == "Fiche technique"
    assert first.id.startswith("fiches-techniques-tressons-5-formes-de-cooperation")
    assert len(first.id) <= 80


def test_keywords_zone_url(excerpt: list) -> None:
    gare = excerpt[1]
    assert gare.keywords == ("ruralité", "lieux partagés")
    assert gare.date == "2020-05"
    assert gare.zone == "Haute-Marne"
    assert gare.url == "https://collectifgare.wordpress.com/2016/11/22/qui-sommes-nous/"
    assert gare.kind == "Fiche initiative"
    assert "tiers-lieux" not in gare.themes or "ruralité" in gare.themes


def test_crlf_is_normalized() -> None:
    resources = parse_export(EXCERPT.replace("\n", "\r\n"))
    assert [r.body for r in resources] == [r.body for r in parse_export(EXCERPT)]
    assert all("\r" not in r.body for r in resources)


def test_full_date_from_body() -> None:
    text = (
        "Site\n\nWEBINAIRE ESS & RURALITÉS\n\nUn webinaire a eu lieu le jeudi 10 septembre"
        " 2020.\nType de ressource\nAutres\nRessource privée\nNon\nRésumé\n\nUn webinaire a eu"
        " lieu le jeudi 10 septembre 2020.\n"
    )
    (resource,) = parse_export(text)
    assert resource.date == "2020-09-10"
    assert resource.kind == "Compte rendu de webinaire"
    assert resource.type == "Autres"


@pytest.mark.parametrize("text", ["", "   \n\n", "Site\n\nTitre\n\nUn texte sans métadonnées.\n"])
def test_bad_input_raises(text: str) -> None:
    with pytest.raises(InvalidResourceError):
        parse_export(text, source="mauvais.txt")


@pytest.mark.skipif(not SEED.exists(), reason="seed export not available")
def test_real_seed_file() -> None:
    resources = parse_export(SEED.read_text(encoding="utf-8"), source=str(SEED))
    assert [r.title for r in resources] == [
        "Mode d'emploi ESS & ruralités - TRESSONS",
        "Pratiques informelles - Mise en débat par Résovilles",
        "Fiches techniques TRESSONS : 5 formes de coopération adaptées aux besoins des"
        " territoires ruraux",
        "Fiches techniques TRESSONS : 4 leviers d'actions pour renforcer l'ESS dans les"
        " territoires ruraux",
        "WEBINAIRE ESS & RURALITÉS - CONNAÎTRE L'ÉCOSYSTÈME D'ACCOMPAGNEMENT ET DE FINANCEMENT",
        "Pratiques de mobilisation des programmes de développement rural et des outils de"
        " contractualisation en faveur de l'ESS",
        "Fiche Déniché pour vous n°87 : Collectif GARE",
        "Panorama de projets d'ESS dans les territoires ruraux - TRESSONS",
        'RepèrESS "Développer l\'ESS dans les quartiers politique de la ville"',
    ]
    by_kind = {r.kind for r in resources}
    assert {
        "Guide",
        "Fiche technique",
        "Compte rendu de webinaire",
        "Fiche initiative",
        "Panorama",
        "Compte rendu de débat",
        "Étude",
    } <= by_kind
    for resource in resources:
        first_paragraph = resource.body.split("\n\n")[0]
        assert resource.body.count(first_paragraph) == 1, resource.id
        assert "Ressource privée" not in resource.body
    reperess = resources[-1]
    assert "ou commander la publication auprès de animation@rtes.fr" in reperess.summary
    assert "animation@rtes.fr" not in reperess.body
    assert reperess.downloads[0].pages == 94 and reperess.date == "2020-02"
    informal = resources[1]
    assert informal.type == "Autres"
    assert "l’économie informelle" in informal.body
    assert len({r.id for r in resources}) == 9
