"""The web page in a real browser, against the real server: Debian's Chromium driven by Playwright.

The server runs with uvicorn on 127.0.0.1 on a free port, in a thread of this process.
Playwright cannot download its own browser here, so it is given Chromium's path.
Outside CI the browser test skips, saying so, when no Chromium is installed; in CI
(.ci/run installs Chromium) it always runs.
"""

from __future__ import annotations

import http.client
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fashion_search.search.live import served_on_loopback
from test_search_index import build_search_project

from fashion_search.search.engine import SearchEngine
from fashion_search.search.screenshots import search_and_capture

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SECRET = "not-for-the-web"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """(host, port) of the app served by uvicorn from a thread, on a port the OS chose."""
    root = build_search_project(tmp_path_factory.mktemp("browser"))
    (root / "secret.txt").write_text(SECRET)
    engine = SearchEngine.open(root / "models/index", root=root)
    with served_on_loopback(engine) as address:
        yield address


def raw_get(address: tuple[str, int], path: str) -> tuple[int, str]:
    """A GET with the path sent exactly as written (browsers and httpx would normalise `..`)."""
    connection = http.client.HTTPConnection(*address)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        connection.close()


@pytest.mark.parametrize("path", ["/images/..", "/images/../secret.txt", "/images/../../../secret.txt",
                                  "/images/..%2F..%2F..%2Fsecret.txt", "/images//etc/passwd",
                                  "/static/../../../../secret.txt"])
def test_the_live_server_answers_dot_dot_paths_with_404(server: tuple[str, int], path: str) -> None:
    status, body = raw_get(server, path)
    assert status == 404 and SECRET not in body and "root:" not in body


def test_the_live_server_binds_to_localhost(server: tuple[str, int]) -> None:
    assert server[0] == "127.0.0.1"
    assert raw_get(server, "/health")[0] == 200


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"),
                    reason="no Chromium on PATH (apt-get install chromium); CI installs it and runs this test")
def test_a_shopper_searches_and_sees_the_pictures(server: tuple[str, int], tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    assert CHROMIUM is not None, "CI must have Chromium: .ci/run installs it with apt-get install chromium"
    url = f"http://{server[0]}:{server[1]}/"
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.goto(url)
            expect(page.locator("#model")).to_have_text("finetuned")
            assert page.locator(".example").count() >= 1
            search_and_capture(page, url, "a red dress", tmp_path / "search.png")  # as `fashion-search screenshots`
            widths = page.eval_on_selector_all("#results img", "images => images.map(i => i.naturalWidth)")
            assert len(widths) == 10 and all(width > 0 for width in widths)
            assert page.locator("#results .score").count() == 10
            assert "a red dress" in page.text_content("#status")

            page.locator(".example", has_text="denim shorts").click()  # an example query searches by itself
            expect(page.locator("#status")).to_contain_text("denim shorts")
            expect(page.locator("#query")).to_have_value("denim shorts")
            page.fill("#query", "   ")
            page.click("#search-button")
            expect(page.locator("#status.error")).to_contain_text("empty")
        finally:
            browser.close()
    assert (tmp_path / "search.png").stat().st_size > 0
    assert not problems, problems  # a CSP violation or a script error shows up here
