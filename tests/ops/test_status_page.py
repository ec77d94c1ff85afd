"""The status page in a real headless Chromium (Debian's, driven by Playwright): it loads with no
console error, shows the routes of the running config, its numbers move after real connections,
a down backend shows as DOWN, and a broken identifier file saved meanwhile shows its error.

``PASSTHRU_UPDATE_SCREENSHOT=1`` also writes the screenshot the README shows (docs/status-page.png).
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ops.instance import HTTP_REQUEST, IDENTIFIER, running
from tests.support.passthru_process import REPO

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (.ci/apt-packages.txt has it)"
)


@pytest.fixture
def browser_page(tmp_path: Path) -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),  # a fresh user-data-dir
            executable_path=CHROMIUM,
            headless=True,
            args=ARGS,
            viewport={"width": 1280, "height": 1100},
        )
        try:
            yield context.new_page()
        finally:
            context.close()


def test_status_page_in_chromium(tmp_path: Path, browser_page) -> None:  # type: ignore[no-untyped-def]
    page = browser_page
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    served = tmp_path / "served"
    served.mkdir()
    with running(served) as inst:
        page.goto(inst.url)
        for name in ("ssh", "web", "zqx"):
            page.wait_for_selector(f'#routes tr[data-route="{name}"]')
        page.wait_for_selector('#identifiers tr[data-identifier="zqx"]')
        assert "active" in page.inner_text('#identifiers tr[data-identifier="zqx"]')
        assert page.inner_text("#workers tbody").count("\n") == 1  # two workers, two rows
        total = int(page.inner_text("#conn-total").replace(",", ""))

        # real traffic for a few seconds, so the chart has a shape
        stop = threading.Event()

        def traffic() -> None:
            while not stop.wait(0.05):
                inst.ssh()

        worker = threading.Thread(target=traffic, daemon=True)
        worker.start()
        try:
            assert inst.send(HTTP_REQUEST) == b""  # its backend refuses: DOWN
            assert inst.send(b"\x07\x07 nobody knows this") == b""
            page.wait_for_function(
                "total => Number(document.getElementById('conn-total').textContent.replace(/,/g, '')) > total + 10",
                arg=total,
                timeout=15000,
            )
            page.wait_for_function(
                "() => Number(document.querySelector('#routes tr[data-route=\"ssh\"] .route-total')"
                ".textContent.replace(/,/g, '')) > 5",
                timeout=15000,
            )
            page.wait_for_selector("#routes td[data-backend] + td .badge.down", timeout=15000)
            page.wait_for_function("() => document.getElementById('unmatched').textContent === '1'", timeout=15000)

            # a broken identifier file: the page shows its error, the old version still serves
            (inst.directory / "identifiers" / "zqx.py").write_text(IDENTIFIER.replace("def identify", "def identify(:"))
            page.wait_for_function(
                "() => (document.querySelector('#identifiers tr[data-identifier=\"zqx\"] .error') || {})"
                ".textContent?.includes('SyntaxError')",
                timeout=15000,
            )
            row = page.inner_text('#identifiers tr[data-identifier="zqx"]')
            assert "zqx.py:3" in row and "previous version serves" in row
            page.wait_for_timeout(2500)  # a few more seconds of chart
        finally:
            stop.set()
            worker.join(timeout=10)
        assert page.locator("#chart polyline").count() == 2
        assert "not updating" not in page.inner_text("#live")
        shot = tmp_path / "status-page.png"
        page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("PASSTHRU_UPDATE_SCREENSHOT") == "1":
        shutil.copy(shot, REPO / "docs" / "status-page.png")
    assert problems == []
