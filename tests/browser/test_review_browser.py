"""The staff loop in the served app, in headless Chromium: a question that abstains and a 👎
on another both reach « À revoir »; staff label one with a resource and the other as out of
scope; the export holds both cases and `ess-assistant eval` runs on it."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.conftest import REPO, WAIT, LiveApp
from tests.browser.test_admin_browser import _log_in, _open_staff_tab
from tests.browser.test_chat_browser import ANSWER_WAIT, ask, ask_and_wait_for_sources

pytestmark = pytest.mark.browser

ABSTAINS = "Quelle est la recette des crêpes de la Chandeleur ?"
DISLIKED = "Qui a réalisé le panorama de projets ESS ruraux ?"
REPERESS = "reperess-developper-l-ess-dans-les-quartiers-politique-de-la-ville"


def _queue_text(driver: Any) -> str:
    """What the « À revoir » table shows (Gradio's virtual table recycles its row elements, so
    the text on screen is read, not the cells)."""
    table = driver.find_element(By.ID, "review-queue")
    driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", table)
    return str(table.get_attribute("innerText"))


def _log_ids(live_app: LiveApp) -> dict[str, str]:
    """question → its N° (the number shown in the first column)."""
    with sqlite3.connect(live_app.feedback_db) as conn:
        return {q: str(i) for i, q in conn.execute("SELECT id, question FROM questions")}


def _set_number(driver: Any, value: str) -> None:
    box = driver.find_element(By.CSS_SELECTOR, "#review-id input")
    box.clear()
    box.send_keys(value)


def test_the_whole_review_loop(page: Any, live_app: LiveApp, tmp_path: Path) -> None:
    ask(page, ABSTAINS)
    WebDriverWait(page, ANSWER_WAIT).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "#chatbot .answer.abstained"))
    )
    ask_and_wait_for_sources(page, DISLIKED)
    page.find_element(By.ID, "feedback-down").click()
    page.find_element(By.ID, "feedback-send").click()
    WebDriverWait(page, WAIT).until(
        ec.text_to_be_present_in_element((By.ID, "feedback-msg"), "Merci")
    )

    _open_staff_tab(page)
    _log_in(page, live_app.admin_password)
    WebDriverWait(page, WAIT).until(
        ec.element_to_be_clickable((By.XPATH, "//button[contains(., 'questions à revoir')]"))
    ).click()
    WebDriverWait(page, WAIT).until(
        lambda d: ABSTAINS in _queue_text(d) and DISLIKED in _queue_text(d)
    )
    queue = _log_ids(live_app)

    _set_number(page, queue[DISLIKED])
    picker = page.find_element(By.CSS_SELECTOR, "#review-resources input")
    picker.click()
    picker.send_keys("RepèrESS")
    picker.send_keys(Keys.ENTER)
    page.find_element(By.ID, "review-label").click()
    WebDriverWait(page, WAIT).until(
        ec.text_to_be_present_in_element((By.ID, "review-msg"), "étiquetée")
    )
    _set_number(page, queue[ABSTAINS])
    page.find_element(By.CSS_SELECTOR, "#review-oos input").click()
    page.find_element(By.ID, "review-label").click()
    WebDriverWait(page, WAIT).until(
        ec.text_to_be_present_in_element((By.ID, "review-msg"), "hors du champ")
    )
    WebDriverWait(page, WAIT).until(
        lambda d: ABSTAINS not in _queue_text(d) and DISLIKED not in _queue_text(d)
    )

    cookie = next(c["value"] for c in page.get_cookies() if c["name"] == "ess_staff")
    export = httpx.get(f"{live_app.url}equipe/revue.jsonl", cookies={"ess_staff": cookie})
    assert export.status_code == 200
    cases = {json.loads(line)["question"]: json.loads(line) for line in export.text.splitlines()}
    assert cases[DISLIKED]["relevant"] == {REPERESS: 2}
    assert cases[ABSTAINS]["out_of_scope"] is True and cases[ABSTAINS]["style"] == "review"

    path = tmp_path / "cas.jsonl"
    path.write_text(export.text, encoding="utf-8")
    env = {**os.environ, "ESS_ASSISTANT_DATA_DIR": str(live_app.data_dir), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "assistant", "eval", str(path), "--summary"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"{len(cases)} questions" in proc.stdout
