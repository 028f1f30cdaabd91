"""A small ESS thesaurus: everyday, English and institutional wordings → the base's vocabulary.

Officials describe ESS notions in their own words (« partager un salarié » for a *groupement
d'employeurs*, « recyclerie » for *économie circulaire*, « deprived neighbourhoods » for the
*quartiers prioritaires*). Each entry maps a pattern, matched on the accent-folded lowercase
word sequence, to a canonical French phrase; the analyzer adds the canonical phrase's tokens,
in documents and queries alike, so both sides meet on the same terms. Entries describe notions
of the field, not particular resources; keep them general and explainable.
"""

from __future__ import annotations

import re

# (pattern on folded words separated by single spaces, canonical French phrase)
_ENTRIES: tuple[tuple[str, str], ...] = (
    # Economy and organisations of the field
    (
        r"social (?:and solidarity |solidarity )?econom\w*|solidarity econom\w*|economie solidaire|"
        r"economie sociale|entreprises? sociales?|entrepreneurs? sociaux|social enterprises?|"
        r"social business\w*",
        "économie sociale et solidaire",
    ),
    (
        r"groupements? (?:d )?employeurs?|employer groups?|partag\w* (?:\w+ ){0,2}"
        r"(?:salaries?|emplois?|postes?|employes?)|salaries? partages?|temps partages?|"
        r"mutualis\w* (?:\w+ ){0,2}(?:emplois?|salaries?|postes?)|shared (?:staff|employees?)",
        "groupement d'employeurs mutualisation emploi",
    ),
    (
        r"marques? (?:de |du )?(?:pays|territoire|territoriale)|territorial brands?",
        "marque de Pays",
    ),
    (
        r"cooperatives?|cooperation|cooperer|cooperate|working together|travailler ensemble|"
        r"mutualis\w*",
        "coopération",
    ),
    (
        r"tiers lieux?|third places?|coworking|lieux? partages?|espaces? partages?|friches?|"
        r"lieux? (?:multi )?activites?|lieux? hybrides?",
        "tiers-lieux lieux partagés",
    ),
    # Territories
    (
        r"countryside|rural areas?|rural|villages?|bourgs?|campagnes?|petites? communes?|"
        r"zones? rurales?|hameaux?",
        "territoires ruraux ruralité",
    ),
    (
        r"deprived (?:urban )?neighbou?rhoods?|disadvantaged (?:urban )?neighbou?rhoods?|"
        r"urban neighbou?rhoods?|poor neighbou?rhoods?|quartiers? (?:populaires?|sensibles?|"
        r"defavorises?|prioritaires?)|banlieues?|cites? hlm|politique de la ville",
        "quartiers politique de la ville",
    ),
    (
        r"local (?:councils?|governments?|authorit\w*)|municipalit\w*|mairies?|comcom|"
        r"communautes? de communes|intercommunalit\w*|agglomerations?|conseils? (?:departemental|"
        r"regional|communautaire|municipal)\w*|elus? locaux|local officials?|councils?",
        "collectivités locales",
    ),
    # Levers
    (
        r"argent|financ\w*|fund\w*|grants?|subsid\w*|subventions?|fonds|budgets?|money|"
        r"lever des fonds|crowdfunding|financement participatif|investisseurs?|preteurs?|"
        r"banques?|prets?|loans?",
        "financement",
    ),
    (
        r"accompagn\w*|support\w*|incubat\w*|conseils? aux porteurs|aider (?:les |des )?porteurs|"
        r"mentor\w*|business support|orientation|orienter",
        "accompagnement",
    ),
    (
        r"s installer|s etablir|installation|attirer|attract\w*|settle\w*|nouveaux arrivants|"
        r"newcomers?|accueil\w* (?:de |des )?(?:nouveaux|porteurs|entrepreneurs|activites)",
        "installation",
    ),
    (
        r"habitants|citoyens?|citizens?|residents?|population|participation citoyenne|"
        r"projets? citoyens?|mobilis\w*",
        "habitants mobilisation citoyens",
    ),
    (
        r"commerces? (?:de proximite|rural\w*)|derniers? commerces?|bistrots?|cafes? (?:associatifs?|"
        r"de village)|epiceries?|boulangeries?|village shops?|rural shops?|local shops?|"
        r"superettes?|multiservices?",
        "commerces de proximité",
    ),
    # Sectors
    (
        r"recycleries?|ressourceries?|reemploi|recyclage|recycl\w*|reuse|repair\w*|reparation|"
        r"seconde main|dechets?|waste|upcycl\w*|circular econom\w*|economie circulaire",
        "économie circulaire",
    ),
    (
        r"food|alimentation|alimentaire|circuits? courts?|producteurs? locaux|agriculteurs?|"
        r"maraich\w*|amap|cantines?|short supply chains?",
        "alimentation durable circuits courts",
    ),
    (
        r"mobilit\w*|transports?|covoiturage|car ?sharing|autopartage|garages? solidaires?",
        "mobilité",
    ),
    (
        r"energ\w*|renewables?|solaires?|eolien\w*|photovolta\w*|renouvelables?",
        "transition énergétique",
    ),
    (
        r"emplois? locaux|local jobs?|jobs?|employment|insertion|chomeurs?|chomage|unemploy\w*",
        "emploi",
    ),
    # Informal economy
    (
        r"informal econom\w*|informal|non declar\w*|au noir|debrouille|sans statut|"
        r"travail dissimule|undeclared|economie populaire",
        "économie informelle pratiques informelles",
    ),
    # Kinds of resources
    (
        r"webinars?|webinaires?|visio\w*|conferences? en ligne|online (?:seminars?|events?)",
        "webinaire",
    ),
    (r"studies|study|studied|etudes?|research|recherches?|analyses?", "étude"),
    (
        r"examples?|exemples?|initiatives?|retours? d experiences?|temoignages?|inspirant\w*|"
        r"projets? (?:concrets?|inspirants?)|case studies",
        "initiatives exemples témoignages",
    ),
)

PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(rf"(?<= )(?:{p})(?= )"), phrase) for p, phrase in _ENTRIES
)


def concept_phrases(folded_joined: str) -> list[str]:
    """Canonical phrases triggered in `folded_joined` (« word word … » with outer spaces),
    once per entry that matches."""
    return [phrase for pattern, phrase in PATTERNS if pattern.search(folded_joined)]
