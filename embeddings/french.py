"""A French analyzer for lexical (BM25) retrieval: `analyze(text) -> list[str]`.

Steps, in order:

1. lowercase, typographic apostrophes (’ ‘ ʼ) turned into ', elisions removed
   (« l'économie » → économie, « jusqu'à » → à);
2. split on anything that is not a letter or digit (« tiers-lieux » → tiers, lieux;
   « est-ce » → est, ce);
3. ESS acronyms (`ACRONYMS`) stay whole tokens, never stemmed; a plural « SCICs » gives `scic`;
4. stopwords (`STOPWORDS`, accent-folded) and one-letter words are dropped; numbers are kept;
5. Snowball French stemming (PyStemmer) on the accented word, then accent folding of the stem
   (é→e, ç→c, œ→oe). Stemming first matters: Snowball needs « ité », « ée » to find suffixes.
   A word typed without any accent gets « ite »/« ee » endings restored to « ité »/« ée » so
   « collectivite » and « collectivité » share the stem `collect`;
6. expansions of acronyms (`EXPANSIONS`) also emit the acronym token, in documents and queries
   alike, so « SCIC » in a question matches « société coopérative d'intérêt collectif » in a
   resource and the other way round;
7. a few synonyms officials use (`SYNONYMS`) add a shared token next to the word's own stem:
   « subvention » → subvent + financ. The word still matches itself best;
8. the ESS thesaurus (`embeddings.thesaurus`) adds the tokens of a canonical phrase when an
   everyday or English wording of a notion appears (« partager un salarié » → groupement
   d'employeurs).

Known limit: Snowball leaves the verb ending « -ent » (« financent » stays `financent`), since
stripping it would also cut nouns (« moment », « parent »).

A stem that happens to equal an acronym (« pâtes » → pat) gets a trailing `_` so it cannot
match the acronym (PAT, projet alimentaire territorial).
"""

from __future__ import annotations

import re
import threading
import unicodedata
from functools import lru_cache

import Stemmer

from corpus.text import strip_accents
from embeddings.thesaurus import concept_phrases

# Bumped whenever tokens change (analyzer steps, acronyms, synonyms, thesaurus): an index
# built by another version is refused at load and rebuilt by the next `build`.
ANALYZER_VERSION = 2

ACRONYMS: frozenset[str] = frozenset(
    {
        "ess", "scic", "scop", "cae", "ptce", "cress", "dla", "epci", "rtes", "siae", "iae",
        "qpv", "anct", "feader", "leader", "ccas", "cias", "pat", "geiq", "tzcld", "ea",
        "esat", "esus", "feder", "fse", "bpi", "bpifrance", "cdc", "adie", "urscop", "cget",
        "dreets", "ddets", "mdph", "rsa", "pcaet", "plui", "scot", "sem", "spl", "sarl",
        "amap", "crtes", "udes", "cpo", "opco", "pme", "tpe", "cma", "cci", "dreal", "draaf",
        "ars", "caf", "ehpad", "pia", "aap", "dsil", "detr", "fdva", "fonjep", "uriopss",
        "cnlrq", "rgpd",
    }
)  # fmt: skip
# Left out on purpose because they are also French words: AMI (ami), PLU (plu, and « plus »
# minus its s), CLIC (clic), SAS (sas).

_STOPWORDS_TEXT = """
    a à au aux avec ce ces cet cette ceci cela ça celui celle ceux celles chez comme dans de des
    du elle elles en entre et être eu il ils je la le les leur leurs lui ma mais me même mêmes mes
    moi mon ne ni nos notre nous on ou où par pas pour qu que qui quoi sa sans se ses si son sont
    sur ta te tes toi ton tu un une vos votre vous y est es suis sommes êtes été étais était
    étaient sera seront serait seraient soit ai as avons avez ont avait avaient aura auront
    aurait eux dont lorsque puisque quand comment pourquoi quel quels quelle quelles lequel
    laquelle lesquels lesquelles combien voici voilà ici là alors aussi donc car or puis très
    plus moins peu trop tout tous toute toutes autre autres tel telle tels telles chaque
    certains certaines plusieurs aucun aucune rien quelque quelques peut peuvent pouvez pouvons
    faut fait faire font non oui afin ainsi selon jusque jusqu lors depuis pendant avant après
    sous vers contre parmi via hui aujourd cas bien
"""
# « est-ce », « peut-on » are split at the hyphen into stopwords (est, ce, on).
STOPWORDS: frozenset[str] = frozenset(_STOPWORDS_TEXT.split())

# (pattern on the accent-folded, elision-free, space-joined tokens, acronym it stands for).
EXPANSIONS: tuple[tuple[str, str], ...] = (
    (r"societes? cooperatives? (?:d )?interet collectif", "scic"),
    (r"societes? cooperatives? (?:et )?participatives?", "scop"),
    (r"societes? cooperatives? ouvrieres? de production", "scop"),
    (r"cooperatives? (?:d )?activites? et (?:d )?emplois?", "cae"),
    (r"poles? territoria(?:l|ux) de cooperation economique", "ptce"),
    (r"economie sociale et solidaire", "ess"),
    (r"chambres? regionales? de (?:l )?economie sociale", "cress"),
    (r"dispositifs? loca(?:l|ux) (?:d )?accompagnement", "dla"),
    (r"quartiers? (?:de la )?politique de la ville", "qpv"),
    (r"quartiers? prioritaires?", "qpv"),
    (r"etablissements? publics? de cooperation intercommunale", "epci"),
    (r"intercommunalites?", "epci"),
    (r"communautes? (?:de communes|d agglomeration|urbaines?)", "epci"),
    (r"structures? (?:d )?insertion par (?:l )?activite economique", "siae"),
    (r"insertion par (?:l )?activite economique", "iae"),
    (r"projets? alimentaires? territoria(?:l|ux)", "pat"),
    (r"groupements? (?:d )?employeurs pour (?:l )?insertion et la qualification", "geiq"),
    (r"territoires? zero chomeurs? de longue duree", "tzcld"),
    (r"centres? communa(?:l|ux) (?:d )?action sociale", "ccas"),
    (r"agence nationale de la cohesion des territoires", "anct"),
    (r"reseau des collectivites territoriales pour une economie solidaire", "rtes"),
    (r"fonds europeen agricole pour le developpement rural", "feader"),
    (r"entreprises? solidaires? (?:d )?utilite sociale", "esus"),
    (r"entreprises? adaptees?", "ea"),
)

# word → extra tokens it also emits (stems of the group's head word). Kept deliberately small.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "argent": ("financ",),
    "subvention": ("financ",),
    "subventions": ("financ",),
    "subventionner": ("financ",),
    "fonds": ("financ",),
    "budget": ("financ",),
    "mairie": ("commun", "collect"),
    "mairies": ("commun", "collect"),
    "municipalité": ("commun", "collect"),
    "municipalités": ("commun", "collect"),
    "commune": ("collect",),
    "communes": ("collect",),
    "campagne": ("rural",),
    "campagnes": ("rural",),
}

_APOSTROPHES = ("’", "‘", "ʼ", "`")
_LIGATURES = str.maketrans({"œ": "oe", "Œ": "OE", "æ": "ae", "Æ": "AE", "ß": "ss"})
_ELISION = re.compile(r"\b(?:jusqu|lorsqu|puisqu|quoiqu|qu|[ldjnsmtc])'")
_WORD = re.compile(r"[^\W_]+")
# Matched on " word word … " with a literal leading space: re then scans for the literal prefix.
_EXPANSIONS = tuple((re.compile(rf" {p}(?= )"), a) for p, a in EXPANSIONS)


@lru_cache(maxsize=500_000)
def fold(word: str) -> str:
    """Remove accents and expand ligatures: « Œuvré » → « OEuvre » (case is kept); cached."""
    return strip_accents(word.replace("ß", "ss"))


_STEMMER_LOCK = threading.Lock()  # a PyStemmer object must not be used by two threads at once


@lru_cache(maxsize=1)
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("french")


def _stem(word: str) -> str:
    with _STEMMER_LOCK:
        return str(_stemmer().stemWord(word))


_FOLDED_STOPWORDS = frozenset(fold(w) for w in STOPWORDS)
_FOLDED_SYNONYMS = {fold(w): tokens for w, tokens in SYNONYMS.items()}


@lru_cache(maxsize=500_000)
def analyze_word(word: str) -> tuple[str, ...]:
    """Tokens for one lowercase, elision-free word (no spaces, no hyphens); cached."""
    folded = fold(word)
    if folded in ACRONYMS:
        return (folded,)
    if folded.endswith("s") and folded[:-1] in ACRONYMS and len(folded) > 3:
        return (folded[:-1],)
    if folded in _FOLDED_STOPWORDS or (len(folded) < 2 and not folded.isdigit()):
        return ()
    if folded.isdigit():
        return (folded,)
    to_stem = word
    if folded == word:  # typed without accents: restore the endings Snowball relies on
        to_stem = re.sub(r"ite(s?)$", r"ité\1", re.sub(r"ee(s?)$", r"ée\1", word))
    stem = fold(_stem(to_stem))
    if stem in ACRONYMS:
        stem += "_"
    extra = tuple(t for t in _FOLDED_SYNONYMS.get(folded, ()) if t != stem)
    return (stem, *extra)


def words(text: str) -> list[str]:
    """Lowercase, elision-free words of `text`, accents kept: « L’économie » → ['économie']."""
    lowered = unicodedata.normalize("NFC", text).lower()
    for apostrophe in _APOSTROPHES:
        lowered = lowered.replace(apostrophe, "'")
    return _WORD.findall(_ELISION.sub(" ", lowered))


def analyze(text: str, *, thesaurus: bool = True) -> list[str]:
    """BM25 tokens of `text` (see the module docstring for the steps).

    >>> analyze("Le financement des SCICs par l’économie sociale et solidaire en 2020")
    ['financ', 'scic', 'econom', 'social', 'solidair', '2020', 'ess']
    """
    ws = words(text)
    tokens = _base_tokens(ws)
    if ws and thesaurus:
        joined = f" {' '.join([fold(w) for w in ws])} "
        present = set(tokens)
        for phrase in concept_phrases(joined):
            extra = [t for t in _phrase_tokens(phrase) if t not in present]
            tokens.extend(extra)
            present.update(extra)
    return tokens


def _base_tokens(ws: list[str]) -> list[str]:
    """Word tokens plus acronym expansions (steps 1–7), without the thesaurus."""
    tokens = [t for w in ws for t in analyze_word(w)]
    if ws:
        joined = f" {' '.join([fold(w) for w in ws])} "
        for pattern, acronym in _EXPANSIONS:
            tokens.extend(acronym for _ in pattern.finditer(joined))
    return tokens


@lru_cache(maxsize=256)
def _phrase_tokens(phrase: str) -> tuple[str, ...]:
    """Distinct tokens of a thesaurus phrase (the thesaurus is not applied to itself)."""
    return tuple(dict.fromkeys(_base_tokens(words(phrase))))
