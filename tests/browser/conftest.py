"""Browser test set-up: the app under `streamlit run` and Debian's Chromium.

The app runs once per test session on a free 127.0.0.1 port against the test
database of `tests/conftest.py`. The `engine` fixture empties that database after
each test that requests it, so a browser test starts on a first-run install.
"""

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")

# Playwright cannot install its own browser here, so it drives Debian's Chromium.
# The flags run it headless and turn off its background requests for updates,
# sync and component downloads.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

STARTUP_TIMEOUT_S = 30
SHUTDOWN_TIMEOUT_S = 10
# Playwright waits this long for an element or an `expect` condition. The slowest
# step, the 30-row import, takes a few seconds, so a busy machine has room to spare.
ACTION_TIMEOUT_MS = 20_000


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    """Return Debian's Chromium, or skip (fail with RECOVA_REQUIRE_BROWSER=1)."""
    if CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK):
        return CHROMIUM

    reason = (
        f"Chromium not found at {CHROMIUM}: install it with "
        "`apt-get install -y chromium fonts-wqy-microhei`"
    )
    if os.environ.get("RECOVA_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (RECOVA_REQUIRE_BROWSER=1 makes this an error)")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_healthy(process: subprocess.Popen, url: str, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"streamlit exited with code {process.returncode} before responding to "
                f"{url}; its output:\n{log_path.read_text(errors='replace')}"
            )
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)

    raise RuntimeError(
        f"streamlit did not respond to {url} within {STARTUP_TIMEOUT_S} s; "
        f"its output:\n{log_path.read_text(errors='replace')}"
    )


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=SHUTDOWN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=SHUTDOWN_TIMEOUT_S)


@pytest.fixture(scope="session")
def app_url(chromium_path: Path, database_url: str) -> Iterator[str]:
    """Start `streamlit run app.py` on the test database and return its base URL."""
    port = _free_port()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    # One log per pytest process, so two runs at the same time keep separate logs.
    log_path = ARTIFACTS / f"streamlit-{os.getpid()}.log"
    command = [
        sys.executable, "-m", "streamlit", "run", "app.py",
        "--server.port", str(port),
        "--server.address", "127.0.0.1",
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
        "--server.fileWatcherType", "none",
        # Tests must see an exception if one happens; production hides the details.
        "--client.showErrorDetails", "full",
    ]  # fmt: skip
    env = {**os.environ, "DATABASE_URL": database_url}

    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_healthy(process, f"{base}/_stcore/health", log_path)
        yield base
    finally:
        _stop(process)


@pytest.fixture(scope="session")
def browser(chromium_path: Path):
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=ACTION_TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium_path), args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    # Keep each phase's report on the test item, so `page` can tell that a test failed.
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def page(browser, request):
    """Open a page in a new browser context, so each test gets its own app session.

    When the test fails, the page is saved as tests/artifacts/TEST-failed.png first.
    """
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    page = context.new_page()
    yield page

    call_report = getattr(request.node, "report_call", None)
    if call_report is not None and call_report.failed:
        page.screenshot(path=ARTIFACTS / f"{request.node.name}-failed.png")
    context.close()


@pytest.fixture
def screenshot(page, request) -> Callable[[str], Path]:
    """Return a function that saves the browser window as tests/artifacts/TEST-STEP.png.

    Streamlit scrolls its main area inside its own container, so the picture shows the
    part of the page that is scrolled into view, not the whole page.
    """

    def save(step: str) -> Path:
        path = ARTIFACTS / f"{request.node.name}-{step}.png"
        page.screenshot(path=path)
        return path

    return save
