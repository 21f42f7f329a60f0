"""Browser tests: the Subscription and credits page (web/) in headless Chromium, driven by
Playwright, against the real local server and its Stripe stand-in.

Chromium is Debian's (`make test` installs it when it can); Playwright drives it through
`executable_path`, so no browser is downloaded. Without Chromium these tests skip, unless
REQUIRE_BROWSER=1 (CI sets it) makes that a failure. Screenshots go to build/screenshots/."""
from __future__ import annotations

import os
import shutil

import pytest

from tests.e2e.conftest import ROOT, Server

SCREENSHOTS = ROOT / "build" / "screenshots"
# As the machine's own probe starts it: no sandbox as root, and nothing that calls out to Google.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def _chromium() -> str | None:
    return os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def _missing(reason: str):
    if os.environ.get("REQUIRE_BROWSER") == "1":
        pytest.fail(reason + " (REQUIRE_BROWSER=1)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser():
    path = _chromium()
    if path is None:
        _missing("Chromium is not installed (Debian: apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed (make test installs it)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="session")
def site(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("browser") / "data").start("--fresh")
    yield srv
    srv.stop()


@pytest.fixture
def page(browser, site, request):
    context = browser.new_context(viewport={"width": 1100, "height": 900}, base_url=site.url)
    context.set_default_timeout(15_000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda e: errors.append(str(e)))
    yield tab
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(SCREENSHOTS / f"{request.node.name}.png"), full_page=True)
    context.close()
    assert errors == [], f"the page raised: {errors}"
