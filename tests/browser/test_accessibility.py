"""Accessibility (RGAA / WCAG 2.1 AA) in headless Chromium: axe-core on every screen, the
keyboard alone, screen-reader names, and text zoom on a 320 px wide window."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.a11y import report, violations
from tests.browser.conftest import WAIT, LiveApp
from tests.browser.test_admin_browser import _log_in, _open_staff_tab
from tests.browser.test_chat_browser import ANSWER_WAIT, ask, ask_and_wait_for_sources

pytestmark = pytest.mark.browser

LOW_CONFIDENCE = "mobilité solidaire campagne"  # answered with low confidence (bundled base)
ABSTAINS = "Quelle est la recette des crêpes ?"


def _clean(page: Any, screen: str) -> None:
    found = violations(page)
    assert not found, f"{screen}:\n{report(found)}"


def test_every_chat_screen_passes_axe(page: Any) -> None:
    _clean(page, "chat before any question")
    page.find_element(By.XPATH, "//button[contains(., 'Filtres')]").click()
    _clean(page, "filters open")

    ask_and_wait_for_sources(page)
    _clean(page, "answer with sources")
    page.find_element(By.ID, "view-resource").click()
    WebDriverWait(page, WAIT).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "#resource-viewer .resource"))
    )
    _clean(page, "resource viewer open")

    ask(page, LOW_CONFIDENCE)
    WebDriverWait(page, ANSWER_WAIT).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "#chatbot .answer.low-confidence"))
    )
    _clean(page, "low-confidence answer")
    ask(page, ABSTAINS)
    WebDriverWait(page, ANSWER_WAIT).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "#chatbot .answer.abstained"))
    )
    _clean(page, "abstained answer")


def test_staff_tab_passes_axe(page: Any, live_app: LiveApp) -> None:
    _open_staff_tab(page)
    _clean(page, "staff login")
    _log_in(page, live_app.admin_password)
    WebDriverWait(page, WAIT).until(
        ec.text_to_be_present_in_element((By.ID, "admin-status"), "Ressources indexées")
    )
    _clean(page, "staff tab after login")


def test_screen_reader_names(page: Any) -> None:
    assert page.find_element(By.TAG_NAME, "html").get_attribute("lang") == "fr"
    assert len(page.find_elements(By.TAG_NAME, "h1")) == 1
    ask_and_wait_for_sources(page)
    badge = page.find_element(By.CSS_SELECTOR, "#chatbot .cite-badge a")
    assert badge.accessible_name.startswith("source 1 : "), badge.accessible_name
    live = page.find_elements(By.CSS_SELECTOR, "#chatbot [aria-live]")
    assert live and live[0].get_attribute("aria-live") in ("polite", "assertive")
    for element_id in ("send", "feedback-up", "feedback-down", "feedback-send", "view-resource"):
        assert page.find_element(By.ID, element_id).get_attribute("textContent").strip()


def _focused(page: Any) -> Any:
    return page.switch_to.active_element


def _focus_ring(page: Any) -> bool:
    return bool(
        page.execute_script(
            "const s = getComputedStyle(document.activeElement);"
            "return s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2;"
        )
    )


def _tab_to(page: Any, matches: Any, *, limit: int = 80, back: bool = False) -> Any:
    """Press Tab (Shift+Tab) until the focused element satisfies `matches`; every stop on
    the way must show a focus ring."""
    for _ in range(limit):
        chain = Keys.SHIFT + Keys.TAB if back else Keys.TAB
        _focused(page).send_keys(chain)
        element = _focused(page)
        if matches(element):
            assert _focus_ring(page), element.get_attribute("outerHTML")[:200]
            return element
    raise AssertionError("element not reachable with the keyboard")


def _has_id(name: str) -> Any:
    return lambda e: (
        e.get_attribute("id") == name
        or bool(e.find_elements(By.XPATH, f"ancestor::*[@id='{name}']"))
    )


def test_keyboard_alone(page: Any) -> None:
    """Ask, open a cited source and send 👎 with a comment with Tab, Shift+Tab, Enter, Space."""
    page.find_element(By.TAG_NAME, "body").click()
    box = _tab_to(page, lambda e: e.tag_name == "textarea" and _has_id("question")(e))
    box.send_keys("Comment financer l'ESS en milieu rural ?")
    _tab_to(page, _has_id("send")).send_keys(Keys.ENTER)
    WebDriverWait(page, ANSWER_WAIT).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "#sources .source"))
    )
    _tab_to(page, _has_id("view-resource")).send_keys(Keys.ENTER)
    WebDriverWait(page, WAIT).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "#resource-viewer .resource"))
    )
    down = _tab_to(page, _has_id("feedback-down"), back=True)
    down.send_keys(Keys.SPACE)
    comment = _tab_to(page, lambda e: e.tag_name == "textarea" and _has_id("feedback-comment")(e))
    comment.send_keys("Trop général (clavier)")
    _tab_to(page, _has_id("feedback-send")).send_keys(Keys.ENTER)
    WebDriverWait(page, WAIT).until(
        ec.text_to_be_present_in_element((By.ID, "feedback-msg"), "Merci")
    )


def test_zoom_200_on_a_320_px_window(page: Any, artifacts: Path) -> None:
    size = page.get_window_size()
    try:
        page.set_window_size(320, 800)
        page.execute_script("document.documentElement.style.fontSize = '200%'")
        ask_and_wait_for_sources(page)
        widths = page.execute_script(
            "const c = document.querySelector('#chatbot');"
            "return [document.documentElement.clientWidth, c.scrollWidth, c.clientWidth,"
            " document.querySelector('#question textarea').getBoundingClientRect().right];"
        )
        viewport, chat_scroll, chat_client, box_right = widths
        assert chat_scroll <= chat_client + 1, widths  # no horizontal scroll in the chat
        assert box_right <= viewport + 1, widths  # the question box fits the window
        page.save_screenshot(str(artifacts / "chat-320px-zoom200.png"))
    finally:
        page.execute_script("document.documentElement.style.fontSize = ''")
        page.set_window_size(size["width"], size["height"])
