"""Pictures of the search page answering queries, taken in a real browser (Chromium, through Playwright).

The browser test drives the page through `search_and_capture`, and `fashion-search screenshots`
uses the same function on the default run's index to write the README's pictures: what the
README shows is what the test checks, never a hand-made image.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from fashion_search.errors import UserError

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 900, "height": 640}
PHONE_VIEWPORT = {"width": 390, "height": 844}  # an iPhone 12-15's CSS width


class BrowserUnavailableError(UserError):
    """No Chromium or no Playwright: the message says what to install."""


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def search_and_capture(page: object, url: str, query: str, out: Path | None = None, results: int = 10) -> None:
    """Open the page, type `query`, search, wait for every result picture to load and, with `out`,
    save a screenshot of the viewport."""
    page.goto(url)
    page.fill("#query", query)
    page.click("#search-button")
    page.wait_for_selector("#results li img")
    page.wait_for_function("() => [...document.querySelectorAll('#results img')].every(i => i.complete)")
    page.wait_for_function(f"() => document.querySelectorAll('#results li').length >= {min(results, 1)}")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out))


def with_browser(action: Callable[[object], None], viewport: dict = VIEWPORT) -> None:
    """Run `action(page)` in headless Chromium; a missing browser is one line saying what to install."""
    chromium = chromium_path()
    if chromium is None:
        raise BrowserUnavailableError("no Chromium on PATH: apt-get install chromium (Playwright's own browser "
                                      "download does not work offline)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise BrowserUnavailableError("Playwright is not installed: pip install -e '.[test]'") from None
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport=viewport)
            action(page)
        finally:
            browser.close()


def file_name(query: str, suffix: str = "") -> str:
    """reports/page_<query words joined by _><suffix>.png"""
    words = "_".join("".join(c for c in word if c.isalnum()) for word in query.lower().split())
    return f"page_{words}{suffix}.png"


def capture_queries(index: Path, queries: list[str], out_dir: Path) -> list[Path]:
    """Serve `index` on 127.0.0.1 and screenshot the page answering each query, at a desktop width and at
    a phone's (page_<query>_phone.png); the files written."""
    from fashion_search.search.engine import SearchEngine
    from fashion_search.search.live import served_on_loopback

    engine = SearchEngine.open(index)
    written = []
    with served_on_loopback(engine) as (host, port):
        for viewport, suffix in ((VIEWPORT, ""), (PHONE_VIEWPORT, "_phone")):
            outs = [out_dir / file_name(query, suffix) for query in queries]

            def shoot(page: object, outs: list[Path] = outs) -> None:
                for query, out in zip(queries, outs):
                    search_and_capture(page, f"http://{host}:{port}/", query, out)
            with_browser(shoot, viewport)
            written += outs
    for path in written:
        shrink_png(path)
    return written


def shrink_png(path: Path, colours: int = 96) -> None:
    """Quantise a screenshot to a palette: a page of flat colours keeps its look at a fraction of the bytes."""
    from PIL import Image

    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=colours, method=Image.Quantize.MEDIANCUT)
    small.save(path, format="PNG", optimize=True)
