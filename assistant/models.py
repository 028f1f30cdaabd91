"""The records of the answering stage: `Filters`, `Hit`, `ResourceHit`, `Citation`, `Answer`."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from corpus.errors import ConfigurationError
from corpus.models import Chunk, Resource
from corpus.text import fold

_DATE_RE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")


def valid_date(value: str) -> bool:
    """AAAA, AAAA-MM or AAAA-MM-JJ naming a real month or day."""
    import datetime as dt

    if not _DATE_RE.match(value):
        return False
    parts = [int(p) for p in value.split("-")]
    try:
        dt.date(parts[0], parts[1] if len(parts) > 1 else 1, parts[2] if len(parts) > 2 else 1)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Filters:
    """Metadata filters; an empty field does not filter. Comparisons ignore case and accents.

    `types` matches the resource's `type` or `kind`; `themes` matches its themes or keywords;
    dates compare on their ISO prefix («2020» covers «2020-09-29»).
    """

    types: tuple[str, ...] = ()
    themes: tuple[str, ...] = ()
    zones: tuple[str, ...] = ()
    date_from: str | None = None
    date_to: str | None = None

    def __post_init__(self) -> None:
        for value in (self.date_from, self.date_to):
            if value is not None and not valid_date(value):
                raise ConfigurationError(
                    f"date de filtre invalide « {value} » : utilisez AAAA, AAAA-MM ou AAAA-MM-JJ"
                )

    @property
    def active(self) -> bool:
        return bool(self.types or self.themes or self.zones or self.date_from or self.date_to)

    def matches(self, resource: Resource) -> bool:
        if self.types:
            wanted = {fold(t) for t in self.types}
            if fold(resource.type) not in wanted and fold(resource.kind) not in wanted:
                return False
        if self.themes:
            have = {fold(t) for t in (*resource.themes, *resource.keywords)}
            if not have & {fold(t) for t in self.themes}:
                return False
        if self.zones and fold(resource.zone or "") not in {fold(z) for z in self.zones}:
            return False
        if self.date_from or self.date_to:
            if not resource.date:
                return False
            date = resource.date
            if self.date_from and date[: len(self.date_from)] < self.date_from:
                return False
            if self.date_to and date[: len(self.date_to)] > self.date_to:
                return False
        return True

    @classmethod
    def parse(cls, specs: Sequence[str]) -> Filters:
        """Parse CLI specs: `type=Guide`, `theme=ruralité`, `zone=Haute-Marne`,
        `date>=2020-01`, `date<=2021` (repeat a key to allow several values)."""
        types: list[str] = []
        themes: list[str] = []
        zones: list[str] = []
        date_from = date_to = None
        for spec in specs:
            match = re.match(r"^\s*(\w+)\s*(>=|<=|=)\s*(.+?)\s*$", spec)
            if not match:
                raise ConfigurationError(
                    f"filtre invalide « {spec} » : attendu clé=valeur, par ex. type=Guide, "
                    "theme=ruralité, zone=Haute-Marne, date>=2020"
                )
            key, op, value = match.group(1).lower(), match.group(2), match.group(3)
            if key in ("type", "kind") and op == "=":
                types.append(value)
            elif key in ("theme", "thème", "themes") and op == "=":
                themes.append(value)
            elif key == "zone" and op == "=":
                zones.append(value)
            elif key == "date" and op == ">=":
                date_from = value
            elif key == "date" and op == "<=":
                date_to = value
            elif key == "date" and op == "=":
                date_from = date_to = value
            else:
                raise ConfigurationError(
                    f"filtre inconnu « {spec} » : clés possibles type, theme, zone, date (>=, <=, =)"
                )
        return cls(tuple(types), tuple(themes), tuple(zones), date_from, date_to)


@dataclass(frozen=True)
class Hit:
    """One retrieved chunk with its fused score and the scores of each method."""

    row: int
    chunk: Chunk
    score: float
    dense: float | None = None
    lexical: float | None = None


@dataclass(frozen=True)
class ResourceHit:
    """A retrieved resource with its best passages, best first."""

    resource: Resource
    score: float
    hits: tuple[Hit, ...]

    @property
    def best(self) -> Hit:
        return self.hits[0]


@dataclass(frozen=True)
class Signals:
    """Retrieval evidence the outcome is decided on (`assistant.calibration`).

    All but `dense` and `lexical` keep their meaning when the base grows: shares of the
    question's weighted terms, an idf normalized by its largest value, a similarity relative
    to the question's mean similarity to the base, a rank. `dense` and `lexical` (raw best
    scores, which drift with the base's size) are kept for display and ablations.
    """

    dense: float = 0.0  # best cosine of the question with a passage
    dense_rel: float = 0.0  # best cosine − cosine of the question with the base's mean vector
    sentence: float = 0.0  # best cosine of the question with one sentence of the top passages
    coverage: float = 0.0  # best share of the question's weighted terms found in one top passage
    resource_coverage: float = 0.0  # the same share in the whole best resource
    key_terms: float = 0.0  # share of the question's two weightiest terms in that passage
    missing: float = 0.0  # normalized weight of the weightiest term absent from that passage
    lexical: float = 0.0  # log(1 + best BM25 score)
    agreement: float = 0.0  # 1 / rank of the dense side's best resource in the lexical ranking
    domain: float = 0.0  # logit of the domain gate (ESS and local public action or not)

    def values(self) -> dict[str, float]:
        return {name: float(getattr(self, name)) for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class Retrieval:
    """The outcome of retrieval: ranked resources, the signals and the decided outcome."""

    query: str  # the text searched (a follow-up completed with the previous question)
    resources: tuple[ResourceHit, ...]
    signals: Signals = Signals()
    probability: float = 1.0  # that the base answers the question (calibration)
    outcome: str = "answered"  # "answered", "low_confidence" or "abstained"
    term_weights: Mapping[str, float] = field(default_factory=dict)  # analyzed term → weight
    focus: str = ""  # the question's own words (for a follow-up: without the previous one)
    reason: str = ""  # why it abstained: "domain", "evidence", "filters" (nothing matched them)

    @property
    def abstain(self) -> bool:
        return self.outcome == "abstained"


@dataclass(frozen=True)
class Citation:
    """A numbered source of an answer. Offsets refer to the resource body."""

    n: int
    resource_id: str
    title: str
    type: str
    kind: str
    date: str | None
    url: str | None
    passage: str
    start: int
    end: int
    score: float
    highlights: tuple[tuple[int, int], ...] = ()  # spans of question words inside `passage`
    used: tuple[tuple[int, int], ...] = ()  # spans of the sentences quoted in the answer

    def to_json(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "resource_id": self.resource_id,
            "title": self.title,
            "type": self.kind or self.type,
            "date": self.date,
            "url": self.url,
            "passage": self.passage,
            "score": round(self.score, 4),
        }


OUTCOMES = ("answered", "low_confidence", "abstained")


@dataclass(frozen=True)
class Answer:
    """What the assistant says: the text (with [n] markers) and its numbered sources."""

    question: str
    text: str
    abstained: bool
    citations: tuple[Citation, ...] = ()
    notices: tuple[str, ...] = ()
    mode: str = "extractive"  # or "llm"
    # "answered", "low_confidence" (an answer that says the match is weak) or "abstained";
    # left empty, it follows `abstained`.
    outcome: str = ""
    log_id: int | None = None  # its row in the question log, once logged (feedback attaches)

    def __post_init__(self) -> None:
        if not self.outcome:
            object.__setattr__(self, "outcome", "abstained" if self.abstained else "answered")
        if self.outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {self.outcome!r}")
        if (self.outcome == "abstained") != self.abstained:
            raise ValueError(f"outcome {self.outcome!r} contradicts abstained={self.abstained}")

    def to_json(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answer": self.text,
            "outcome": self.outcome,
            "abstained": self.abstained,
            "citations": [c.to_json() for c in self.citations],
            "notices": list(self.notices),
            "mode": self.mode,
        }
