"""The calibration file: round trip, where it is looked for, warnings, the shipped default."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from assistant.calibration import (
    Abstention,
    Calibration,
    DomainGate,
    base_fingerprint,
    default_calibration_path,
    load_calibration,
)
from assistant.retrieval import RetrievalParams
from assistant.settings import DEFAULT_MODEL
from corpus.errors import ConfigurationError

RULE = Abstention(("coverage",), (0.5,), (0.2,), (3.0,), 0.5, 0.3, 0.7)


def _calibration(**changes: object) -> Calibration:
    values: dict[str, object] = {
        "model": "m",
        "abstention": RULE,
        "domain": DomainGate((0.5, -0.5), 0.1, -1.0),
        "lexical_weight": 0.4,
        "citation_ratio": 0.6,
        "fitted_on": ({"name": "b", "fingerprint": "abc", "resources": 9, "questions": 70},),
        "cv": {"abstention": {"cv_auc": 0.9}},
    }
    values.update(changes)
    return Calibration(**values)  # type: ignore[arg-type]


def test_round_trip_keeps_every_number(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    _calibration().save(path)
    loaded = load_calibration(path, tmp_path / "index")
    assert loaded == _calibration(source=str(path))
    params = RetrievalParams.from_calibration(loaded)
    assert (params.lexical_weight, params.citation_ratio) == (0.4, 0.6)
    assert params.abstention == RULE and params.domain == loaded.domain


def test_probability_and_outcomes() -> None:
    assert RULE.probability({"coverage": 0.5}) == pytest.approx(1 / (1 + np.exp(-0.5)))
    assert RULE.outcome(0.2) == "abstained"
    assert RULE.outcome(0.5) == "low_confidence"
    assert RULE.outcome(0.9) == "answered"
    for outcome in ("answered", "low_confidence", "abstained"):
        rule = Abstention.constant(outcome)
        assert rule.outcome(rule.probability({})) == outcome


def test_lookup_order(tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    assert load_calibration(None, index_dir).source == str(default_calibration_path())
    _calibration(model="for-this-base").save(index_dir / "calibration.json")
    assert load_calibration(None, index_dir).model == "for-this-base"
    explicit = tmp_path / "explicit.json"
    _calibration(model="explicit").save(explicit)
    assert load_calibration(explicit, index_dir).model == "explicit"
    with pytest.raises(ConfigurationError, match="introuvable"):
        load_calibration(tmp_path / "missing.json", index_dir)


@pytest.mark.parametrize("text", ["{not json", '{"format_version": 99}', '{"format_version": 1}'])
def test_unreadable_file_names_the_fix(tmp_path: Path, text: str) -> None:
    path = tmp_path / "c.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigurationError, match="ess-assistant calibrate"):
        load_calibration(path, tmp_path)


def test_warnings_for_another_model_or_base() -> None:
    c = _calibration()
    assert c.warnings(model="m", fingerprint="abc") == []
    (model,) = c.warnings(model="other", fingerprint="abc")
    assert "« m »" in model and "calibrate" in model
    (base,) = c.warnings(model="m", fingerprint="zzz")
    assert "b (9 ressources)" in base
    assert base_fingerprint({"a": "1", "b": "2"}) == base_fingerprint({"b": "2", "a": "1"})
    assert base_fingerprint({"a": "1"}) != base_fingerprint({"a": "2"})


def test_shipped_default_is_fitted_for_the_default_model() -> None:
    c = Calibration.from_json(default_calibration_path().read_text("utf-8"))
    assert c.model == DEFAULT_MODEL
    assert c.domain is not None and len(c.domain.weights) == 384
    assert {b["name"] for b in c.fitted_on} == {"bundled", "grown"}
    assert 0 < c.abstention.abstain_below <= c.abstention.low_below < 1
    assert c.cv["abstention"]["cv_answerable_abstained"] <= 0.05
    assert c.cv["domain"]["out_of_domain_refused"] >= 0.85
    assert "fitted on grown, applied to bundled" in c.cv["ablation"]


def test_each_precision_has_its_shipped_calibration(tmp_path: Path) -> None:
    from assistant.calibration import default_calibration_path

    fp32 = load_calibration(None, tmp_path, "fp32")
    int8 = load_calibration(None, tmp_path, "int8")
    assert fp32.source == str(default_calibration_path()) and fp32.precision == "fp32"
    assert int8.source == str(default_calibration_path("int8")) and int8.precision == "int8"
    assert int8.model == fp32.model == DEFAULT_MODEL
    warning = int8.warnings(model=DEFAULT_MODEL, fingerprint=None, precision="fp32")
    assert warning and "int8" in warning[0] and "calibrate" in warning[0]
