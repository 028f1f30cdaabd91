"""Small rule-based helpers that derive metadata from French resource text.

Slugs for stable ids, French dates, downloads («Téléchargez le livret … (28 pages - septembre
2020)»), labelled fields («Zone d'action : …», «Site internet : …», «Mots-clés : …»), the
document kind inferred from the title and a few themes. Every rule is deliberately simple:
staff hand-fix the bundled Markdown files when a rule gets something wrong.
"""

from __future__ import annotations

import logging
import re
import unicodedata

from corpus.models import Download
from corpus.text import FRENCH_MONTHS, strip_accents

logger = logging.getLogger(__name__)

# month name → number, with and without accents («fevrier» as typed on some pages)
MONTHS: dict[str, int] = {
    **{name: i for i, name in enumerate(FRENCH_MONTHS, 1)},
    **{strip_accents(name): i for i, name in enumerate(FRENCH_MONTHS, 1)},
}
_MONTH_RE = "|".join(sorted(MONTHS, key=len, reverse=True))
_SPACE = r"[ \t\u00a0\u202f]"
_FULL_DATE = re.compile(
    rf"\b(\d{{1,2}})(?:er)?{_SPACE}+({_MONTH_RE}){_SPACE}+(\d{{4}})\b", re.IGNORECASE
)
_MONTH_YEAR = re.compile(rf"\b({_MONTH_RE}){_SPACE}+(\d{{4}})\b", re.IGNORECASE)
_ISO_DATE = re.compile(r"\b(\d{4})-(\d{2})(?:-(\d{2}))?")

_DOWNLOAD = re.compile(
    r"(?:T[ée]l[ée]chargez|t[ée]l[ée]charger)\s+(?P<label>[^\n(]+?)\s*[-–]?\s*"
    r"(?:\((?P<paren>[^)\n]*)\))?\s*[.,]?[ \t\u00a0]*$",
    re.MULTILINE,
)
_PAGES = re.compile(r"(\d+)\s*pages?", re.IGNORECASE)
_KEYWORDS = re.compile(r"^Mots-cl[ée]s\s*:\s*(?P<value>.+)$", re.MULTILINE | re.IGNORECASE)
_ZONE = re.compile(r"^Zone d[’']action\s*:\s*(?P<value>.+)$", re.MULTILINE | re.IGNORECASE)
_URL = re.compile(r"^Site internet\s*:\s*(?P<value>https?://\S+)", re.MULTILINE | re.IGNORECASE)

# (kind, patterns looked for in the lower-cased title), first match wins.
_KIND_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Compte rendu de webinaire", ("webinaire",)),
    ("Compte rendu de débat", ("mise en débat", "débat")),
    ("Fiche initiative", ("déniché pour vous",)),
    ("Fiche technique", ("fiches techniques", "fiche technique")),
    ("Guide", ("mode d'emploi", "mode d’emploi", "repèress", "guide")),
    ("Panorama", ("panorama",)),
    ("Étude", ("étude", "etude")),
)

# theme -> regular expressions searched in the lower-cased text.
_THEME_RULES: dict[str, tuple[str, ...]] = {
    "ruralité": (r"ruralit", r"\bruraux\b", r"\brurale?s?\b"),
    "financement": (r"\bfinanc",),
    "coopération": (r"coopérat", r"\bscic\b", r"mutualisation"),
    "politique de la ville": (r"politique de la ville", r"quartiers? prioritaires?"),
    "économie informelle": (r"informel",),
    "accompagnement": (r"accompagn",),
    "tiers-lieux": (r"tiers[- ]lieux", r"lieux partagés"),
    "innovation sociale": (r"innovations? sociales?",),
    "développement local": (r"développement (?:local|rural)", r"contractualisation"),
    "emploi": (r"(?<!mode d')(?<!mode d’)\bemplois?\b", r"groupements? d[’']employeurs"),
}


def slugify(text: str, max_length: int = 80) -> str:
    """Return an ascii, lower-case, hyphenated slug of `text`, cut at a word boundary."""
    text = re.sub(r"[’ʼ‘`´]", " ", text)  # «l’ESS» -> l-ess, like «l'ESS»
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    if len(slug) > max_length:
        cut = slug[:max_length]
        slug = cut.rsplit("-", 1)[0] if "-" in cut else cut
    return slug or "ressource"


def parse_french_date(text: str) -> str | None:
    """Turn «10 septembre 2020» into "2020-09-10", «Mai 2020» into "2020-05", else None."""
    full = _FULL_DATE.search(text)
    if full:
        day, month, year = int(full.group(1)), MONTHS[full.group(2).lower()], full.group(3)
        if 1 <= day <= 31:
            return f"{year}-{month:02d}-{day:02d}"
    month_year = _MONTH_YEAR.search(text)
    if month_year:
        return f"{month_year.group(2)}-{MONTHS[month_year.group(1).lower()]:02d}"
    return None


def normalize_date(value: str) -> str | None:
    """Normalize a date written as ISO ("2020-09-10T…", "2020-09", "2020") or in French."""
    value = value.strip()
    iso = _ISO_DATE.search(value)
    if iso:
        year, month, day = iso.groups()
        return f"{year}-{month}-{day}" if day else f"{year}-{month}"
    if re.fullmatch(r"\d{4}", value):
        return value
    return parse_french_date(value)


def first_full_date(text: str) -> str | None:
    """The first complete French date of `text` («le jeudi 10 septembre 2020») as ISO."""
    match = _FULL_DATE.search(text)
    if not match:
        return None
    return parse_french_date(match.group(0))


def extract_downloads(body: str) -> tuple[Download, ...]:
    """Find «Téléchargez <label> (<n> pages - <mois année>)» sentences in `body`."""
    downloads: list[Download] = []
    for match in _DOWNLOAD.finditer(body):
        label = match.group("label").strip(" \u00a0-–.:")
        paren = match.group("paren") or ""
        pages_match = _PAGES.search(paren)
        date_match = _MONTH_YEAR.search(paren)
        downloads.append(
            Download(
                label=label,
                pages=int(pages_match.group(1)) if pages_match else None,
                date=date_match.group(0).replace("\u00a0", " ") if date_match else None,
            )
        )
    return tuple(downloads)


def extract_keywords(body: str) -> tuple[tuple[str, ...], str | None]:
    """Split «Mots-clés : ruralité, lieux partagés - Mai 2020» into keywords and ISO date."""
    match = _KEYWORDS.search(body)
    if not match:
        return (), None
    value = match.group("value").strip(" \t\u00a0")
    date = None
    parts = re.split(
        rf"{_SPACE}*[-–]{_SPACE}*(?=(?:{_MONTH_RE}){_SPACE}+\d{{4}})", value, flags=re.IGNORECASE
    )
    if len(parts) > 1:
        value, date = parts[0], parse_french_date(parts[1])
    keywords = tuple(k.strip(" \t\u00a0") for k in value.split(",") if k.strip(" \t\u00a0"))
    return keywords, date


def extract_zone(body: str) -> str | None:
    """The value of «Zone d'action : …», if any."""
    match = _ZONE.search(body)
    return match.group("value").strip(" \t\u00a0") or None if match else None


def extract_url(body: str) -> str | None:
    """The address of «Site internet : https://…», if any."""
    match = _URL.search(body)
    return match.group("value").strip(" \t\u00a0") if match else None


def infer_kind(title: str, body: str = "") -> str:
    """What the document is, from its title (fallback: an «étude» announced in the opening)."""
    lowered = title.lower()
    for kind, patterns in _KIND_RULES:
        if any(pattern in lowered for pattern in patterns):
            return kind
    if re.search(r"\bune étude\b", body[:400].lower()):
        return "Étude"
    return "Ressource"


def tag_themes(title: str, text: str, *, min_hits: int = 2) -> tuple[str, ...]:
    """Tag themes whose patterns occur at least `min_hits` times (a title hit counts double)."""
    lowered_title, lowered = title.lower(), text.lower()
    themes: list[str] = []
    for theme, patterns in _THEME_RULES.items():
        hits = sum(
            len(re.findall(p, lowered)) + 2 * len(re.findall(p, lowered_title)) for p in patterns
        )
        if hits >= min_hits:
            themes.append(theme)
    return tuple(themes)


def collapse_blank_lines(text: str) -> str:
    """Strip line ends, collapse runs of blank lines to one, trim the ends."""
    lines = [line.rstrip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")
