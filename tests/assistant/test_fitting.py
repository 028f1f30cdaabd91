"""Fitting the calibration: each step on synthetic rows with a known answer, then the whole
`calibrate` on the fake embedder (no hand-set number survives a refit)."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.calibration import Calibration
from assistant.eval_data import EvalQuestion
from assistant.fitting import (
    FEATURES,
    FUSION_GRID,
    MAX_ANSWERABLE_ABSTAINED,
    Row,
    calibrate,
    fit_abstention,
    fit_citation_ratio,
    fit_fusion,
    transfer,
)
from assistant.models import Signals
from assistant.service import Assistant
from tests.fakes import FAKE_MODEL


def _row(i: int, answerable: bool, rng: np.random.Generator, base: str = "b") -> Row:
    good = answerable
    values = {
        "dense_rel": rng.normal(0.08 if good else 0.04, 0.02),
        "coverage": rng.uniform(0.4, 1.0) if good else rng.uniform(0.0, 0.6),
        "resource_coverage": rng.uniform(0.5, 1.0) if good else rng.uniform(0.0, 0.7),
        "key_terms": float(rng.random() < (0.8 if good else 0.3)),
        "missing": rng.uniform(0.0, 0.5) if good else rng.uniform(0.3, 1.0),
        "agreement": float(rng.random() < (0.8 if good else 0.3)),
        "domain": rng.normal(4 if good else 1, 1.5),
    }
    q = EvalQuestion(id=f"{base}{i}", question=f"q{i}")
    grades = {"r1": 2} if answerable else {}
    rankings = {w: (("r1", 1.0), ("r2", 0.5)) for w in FUSION_GRID}
    return Row(base, q, grades, None, rankings, Signals(**values))


def test_abstention_meets_its_targets_out_of_fold() -> None:
    rng = np.random.default_rng(1)
    rows = [_row(i, i % 4 != 0, rng) for i in range(400)]
    rule, cv = fit_abstention(rows)
    assert rule.features == FEATURES
    assert cv["cv_answerable_abstained"] <= MAX_ANSWERABLE_ABSTAINED + 0.01
    assert cv["cv_auc"] > 0.9 and cv["cv_unanswerable_abstained"] > 0.5
    coef = dict(zip(rule.features, rule.coef, strict=True))
    assert coef["coverage"] > 0 and coef["missing"] < 0 and coef["domain"] > 0
    assert rule.abstain_below <= rule.low_below
    # The same rule on another base drawn alike holds its rates.
    other = [_row(i, i % 4 != 0, rng, base="c") for i in range(400)]
    moved = transfer(rows + other, "b", "c")
    assert moved["answerable_abstained"] <= 0.1 and moved["unanswerable_abstained"] > 0.5


def test_fusion_weight_is_the_grid_value_with_the_best_mrr() -> None:
    rows = []
    for i in range(30):
        rankings = {w: (("bad", 1.0), ("good", 0.9)) for w in FUSION_GRID}
        rankings[0.3] = (("good", 1.0), ("bad", 0.9))
        q = EvalQuestion(id=str(i), question="?")
        rows.append(Row("b", q, {"good": 2}, None, rankings))
    weight, cv = fit_fusion(rows)
    assert weight == 0.3 and cv["score"] == 1.0 and cv["cv_score"] == 1.0


def test_citation_ratio_keeps_close_right_sources() -> None:
    """Two right resources close behind the first: a ratio that cites them wins."""
    rows = []
    for i in range(20):
        ranking = (("a", 1.0), ("b", 0.8), ("c", 0.3))
        q = EvalQuestion(id=str(i), question="?")
        grades = {"a": 2, "b": 1}
        rows.append(Row("b", q, grades, None, dict.fromkeys(FUSION_GRID, ranking)))
    ratio, _ = fit_citation_ratio(rows, weight=0.5, max_sources=3)
    assert 0.3 < ratio <= 0.8


@pytest.mark.usefixtures("fake_embedder")
def test_calibrate_end_to_end_on_the_fake_model(fake_assistant: Assistant) -> None:
    index = fake_assistant.index()
    questions = []
    for i, r in enumerate(index.resources.values()):
        for j, words in enumerate((r.title, " ".join(r.title.split()[:4]))):
            questions.append(EvalQuestion(id=f"a{i}{j}", question=words, relevant={r.id: 2}))
    for i, words in enumerate(
        ["zorglub tartempion", "recette crêpes", "météo demain", "foot résultat", "vélo roue",
         "passeport délai", "blanquette veau", "horaires piscine", "impôts revenus", "train Paris"]
    ):  # fmt: skip
        questions.append(EvalQuestion(id=f"n{i}", question=words, out_of_scope="far"))
    calibration = calibrate([("fake", fake_assistant, questions)])
    assert calibration.model == FAKE_MODEL
    assert calibration.domain is not None and len(calibration.domain.weights) == 64
    assert calibration.fitted_on[0]["resources"] == len(index.resources)
    assert calibration.lexical_weight in FUSION_GRID
    assert set(calibration.cv) == {
        "domain",
        "fusion",
        "context",
        "abstention",
        "citations",
        "ablation",
    }
    again = Calibration.from_json(calibration.to_json())
    assert again.abstention == calibration.abstention
