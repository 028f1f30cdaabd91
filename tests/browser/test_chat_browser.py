"""The chat, end to end in headless Chromium against the real served app (real model).

An elected official's path: ask, read the answer with its [n] markers, check the sources
(title, type, date, highlighted passage), open the whole resource, leave a 👎 with a comment
(checked in the SQLite file), and the two ways a question can go wrong (empty, or HTML
that must stay text).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from assistant.service import EMPTY_QUESTION
from corpus.bundled import bundled_corpus_dir
from corpus.loaders import load_corpus
from tests.browser.conftest import ANSWER_WAIT, WAIT, LiveApp
from ui.chat import THANKS
from ui.render import MONTHS

pytestmark = pytest.mark.browser

QUESTION = "Comment financer l'ESS en milieu rural ?"
COMMENT = "Réponse trop vague (test)"
XSS_QUESTION = (
    'Financement <img src=x onerror="window.__xss=1"> rural <script>window.__xss=2</script> ESS ?'
)


def _norm(text: str | None) -> str:
    """Whitespace-insensitive text (the page turns line breaks and nbsp into spaces)."""
    return " ".join((text or "").split())


def _text(driver: Any, css: str) -> str:
    return _norm(driver.find_element(By.CSS_SELECTOR, css).get_attribute("textContent"))


def ask(driver: Any, question: str) -> None:
    """Type `question` in the box and click « Envoyer »."""
    box = driver.find_element(By.CSS_SELECTOR, "#question textarea")
    box.clear()
    if question:
        box.send_keys(question)
    driver.find_element(By.ID, "send").click()


def ask_and_wait_for_sources(driver: Any, question: str = QUESTION) -> None:
    ask(driver, question)
    WebDriverWait(driver, ANSWER_WAIT).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "#chatbot .answer"))
    )
    WebDriverWait(driver, WAIT).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "#sources .source"))
    )


def test_answer_has_citations_and_sources_panel(page: Any, artifacts: Path) -> None:
    ask_and_wait_for_sources(page)
    # saved on every run, before the checks: the README image and a look at the layout
    page.execute_script("window.scrollTo(0, 0)")
    assert page.save_screenshot(str(artifacts / "chat.png"))

    badge = page.find_element(By.CSS_SELECTOR, "#chatbot .answer .cite-badge a")
    shown = page.execute_script("return getComputedStyle(arguments[0], '::before').content", badge)
    assert "[1]" in shown and badge.get_attribute("href").endswith("#source-1")
    # the question is shown in the conversation too
    assert QUESTION in _text(page, "#chatbot")

    first = page.find_element(By.CSS_SELECTOR, "#sources #source-1")
    title = _norm(first.find_element(By.CSS_SELECTOR, ".source-title").text)
    assert title, "the first source has no title"
    meta = _norm(first.find_element(By.CSS_SELECTOR, ".source-meta").text)
    kind, _, date = meta.partition(" · ")
    assert kind, f"no type in the source meta line {meta!r}"
    assert any(m in date for m in MONTHS) or date[:4].isdigit(), (
        f"no date in the source meta line {meta!r}"
    )
    passage = first.find_element(By.CSS_SELECTOR, "blockquote.passage")
    marks = passage.find_elements(By.TAG_NAME, "mark")
    assert marks and all(m.is_displayed() for m in marks)
    assert any(_norm(m.text) for m in marks)
    # highlighted words are visibly highlighted (not an unstyled tag)
    background = marks[0].value_of_css_property("background-color")
    assert background not in ("rgba(0, 0, 0, 0)", "transparent"), background

    # the « Voir la ressource » selector offers the cited sources, first one chosen
    picked = page.find_element(By.CSS_SELECTOR, "#source-pick input").get_attribute("value")
    assert picked.startswith("[1] ")


def test_view_resource_shows_whole_resource_with_passage(page: Any) -> None:
    ask_and_wait_for_sources(page)
    title = _text(page, "#sources #source-1 .source-title")
    passage = _text(page, "#sources #source-1 blockquote.passage")

    page.find_element(By.ID, "view-resource").click()
    WebDriverWait(page, WAIT).until(
        ec.visibility_of_element_located((By.CSS_SELECTOR, "#resource-viewer article.resource"))
    )
    assert _text(page, "#resource-viewer .resource-title") == title
    meta = _text(page, "#resource-viewer .resource-meta")
    assert "Type" in meta and "Date" in meta

    cited = page.find_element(By.CSS_SELECTOR, "#resource-viewer mark.cited#passage-cite")
    assert cited.is_displayed()
    highlighted = " ".join(
        _norm(m.get_attribute("textContent"))
        for m in page.find_elements(By.CSS_SELECTOR, "#resource-viewer mark.cited")
    )
    assert _norm(highlighted) == passage

    # the whole resource, not just the passage: its body from the bundled corpus, start to end
    resource = next(
        r for r in load_corpus(bundled_corpus_dir()).resources if _norm(r.title) == title
    )
    body = _text(page, "#resource-viewer .resource-body")
    expected = _norm(resource.body)
    assert len(body) > len(passage)
    assert body.startswith(expected[:80]) and body.endswith(expected[-80:])


def test_thumbs_down_with_comment_is_stored(page: Any, live_app: LiveApp) -> None:
    ask_and_wait_for_sources(page)

    page.find_element(By.ID, "feedback-down").click()
    WebDriverWait(page, WAIT).until(
        ec.text_to_be_present_in_element((By.ID, "feedback-msg"), "Avis choisi : 👎")
    )
    page.find_element(By.CSS_SELECTOR, "#feedback-comment textarea").send_keys(COMMENT)
    page.find_element(By.ID, "feedback-send").click()
    WebDriverWait(page, WAIT).until(
        ec.text_to_be_present_in_element((By.ID, "feedback-msg"), THANKS)
    )
    # the comment box is emptied once stored
    assert (
        page.find_element(By.CSS_SELECTOR, "#feedback-comment textarea").get_attribute("value")
        == ""
    )

    with sqlite3.connect(live_app.feedback_db) as conn:
        rows = conn.execute(
            "SELECT question, rating, comment, abstained, citations FROM feedback WHERE comment = ?",
            (COMMENT,),
        ).fetchall()
    assert len(rows) == 1, rows
    question, rating, comment, abstained, citations = rows[0]
    assert (question, rating, comment, abstained) == (QUESTION, "down", COMMENT, 0)
    assert '"n": 1' in citations


def test_empty_question_shows_french_message(page: Any) -> None:
    ask(page, "")
    error = WebDriverWait(page, WAIT).until(
        ec.visibility_of_element_located((By.CSS_SELECTOR, "#chatbot .error"))
    )
    assert EMPTY_QUESTION in _norm(error.text)
    assert not page.find_elements(By.CSS_SELECTOR, "#chatbot .answer")


def test_html_in_question_is_shown_as_text(page: Any) -> None:
    ask(page, XSS_QUESTION)
    WebDriverWait(page, ANSWER_WAIT).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "#chatbot .answer, #chatbot .error"))
    )
    chat = page.find_element(By.ID, "chatbot")
    shown = _norm(chat.text)
    assert '<img src=x onerror="window.__xss=1">' in shown
    assert "<script>window.__xss=2</script>" in shown
    assert not chat.find_elements(By.CSS_SELECTOR, "img[src='x'], img[onerror]")
    assert not chat.find_elements(By.XPATH, ".//script[contains(., '__xss')]")
    assert page.execute_script("return typeof window.__xss") == "undefined"
