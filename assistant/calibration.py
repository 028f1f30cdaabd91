"""The calibration: fitted parameters of retrieval and abstention, kept as data.

`ess-assistant calibrate` (code in `assistant.fitting`) writes a calibration file; `ask`,
`serve`, `eval` and `status` load it. Where it is looked for, in order:

1. `ESS_ASSISTANT_CALIBRATION` (a path);
2. `<index dir>/calibration.json`, written by `calibrate` for that base;
3. the default shipped with the package (`assistant/data/calibration.json`, or
   `calibration-int8.json` when the default model runs in int8), fitted on the tuning parts
   of the bundled and grown evaluation bases with the default model in that precision.

What it holds:

- `domain`: the domain gate, a logistic model over the question's embedding that tells
  questions of the ESS and local public action from everything else (trained on questions
  written for it, `assistant/data/domain_questions.jsonl`); below its threshold the assistant
  abstains whatever the base holds;
- `abstention`: a logistic model over retrieval signals that keep their meaning when the base
  grows (`assistant.retrieval.Signals`), giving the probability that the base answers the
  question; below `abstain_below` the assistant abstains, below `low_below` it answers with
  low confidence;
- `lexical_weight` (fusion), `context_weight` / `reference_weight` (how much a follow-up's previous
  question weighs against its own words, for a topic shift / a reference) and `citation_ratio` (a resource is cited when its score is at least
  this share of the best one);
- where and on what it was fitted (model, base fingerprints, data hash) and its
  cross-validated figures.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources as package_resources
from pathlib import Path
from typing import Any

import numpy as np

from corpus.errors import ConfigurationError

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
FILE_NAME = "calibration.json"
OUTCOMES = ("answered", "low_confidence", "abstained")


@dataclass(frozen=True)
class DomainGate:
    """Logistic regression over the normalized question embedding."""

    weights: tuple[float, ...]
    bias: float
    threshold: float  # logit below which the question is out of the domain

    def logit(self, vector: np.ndarray) -> float:
        if vector.shape[-1] != len(self.weights):
            return math.inf  # another model: the gate cannot judge, it lets everything pass
        return float(np.dot(np.asarray(self.weights, dtype=np.float32), vector) + self.bias)


@dataclass(frozen=True)
class Abstention:
    """Logistic regression over standardized retrieval signals → P(the base answers)."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    abstain_below: float
    low_below: float

    def probability(self, values: Mapping[str, float]) -> float:
        z = self.intercept
        for name, m, s, c in zip(self.features, self.mean, self.scale, self.coef, strict=True):
            z += c * (values[name] - m) / (s or 1.0)
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))

    def outcome(self, probability: float) -> str:
        if probability < self.abstain_below:
            return "abstained"
        if probability < self.low_below:
            return "low_confidence"
        return "answered"

    @classmethod
    def constant(cls, outcome: str) -> Abstention:
        """A rule that always gives `outcome` (tests, and single-purpose tools)."""
        below = {"answered": (-1.0, -1.0), "low_confidence": (-1.0, 2.0), "abstained": (2.0, 2.0)}
        abstain, low = below[outcome]
        return cls((), (), (), (), 0.0, abstain, low)


@dataclass(frozen=True)
class Calibration:
    model: str
    abstention: Abstention
    domain: DomainGate | None = None
    lexical_weight: float = 0.5
    context_weight: float = 0.5
    reference_weight: float = 1.0
    citation_ratio: float = 0.0
    # Two questions whose cosine is at least this are the same question (content gaps): the
    # 99th percentile of the cosines between different questions written for the gate.
    gap_similarity: float = 0.9
    fitted_on: tuple[dict[str, Any], ...] = ()  # {"name", "fingerprint", "resources", "questions"}
    data_hash: str = ""
    cv: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    precision: str = "fp32"  # inference precision of the model (int8 signals differ slightly)
    source: str = ""  # where it was loaded from (not saved)
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        data = asdict(self)
        data.pop("source")
        return json.dumps(data, ensure_ascii=False, indent=1)

    @classmethod
    def from_json(cls, text: str, *, source: str = "") -> Calibration:
        data = json.loads(text)
        if data.get("format_version") != FORMAT_VERSION:
            raise ConfigurationError(
                f"fichier de calibration {source} au format {data.get('format_version')}, "
                f"attendu {FORMAT_VERSION} : relancez `ess-assistant calibrate`"
            )
        ab: dict[str, Any] = data["abstention"]
        data["abstention"] = Abstention(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in ab.items()}  # type: ignore[arg-type]
        )
        if data.get("domain"):
            gate = data["domain"]
            data["domain"] = DomainGate(tuple(gate["weights"]), gate["bias"], gate["threshold"])
        data["fitted_on"] = tuple(data.get("fitted_on", ()))
        data["source"] = source
        return cls(**data)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(self.to_json(), encoding="utf-8")
        tmp.replace(path)

    def warnings(
        self, *, model: str, fingerprint: str | None, precision: str = "fp32"
    ) -> list[str]:
        """French warnings when this calibration was fitted for another model, precision or
        base."""
        out = []
        if self.model != model:
            out.append(
                f"calibration ajustée pour le modèle « {self.model} », le modèle utilisé est "
                f"« {model} » : relancez `ess-assistant calibrate`"
            )
        elif self.precision != precision:
            out.append(
                f"calibration ajustée pour le modèle en {self.precision}, le modèle tourne en "
                f"{precision} : relancez `ess-assistant calibrate`"
            )
        fingerprints = {f.get("fingerprint") for f in self.fitted_on}
        if fingerprint is not None and fingerprint not in fingerprints:
            names = ", ".join(
                f"{f.get('name', '?')} ({f.get('resources', '?')} ressources)"
                for f in self.fitted_on
            )
            out.append(
                f"calibration ajustée sur d'autres bases ({names or 'inconnues'}) ; ses signaux "
                "ne dépendent pas de la taille de la base, mais après de gros changements, "
                "relancez `ess-assistant calibrate`"
            )
        return out


def base_fingerprint(content_hashes: Mapping[str, str]) -> str:
    """A short hash of a base's resources (ids and content hashes)."""
    import hashlib

    text = "\n".join(f"{rid}:{h}" for rid, h in sorted(content_hashes.items()))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def default_calibration_path(precision: str = "fp32") -> Path:
    """The shipped calibration of the default model in `precision` (one file per precision:
    int8 vectors shift the signals a little, so each is fitted on its own vectors)."""
    name = FILE_NAME if precision == "fp32" else FILE_NAME.replace(".json", f"-{precision}.json")
    return Path(str(package_resources.files("assistant") / "data" / name))


def load_calibration(
    explicit: Path | None, index_dir: Path, precision: str = "fp32"
) -> Calibration:
    """The calibration in use (see the module docstring for the order)."""
    candidates: Sequence[Path] = (
        [explicit]
        if explicit is not None
        else [index_dir / FILE_NAME, default_calibration_path(precision)]
    )
    for path in candidates:
        if path.is_file():
            try:
                return Calibration.from_json(path.read_text(encoding="utf-8"), source=str(path))
            except (ValueError, KeyError, TypeError) as exc:
                raise ConfigurationError(
                    f"fichier de calibration illisible {path} ({exc}) : relancez "
                    "`ess-assistant calibrate`"
                ) from exc
        if explicit is not None:
            raise ConfigurationError(f"fichier de calibration introuvable : {path}")
    raise ConfigurationError(
        f"aucune calibration : ni {index_dir / FILE_NAME} ni {default_calibration_path()} ; "
        "relancez `ess-assistant calibrate` ou réinstallez le paquet"
    )
