"""The `Assistant` facade: question checks, warm-up, status."""

from __future__ import annotations

import pytest

from assistant.service import Assistant
from corpus.errors import InvalidQuestionError
from tests.fakes import FakeEmbedder


def test_question_checks(fake_assistant: Assistant) -> None:
    with pytest.raises(InvalidQuestionError, match="Veuillez saisir"):
        fake_assistant.prepare_question(" \n\t ")
    text, notices = fake_assistant.prepare_question("x" * 10 + " mot" * 6000)
    assert len(text) <= fake_assistant.settings.max_question_chars and notices
    assert fake_assistant.prepare_question("  SCIC ?  ") == ("SCIC ?", ())


def test_warm_up_loads_and_runs_the_model(
    fake_assistant: Assistant, fake_embedder: FakeEmbedder
) -> None:
    before = len(fake_embedder.embedded)
    fake_assistant.warm_up_in_background().join(timeout=30)
    assert len(fake_embedder.embedded) == before + 1


def test_status_after_build(fake_assistant: Assistant) -> None:
    status = fake_assistant.status()
    assert status.resources == 9 and status.chunks > 9 and status.errors == ()
    assert status.model == fake_assistant.settings.model and status.built_at


def test_public_mask_is_none_without_private_resources(fake_assistant: Assistant) -> None:
    assert fake_assistant.index().public_mask is None
