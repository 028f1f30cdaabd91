"""Fixtures for the end-to-end browser tests.

`live_app` starts the REAL app (`python -m assistant serve`) once per test session, in a
subprocess, on a free port, with its data dir (index, model cache, feedback db) in a tmp
folder and a known staff password. The first start builds the index with the real default
model (the model itself is rebuilt into the data dir's cache first), so the wait is long.

`browser` is one headless Debian Chromium (driven by Debian's chromedriver) for the whole
session; each test loads the page again, so every test gets a fresh Gradio session.
The tests are skipped, with the reason, only when chromium or chromedriver is missing
(`bash scripts/install-browser.sh` installs them; CI does).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ADMIN_PASSWORD = "mot-de-passe-de-test-é"  # non-ASCII on purpose
STARTUP_TIMEOUT = 300.0  # first run: model rebuild + index build with the real model
WAIT = 30.0  # default explicit wait for something to show up in the page
ANSWER_WAIT = 90.0  # an answer with the real model on 2 CPU cores (first question is slower)


@dataclass(frozen=True)
class LiveApp:
    """The served app: its URL and where it keeps its data."""

    url: str
    data_dir: Path
    admin_password: str

    @property
    def feedback_db(self) -> Path:
        return self.data_dir / "feedback.sqlite3"


def _missing_browser() -> str | None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        return (
            f"{' and '.join(missing)} not installed: run `bash scripts/install-browser.sh` "
            "(Debian packages chromium chromium-driver)"
        )
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _missing_browser()
    if reason is None:
        return
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.path)).parent == here:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """On a failed browser test, save what the page looked like to test-artifacts/."""
    report = yield
    driver = getattr(item, "funcargs", {}).get("page")
    if report.when == "call" and report.failed and driver is not None:
        ARTIFACTS.mkdir(exist_ok=True)
        try:
            driver.save_screenshot(str(ARTIFACTS / f"failed-{item.name}.png"))
        except Exception as exc:  # the browser may be gone; the test failure matters more
            sys.stderr.write(f"[browser tests] no failure screenshot: {exc}\n")
    return report


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _wait_until_up(url: str, proc: subprocess.Popen[bytes], stderr_log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"the app exited with code {proc.returncode} before serving; stderr tail:\n"
                + _tail(stderr_log)
            )
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(1.0)
    raise RuntimeError(
        f"the app did not answer HTTP 200 on {url} within {STARTUP_TIMEOUT:.0f} s; "
        "stderr tail:\n" + _tail(stderr_log)
    )


@pytest.fixture(scope="session")
def live_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    """The real app served by `python -m assistant serve` in a subprocess."""
    if reason := _missing_browser():
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("browser-app")
    data_dir = root / "data"
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("ESS_ASSISTANT_")
    }  # no stray settings from the developer's shell
    env.update(
        ESS_ASSISTANT_DATA_DIR=str(data_dir),
        ESS_ASSISTANT_ADMIN_PASSWORD=ADMIN_PASSWORD,
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        GRADIO_ANALYTICS_ENABLED="False",
        PYTHONUNBUFFERED="1",
    )
    stdout_log, stderr_log = root / "serve.stdout.log", root / "serve.stderr.log"
    with stdout_log.open("wb") as out, stderr_log.open("wb") as err:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "assistant",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=err,
        )
    try:
        started = time.monotonic()
        _wait_until_up(url, proc, stderr_log)
        sys.stderr.write(
            f"\n[browser tests] app up on {url} in {time.monotonic() - started:.1f} s\n"
        )
        yield LiveApp(url=url, data_dir=data_dir, admin_password=ADMIN_PASSWORD)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="session")
def browser(live_app: LiveApp) -> Iterator[Any]:
    """One headless Debian Chromium for the session (never a test tool's own download)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="ess-chromium-profile-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1366,1000",
        "--lang=fr-FR",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(browser: Any, live_app: LiveApp) -> Any:
    """The app freshly loaded (a new Gradio session) and ready for input."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(live_app.url)
    browser.delete_all_cookies()  # no staff session left over from another test
    browser.get(live_app.url)
    WebDriverWait(browser, WAIT).until(
        ec.element_to_be_clickable((By.CSS_SELECTOR, "#question textarea"))
    )
    return browser


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """`test-artifacts/` (git-ignored), for screenshots."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
