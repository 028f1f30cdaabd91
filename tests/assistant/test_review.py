"""The review loop without a browser: the question log, the queue, labels, the export that
`eval` reads, and the CLI commands."""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

import pytest

from assistant import review
from assistant.calibration import Abstention, Calibration
from assistant.cli import main
from assistant.eval_data import load_questions
from assistant.feedback import FeedbackStore
from corpus.errors import ConfigurationError
from tests.fakes import FAKE_MODEL, FakeEmbedder

# Abstains when the best passage holds none of the question's words, answers otherwise.
COVERAGE_RULE = Abstention(("coverage",), (0.5,), (0.1,), (10.0,), 0.0, 0.01, 0.5)


@pytest.fixture
def store(tmp_path: Path) -> FeedbackStore:
    return FeedbackStore(tmp_path / "log.sqlite3")


def test_queue_holds_thumbs_down_abstained_and_low_confidence_oldest_first(
    store: FeedbackStore,
) -> None:
    fine = store.log_question("Qu'est-ce qu'une SCIC ?", abstained=False)
    gap = store.log_question("Recette des crêpes ?", abstained=True)
    unsure = store.log_question("Le FPIC ?", abstained=False, outcome="low_confidence")
    disliked = store.log_question("Financer un tiers-lieu ?", abstained=False, answer="Ainsi [1].")
    assert disliked is not None and fine is not None
    store.rate(disliked, "down", "ne répond pas")
    store.rate(fine, "up")
    items = review.queue(store)
    assert [i.id for i in items] == [gap, unsure, disliked]
    assert [i.why for i in items] == ["sans réponse", "réponse incertaine", "👎"]
    assert items[2].comment == "ne répond pas" and items[2].answer == "Ainsi [1]."


def test_labels_dismissals_and_the_export_eval_reads(store: FeedbackStore, tmp_path: Path) -> None:
    a = store.log_question("Comment financer un tiers-lieu ?", abstained=True)
    b = store.log_question("Recette des crêpes ?", abstained=True)
    c = store.log_question("Bonjour ?", abstained=True)
    assert a and b and c
    with pytest.raises(ConfigurationError, match="soit"):
        review.label(store, a)
    with pytest.raises(ConfigurationError, match="inconnue"):
        review.label(store, a, resources=["nope"], known=["tiers"])
    review.label(store, a, resources=["tiers"], fact="30 %", known=["tiers"])
    review.label(store, b, out_of_scope=True)
    review.dismiss(store, c)
    assert review.queue(store) == []
    path = tmp_path / "cas.jsonl"
    assert review.export_cases(store, path) == 2
    first, second = load_questions(path)
    assert (first.relevant, first.expect, first.style) == ({"tiers": 2}, "30 %", "review")
    assert second.relevant == {} and second.out_of_scope == "oos"
    with pytest.raises(ConfigurationError, match="aucune question"):
        review.dismiss(store, 999)


def test_the_cli_loop(
    tmp_path: Path,
    corpus_copy: Path,
    fake_embedder: FakeEmbedder,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """ask --log → review list → label / out of scope → export → eval on the export."""
    calibration = tmp_path / "cal.json"
    Calibration(model=FAKE_MODEL, abstention=COVERAGE_RULE).save(calibration)
    for key, value in {
        "ESS_ASSISTANT_DATA_DIR": tmp_path / "data",
        "ESS_ASSISTANT_CORPUS_DIR": corpus_copy,
        "ESS_ASSISTANT_MODEL": FAKE_MODEL,
        "ESS_ASSISTANT_CALIBRATION": calibration,
    }.items():
        monkeypatch.setenv(key, str(value))
    monkeypatch.setattr(
        "sys.stdin", io.StringIO("zorglub tartempion\nCollectif GARE tiers-lieu Vaillant\n")
    )
    assert main(["ask", "--json", "--log", "-"]) == 0
    gap, answered = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert gap["outcome"] == "abstained" and answered["outcome"] == "answered"
    store = FeedbackStore(tmp_path / "data" / "feedback.sqlite3")
    disliked = review.queue(store)  # only the abstained one so far
    assert [i.question for i in disliked] == ["zorglub tartempion"]
    with sqlite3.connect(store.path) as conn:
        (answered_id,) = conn.execute("SELECT MAX(id) FROM questions").fetchone()
    store.rate(answered_id, "down", "pas la bonne fiche")  # as the chat's 👎 does

    assert main(["review", "list", "--json"]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [x["why"] for x in listed] == ["sans réponse", "👎"]
    gare = "fiche-deniche-pour-vous-n87-collectif-gare"
    assert main(["review", "label", str(listed[0]["id"]), "--out-of-scope"]) == 0
    assert (
        main(["review", "label", str(listed[1]["id"]), "--resource", gare, "--fact", "Vaillant"])
        == 0
    )
    assert main(["review", "label", str(listed[1]["id"]), "--resource", "inconnue"]) == 2
    assert main(["review", "list"]) == 0
    assert "Aucune question à revoir" in capsys.readouterr().out
    export = tmp_path / "cas.jsonl"
    assert main(["review", "export", str(export)]) == 0
    assert len(export.read_text("utf-8").splitlines()) == 2
    assert main(["eval", str(export), "--method", "hybrid", "--summary"]) == 0
    out = capsys.readouterr().out
    assert "2 questions : 1 avec une réponse" in out and "par style (hybrid)" in out
