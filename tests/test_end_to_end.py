"""End to end with the real default model on the bundled corpus (slow, still run in CI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.evaluation import compute_metrics, evaluate, load_questions
from assistant.service import Assistant

DATA = Path(__file__).resolve().parent / "data"
pytestmark = pytest.mark.slow


def test_financing_question_cites_a_tressons_financing_resource(real_assistant: Assistant) -> None:
    answer = real_assistant.ask("Comment financer l'ESS en milieu rural ?")
    assert not answer.abstained
    ids = [c.resource_id for c in answer.citations]
    financing = {
        "fiches-techniques-tressons-4-leviers-d-actions-pour-renforcer-l-ess-dans-les",
        "webinaire-ess-ruralites-connaitre-l-ecosysteme-d-accompagnement-et-de",
    }
    assert financing & set(ids), ids
    for line in answer.text.split("\n"):
        assert line.rstrip().endswith("]"), line
    for c in answer.citations:
        resource = real_assistant.index().resources[c.resource_id]
        assert resource.body[c.start : c.end] == c.passage


def test_out_of_scope_question_abstains(real_assistant: Assistant) -> None:
    answer = real_assistant.ask("Quelle est la recette de la tarte tatin ?")
    assert answer.abstained
    assert answer.text.startswith("Je n'ai pas trouvé")
    assert answer.citations == ()


@pytest.mark.parametrize(
    ("question", "fact"),
    [
        (
            "Combien de personnes ont assisté au webinaire sur l'écosystème d'accompagnement ?",
            "170",
        ),
        ("Qui animait le débat de Résovilles sur les pratiques informelles ?", "Frédéric Frenard"),
    ],
)
def test_answers_hold_the_fact_asked_for(
    real_assistant: Assistant, question: str, fact: str
) -> None:
    assert fact in real_assistant.ask(question).text


@pytest.mark.parametrize("name", ["eval_questions.jsonl", "eval_heldout.jsonl"])
def test_retrieval_targets_on_the_evaluation_sets(real_assistant: Assistant, name: str) -> None:
    results = evaluate(real_assistant, load_questions(DATA / name), ["lexical", "dense", "hybrid"])
    m = {method: compute_metrics(rs) for method, rs in results.items()}
    hybrid = m["hybrid"]
    assert hybrid.recall_at_3 >= 0.95 and hybrid.mrr >= 0.90
    for single in ("lexical", "dense"):
        assert hybrid.recall_at_3 >= m[single].recall_at_3
        assert hybrid.mrr >= m[single].mrr
    assert hybrid.abstention_recall >= 0.90
    assert hybrid.in_scope_abstention_rate <= 0.05
    assert hybrid.facts_found / hybrid.facts >= 0.85


def test_cli_json_batch_with_the_real_model(real_assistant: Assistant) -> None:
    env = {
        **os.environ,
        "ESS_ASSISTANT_DATA_DIR": str(real_assistant.settings.data_dir),
        "HF_HUB_OFFLINE": "1",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "assistant", "ask", "--json", "-"],
        input="C'est quoi une SCIC ?\nQuel temps fera-t-il demain à Lyon ?\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=True,
    )
    first, second = (json.loads(line) for line in proc.stdout.strip().split("\n"))
    assert not first["abstained"] and first["citations"]
    assert second["abstained"] and not second["citations"]
