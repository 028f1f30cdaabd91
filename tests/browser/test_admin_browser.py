"""The « Espace équipe » tab, end to end in headless Chromium: the password gate, the session
cookie, logout."""

from __future__ import annotations

from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.conftest import WAIT, LiveApp
from ui.admin import WRONG_PASSWORD

pytestmark = pytest.mark.browser


def _open_staff_tab(driver: Any) -> None:
    tab = driver.find_element(By.ID, "tab-equipe-button")
    assert tab.text == "Espace équipe"
    tab.click()
    WebDriverWait(driver, WAIT).until(ec.visibility_of_element_located((By.ID, "admin-password")))


def _log_in(driver: Any, password: str) -> None:
    """Submit the login form: the page reloads on the staff tab."""
    field = driver.find_element(By.ID, "admin-password")
    assert field.get_attribute("type") == "password"
    field.clear()
    field.send_keys(password)
    driver.find_element(By.ID, "admin-login").click()


def _admin_controls_visible(driver: Any) -> list[str]:
    """Ids / labels of staff-only controls currently displayed."""
    shown = [
        el.get_attribute("id")
        for el in driver.find_elements(By.CSS_SELECTOR, "#admin-panel, #admin-status")
        if el.is_displayed()
    ]
    shown += [
        b.text
        for b in driver.find_elements(By.TAG_NAME, "button")
        if b.text in ("Reconstruire l'index", "Supprimer", "Ajouter au corpus", "Se déconnecter")
        and b.is_displayed()
    ]
    return shown


def test_wrong_password_is_refused(page: Any) -> None:
    _open_staff_tab(page)
    assert _admin_controls_visible(page) == []

    _log_in(page, "pas-le-bon")
    WebDriverWait(page, WAIT).until(
        ec.text_to_be_present_in_element((By.ID, "admin-login-msg"), WRONG_PASSWORD)
    )
    assert _admin_controls_visible(page) == []
    assert page.find_element(By.ID, "admin-password").is_displayed()
    assert all(c["name"] != "ess_staff" for c in page.get_cookies())


def test_right_password_shows_corpus_status(page: Any, live_app: LiveApp) -> None:
    _open_staff_tab(page)
    _log_in(page, live_app.admin_password)

    WebDriverWait(page, WAIT).until(
        ec.text_to_be_present_in_element((By.ID, "admin-status"), "Ressources indexées")
    )
    status = " ".join(page.find_element(By.ID, "admin-status").text.split())
    assert "Ressources indexées : 9" in status, status
    assert "Passages :" in status
    # the login box is hidden (Gradio removes a hidden column from the page)
    assert not any(el.is_displayed() for el in page.find_elements(By.ID, "admin-login-box"))
    assert "Reconstruire l'index" in _admin_controls_visible(page)
    assert WRONG_PASSWORD not in page.find_element(By.TAG_NAME, "body").text

    cookie = next(c for c in page.get_cookies() if c["name"] == "ess_staff")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert page.execute_script("return document.cookie").find("ess_staff") == -1  # not for JS


def test_logout_closes_the_panel_and_the_session(page: Any, live_app: LiveApp) -> None:
    _open_staff_tab(page)
    _log_in(page, live_app.admin_password)
    WebDriverWait(page, WAIT).until(ec.element_to_be_clickable((By.ID, "admin-logout"))).click()
    WebDriverWait(page, WAIT).until(
        ec.text_to_be_present_in_element((By.ID, "admin-login-msg"), "déconnecté")
    )
    assert _admin_controls_visible(page) == []
    page.refresh()  # the same page again: the staff tab, and still logged out
    WebDriverWait(page, WAIT).until(ec.visibility_of_element_located((By.ID, "admin-password")))
    assert _admin_controls_visible(page) == []
