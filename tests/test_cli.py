"""The `ess-assistant` command line, in-process, on the fake embedder."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from assistant.cli import main, parse_request_line
from corpus.errors import InvalidQuestionError
from embeddings.store import current_version
from tests.fakes import FAKE_MODEL, FakeEmbedder


@pytest.fixture
def env(
    tmp_path: Path,
    corpus_copy: Path,
    fake_embedder: FakeEmbedder,
    fake_calibration: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    monkeypatch.setenv("ESS_ASSISTANT_CALIBRATION", str(fake_calibration))
    monkeypatch.setenv("ESS_ASSISTANT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ESS_ASSISTANT_CORPUS_DIR", str(corpus_copy))
    monkeypatch.setenv("ESS_ASSISTANT_MODEL", FAKE_MODEL)
    return tmp_path / "data"


def test_build_then_status(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build"]) == 0
    out = capsys.readouterr().out
    assert "added 9, changed 0, removed 0, unchanged 0, errors 0" in out
    assert main(["build"]) == 0
    assert "added 0, changed 0, removed 0, unchanged 9, errors 0" in capsys.readouterr().out
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert "ressources  : 9" in out and FAKE_MODEL in out


def test_ask_builds_on_first_use_and_prints_sources(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert current_version(env / "index") is None
    assert main(["ask", "Comment financer l'ESS en milieu rural ?", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) >= {"question", "answer", "abstained", "citations"}
    assert current_version(env / "index") is not None
    for c in data["citations"]:
        assert set(c) >= {"n", "resource_id", "title", "type", "date", "url", "passage", "score"}


def test_ask_json_batch_from_stdin(
    env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        "sys.stdin", io.StringIO("Qu'est-ce qu'une SCIC ?\n\nQui a animé le débat ?\n   \n")
    )
    assert main(["ask", "--json", "-"]) == 0
    lines = capsys.readouterr().out.strip().split("\n")
    assert len(lines) == 2
    assert [json.loads(line)["question"] for line in lines] == [
        "Qu'est-ce qu'une SCIC ?",
        "Qui a animé le débat ?",
    ]


def test_ask_json_lines_carry_conversations_and_bad_lines_do_not_stop_the_batch(
    env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = [
        json.dumps({"question": "Et en ville ?", "history": ["Comment financer l'ESS rural ?"]}),
        '{"question": "pas fini',
        json.dumps({"question": "ESS", "filters": {"zone": "Haute-Marne", "date>=": "2010"}}),
        json.dumps({"history": ["sans question"]}),
        json.dumps({"question": "ESS", "filters": {"date>=": "2021-13"}}),
        "Qu'est-ce qu'une SCIC ?",
    ]
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(lines) + "\n"))
    assert main(["ask", "--json", "-"]) == 2  # some lines were refused
    out = [json.loads(line) for line in capsys.readouterr().out.strip().split("\n")]
    assert len(out) == 6
    assert out[0]["question"] == "Et en ville ?" and "outcome" in out[0]
    assert "error" in out[1] and "JSON invalide" in out[1]["error"]
    assert "error" not in out[2]
    assert all("gare" in c["resource_id"] for c in out[2]["citations"])
    assert "question" in out[3]["error"]
    assert "date" in out[4]["error"]
    assert out[5]["question"] == "Qu'est-ce qu'une SCIC ?" and "error" not in out[5]


def test_request_lines_parse_history_and_filters() -> None:
    question, history, filters = parse_request_line(
        json.dumps(
            {
                "question": "Et en ville ?",
                "history": ["a", "b"],
                "filters": {"type": ["Guide", "Étude"], "theme": "ruralité"},
            }
        )
    )
    assert (question, history) == ("Et en ville ?", ("a", "b"))
    assert filters is not None and filters.types == ("Guide", "Étude")
    assert filters.themes == ("ruralité",)
    assert parse_request_line("Et en ville ?") == ("Et en ville ?", (), None)
    with pytest.raises(InvalidQuestionError, match="JSON invalide"):
        parse_request_line("{ pas du json ?")


def test_empty_question_is_a_french_message(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", "   "]) == 2
    assert "Veuillez saisir une question" in capsys.readouterr().err


def test_huge_question_is_truncated_with_a_notice(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ask", "financement rural " * 1200, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["notices"] and "très longue" in data["notices"][0]
    assert len(data["question"]) <= 2000


def test_corrupt_index_names_the_fix(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build"]) == 0
    version = current_version(env / "index")
    (env / "index" / "versions" / version / "vectors.npy").write_bytes(b"garbage")
    capsys.readouterr()
    assert main(["ask", "SCIC"]) == 3
    assert "ess-assistant build --full" in capsys.readouterr().err


def test_filter_option(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", "ESS", "--json", "--filter", "zone=Haute-Marne"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert all("gare" in c["resource_id"] for c in data["citations"])
    assert main(["ask", "ESS", "--filter", "couleur=bleu"]) == 2
    assert "filtre" in capsys.readouterr().err


def test_eval_command(env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text(
        json.dumps(
            {
                "question": "Collectif GARE Haute-Marne",
                "expected": ["Collectif GARE"],
                "out_of_scope": False,
            }
        )
        + "\n",
        encoding="utf-8",
    )
    assert main(["eval", str(path), "--method", "all"]) == 0
    out = capsys.readouterr().out
    assert "lexical" in out and "hybrid" in out and "recall@1" in out


def test_import_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seed = Path(__file__).resolve().parents[2] / "shared" / "seed" / "000_b177bc2baba99d65.txt"
    if not seed.exists():
        pytest.skip("seed export not available")
    out = tmp_path / "imported"
    assert main(["import", str(seed), "--out", str(out)]) == 0
    assert len(list(out.glob("*.md"))) == 9
    assert "9 fichier(s)" in capsys.readouterr().out


def test_status_says_which_calibration_is_used(
    env: Path, fake_calibration: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["build"]) == 0
    capsys.readouterr()
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert f"calibration : {fake_calibration}" in out
    assert "ajustée sur d'autres bases" in out  # fitted on no base at all


def test_calibrate_writes_a_calibration_that_ask_then_uses(
    env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["build"]) == 0
    rows = []
    from corpus.bundled import bundled_corpus_dir

    for i, path in enumerate(sorted(bundled_corpus_dir().glob("*.md"))):
        title = next(
            line for line in path.read_text("utf-8").splitlines() if line.startswith("title:")
        )
        words = title.split(":", 1)[1].strip(" '\"")
        rows.append({"id": f"a{i}", "question": words, "relevant": {path.stem: 2}})
        rows.append(
            {"id": f"b{i}", "question": " ".join(words.split()[:3]), "relevant": {path.stem: 2}}
        )
    for i, q in enumerate(["zorglub", "recette crêpes", "météo Lyon", "roue de vélo", "passeport"]):
        rows.append({"id": f"n{i}", "question": q, "relevant": {}, "out_of_scope": "far"})
    path = tmp_path / "set.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), "utf-8")
    capsys.readouterr()
    monkeypatch.delenv("ESS_ASSISTANT_CALIBRATION")
    assert main(["calibrate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "calibration écrite dans" in out and "abstention : AUC VC" in out
    written = env / "index" / "calibration.json"
    assert written.is_file()
    assert main(["status"]) == 0
    status = capsys.readouterr().out
    assert f"calibration : {written}" in status and "⚠" not in status  # fitted on this base


def test_calibrate_refuses_too_few_questions(
    env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "few.jsonl"
    path.write_text('{"question": "SCIC", "relevant": {}}\n', encoding="utf-8")
    assert main(["calibrate", str(path)]) == 2
    assert "au moins 20" in capsys.readouterr().err


def test_bad_bytes_and_lone_surrogates_do_not_stop_a_batch(
    env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The audit's reproduction: `printf "…\\xff\\xfe SCIC\\n…" | ess-assistant ask --json -`."""

    class Stdin:
        buffer = io.BytesIO(b"Qu'est-ce qu'une SCIC ?\n\xff\xfe SCIC\nfinancer l'ESS\n")

    monkeypatch.setattr("sys.stdin", Stdin())
    assert main(["ask", "--json", "-"]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.strip().split("\n")]
    assert [o["question"] for o in out] == [
        "Qu'est-ce qu'une SCIC ?",
        "\ufffd\ufffd SCIC",
        "financer l'ESS",
    ]
    assert all("answer" in o for o in out)
    # A lone surrogate, as Python decodes a bad byte in argv.
    assert main(["ask", "--json", "SCIC \udcff rurale"]) == 0
    assert json.loads(capsys.readouterr().out)["question"] == "SCIC \ufffd rurale"


def _truncate_resources(folder: Path) -> None:
    path = folder / "resources.jsonl"
    lines = path.read_text("utf-8").splitlines()
    path.write_text("\n".join(lines[:-2]) + "\n", encoding="utf-8")


@pytest.mark.parametrize(
    "damage",
    [
        lambda folder: (folder / "vectors.npy").write_bytes(b""),
        _truncate_resources,
        lambda folder: (folder / "chunks.npy").unlink(),
        lambda folder: (folder / "lexical" / "lexical.json").write_text("{}", "utf-8"),
    ],
    ids=["empty-vectors", "resources-lines-removed", "chunks-missing", "lexical-meta-edited"],
)
def test_a_damaged_index_gives_exit_3_and_one_french_line_everywhere(
    env: Path, capsys: pytest.CaptureFixture[str], damage: object
) -> None:
    assert main(["build"]) == 0
    damage(env / "index" / "versions" / current_version(env / "index"))  # type: ignore[operator]
    capsys.readouterr()
    for command in (["ask", "SCIC"], ["status"]):
        assert main(command) == 3, command
        err = capsys.readouterr().err.strip()
        assert err.startswith("erreur : ") and "\n" not in err and "build --full" in err


def test_an_index_path_that_is_a_file_is_a_clean_error(
    env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "fichier"
    target.write_text("x", encoding="utf-8")
    assert main(["build", "--index", str(target)]) == 3
    assert "impossible d'écrire l'index" in capsys.readouterr().err


def test_build_and_sync_run_at_a_lower_cpu_priority(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rebuild is batch work: it lowers its own priority (ESS_ASSISTANT_BUILD_NICE, 10 by
    default; 0 keeps the normal one) so a chat on the same cores answers first."""
    import os

    calls: list[int] = []
    monkeypatch.setattr(os, "nice", lambda n: calls.append(n) or n)
    assert main(["build"]) == 0
    assert calls == [10]
    monkeypatch.setenv("ESS_ASSISTANT_BUILD_NICE", "0")
    assert main(["build"]) == 0
    assert calls == [10]
    monkeypatch.setenv("ESS_ASSISTANT_BUILD_NICE", "25")
    assert main(["build"]) != 0  # out of range: a configuration error, nothing built
