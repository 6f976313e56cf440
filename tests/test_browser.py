"""The web page in a real browser, against the real server: Debian's Chromium driven by Playwright.

The server runs with uvicorn on 127.0.0.1 on a free port, in a thread of this process.
Playwright cannot download its own browser here, so it is given Chromium's path.
Outside CI the browser tests skip, saying so, when no Chromium is installed; in CI
(.ci/run installs Chromium) they always run. The accessibility check loads axe-core from
node_modules (`npm ci` installs it from package.json) into the page.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import shutil
from urllib.parse import parse_qs, urlsplit
from collections.abc import Iterator
from pathlib import Path

import pytest
from fashion_search.search.live import served_on_loopback
from test_search_index import build_search_project

from fashion_search.search.app import MAX_RESULTS
from fashion_search.search.engine import SearchEngine
from fashion_search.search.highlight import named_in
from fashion_search.search.screenshots import search_and_capture

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SECRET = "not-for-the-web"
AXE = Path(__file__).resolve().parents[1] / "node_modules/axe-core/axe.min.js"
PHONE = {"width": 390, "height": 844}
needs_chromium = pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"),
                                    reason="no Chromium on PATH (apt-get install chromium); CI installs it")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = build_search_project(tmp_path_factory.mktemp("browser"))
    (root / "secret.txt").write_text(SECRET)
    return root


@pytest.fixture(scope="module")
def engine(project: Path) -> SearchEngine:
    return SearchEngine.open(project / "models/index", root=project)


@pytest.fixture(scope="module")
def server(engine: SearchEngine) -> Iterator[tuple[str, int]]:
    """(host, port) of the app served by uvicorn from a thread, on a port the OS chose."""
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


def product_of(image_id: str) -> str:
    """MEN-Denim-id_00008122-03_1_front.jpg -> MEN-Denim-id_00008122-03: the views of one product share it."""
    return image_id.rsplit("_", 2)[0]


def cropped_photo(path: Path) -> bytes:
    """A gallery picture as a shopper might photograph it again: cropped by a tenth and re-encoded as JPEG."""
    from PIL import Image

    with Image.open(path) as image:
        width, height = image.size
        cropped = image.convert("RGB").crop((width // 20, height // 20, width - width // 20, height - height // 20))
    out = io.BytesIO()
    cropped.save(out, format="JPEG", quality=80)
    return out.getvalue()


def photographed_view(engine: SearchEngine) -> str:
    """The middle gallery image among those whose product has another view in the gallery."""
    products = [product_of(image_id) for image_id in engine.index.ids]
    shown_twice = [image_id for image_id, product in zip(engine.index.ids, products) if products.count(product) > 1]
    return shown_twice[len(shown_twice) // 2]


def tab_to_first_result(page) -> None:
    """Real Tab presses from the search box until the first result has the focus (at most one per control)."""
    page.click("#query")
    for _ in range(page.locator("a[href], button, input, select, summary").count()):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement === document.querySelector('.result')"):
            return
    raise AssertionError("Tab never reached the first result: " + page.evaluate("document.activeElement.outerHTML"))


def accessible_names(page, selector: str) -> list[str]:
    """What a screen reader announces for each element: Chromium's computed accessible names (DevTools protocol)."""
    session = page.context.new_cdp_session(page)
    root = session.send("DOM.getDocument", {"depth": 0})["root"]["nodeId"]
    nodes = session.send("DOM.querySelectorAll", {"nodeId": root, "selector": selector})["nodeIds"]
    return [session.send("Accessibility.getPartialAXTree", {"nodeId": node, "fetchRelatives": False})["nodes"][0][
        "name"]["value"] for node in nodes]


def result_ids(page) -> list[str]:
    return page.eval_on_selector_all("#results img", "images => images.map(i => decodeURIComponent("
                                                     "i.getAttribute('src').split('/').pop()))")


def serious_accessibility_violations(page) -> list[str]:
    """axe-core's serious and critical findings on the page as it is now (evaluated through the
    DevTools protocol, which the page's Content-Security-Policy does not govern)."""
    page.evaluate(AXE.read_text(encoding="utf-8"))
    found = page.evaluate("async () => (await axe.run(document)).violations"
                          ".filter(v => ['serious', 'critical'].includes(v.impact))"
                          ".map(v => v.id + ': ' + v.help + ' ' + JSON.stringify(v.nodes.map(n => n.target)))")
    return list(found)


@needs_chromium
def test_a_shopper_filters_opens_details_finds_more_like_this_and_searches_by_photo(
        server: tuple[str, int], engine: SearchEngine, project: Path, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    url = f"http://{server[0]}:{server[1]}/"
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(str(error)))
            gender = engine.facets.masks["gender"]
            value = max(gender, key=lambda v: gender[v].sum())
            query = f"a red dress for {value}"
            search_and_capture(page, url, query)

            # A filter chip narrows the results, shows its state, and lands in the URL.
            chip = page.locator(f'.chip[data-facet="gender"][data-value="{value}"]')
            chip.click()
            expect(chip).to_have_attribute("aria-pressed", "true")
            expect(page.locator("#status")).to_contain_text("match the filters")
            assert parse_qs(urlsplit(page.url).query) == {"q": [query], "k": ["10"], "gender": [value]}
            ids = result_ids(page)
            allowed = {engine.index.ids[row] for row in gender[value].nonzero()[0]}
            assert ids and set(ids) <= allowed and len(ids) == min(10, len(allowed))

            # Keyboard: Tab from the search box reaches the first result, Enter opens its details, Escape
            # closes them and returns focus; each result's name says what it shows, not only its rank.
            tab_to_first_result(page)
            page.keyboard.press("Enter")
            dialog = page.locator("#detail")
            expect(dialog).to_be_visible()
            first = ids[0]
            expect(page.locator("#detail-caption")).to_have_text(engine.caption(engine.row_of(first)))
            named = named_in(query, engine.facets)  # the query's words highlighted among the labels
            attributes = engine.facets.of_row(engine.row_of(first))
            marked = [v for facet, values in attributes.items() for v in values if v in named.get(facet, [])]
            assert value in marked  # the query names the gender every result has
            expect(page.locator("#detail-attributes mark")).to_have_count(len(marked))
            page.keyboard.press("Escape")
            expect(dialog).to_be_hidden()
            assert page.evaluate("document.activeElement === document.querySelector('.result')")
            names = accessible_names(page, ".result")
            texts = page.eval_on_selector_all("#results img", "images => images.map(i => i.alt)")
            assert len(names) == len(texts) == len(ids)
            assert all(text in name for name, text in zip(names, texts)), names
            # views of one product share their caption; products apart, the names tell them apart too
            assert len({name.split(":", 1)[1] for name in names}) == len(set(texts)) > 1, names

            # More like this: the gallery ranked by that image, itself left out, the filter kept.
            page.locator(".result").first.click()
            page.click("#more-like-this")
            expect(page.locator("#status")).to_contain_text("like " + first)
            assert parse_qs(urlsplit(page.url).query)["similar"] == [first]
            similar = result_ids(page)
            assert first not in similar and set(similar) <= allowed and similar
            page.go_back()  # the back button returns to the words
            expect(page.locator("#status")).to_contain_text(query)
            expect(page.locator("#query")).to_have_value(query)

            # Search by photo: a cropped, re-encoded picture of a gallery item finds another view of its product.
            page.click("#clear-filters")
            expect(page.locator(".chip[aria-pressed=true]")).to_have_count(0)
            source = photographed_view(engine)
            page.set_input_files("#photo", files=[{"name": "my photo.jpg", "mimeType": "image/jpeg",
                                                   "buffer": cropped_photo(project / engine.index.paths[
                                                       engine.row_of(source)])}])
            expect(page.locator("#status")).to_contain_text("like your photo")
            top5 = result_ids(page)[:5]
            others = [i for i in top5 if i != source and product_of(i) == product_of(source)]
            assert others, (source, top5)  # not only the photographed picture itself
            page.screenshot(path=str(tmp_path / "desktop.png"))

            assert serious_accessibility_violations(page) == [] if AXE.is_file() else True
            page.locator(".result").first.click()
            assert serious_accessibility_violations(page) == [] if AXE.is_file() else True
            page.keyboard.press("Escape")

            # A shared link restores the search: words, k and filters from the URL alone.
            phone = browser.new_page(viewport=PHONE)
            phone.on("pageerror", lambda error: problems.append(str(error)))
            phone.goto(url + f"?q=denim+shorts&k=5&gender={value}")
            expect(phone.locator("#status")).to_contain_text("denim shorts")
            expect(phone.locator("#results li")).to_have_count(min(5, len(allowed)))
            expect(phone.locator("#query")).to_have_value("denim shorts")
            expect(phone.locator(f'.chip[data-facet="gender"][data-value="{value}"]')).to_have_attribute(
                "aria-pressed", "true")
            assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]  # no sideways scroll
            phone.screenshot(path=str(tmp_path / "phone.png"))
        finally:
            browser.close()
    assert (tmp_path / "desktop.png").stat().st_size > 0 and (tmp_path / "phone.png").stat().st_size > 0
    assert not problems, problems


@pytest.mark.skipif(not AXE.is_file() and not os.environ.get("CI"),
                    reason="axe-core is not installed (npm ci); CI installs it")
@needs_chromium
def test_the_page_has_no_serious_accessibility_violation(server: tuple[str, int]) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            for viewport in ({"width": 1200, "height": 900}, PHONE):
                page = browser.new_page(viewport=viewport)
                search_and_capture(page, f"http://{server[0]}:{server[1]}/", "a red dress")
                assert serious_accessibility_violations(page) == [], viewport
                page.locator(".result").first.click()
                assert serious_accessibility_violations(page) == [], viewport
        finally:
            browser.close()


@needs_chromium
def test_a_shared_link_keeps_any_whole_k_clamped_as_the_api_clamps_it(server: tuple[str, int],
                                                                      engine: SearchEngine) -> None:
    from playwright.sync_api import expect, sync_playwright

    url = f"http://{server[0]}:{server[1]}/?q=denim+shorts&k="
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            for asked, shown in (("7", "7"), ("1000", str(MAX_RESULTS)), ("abc", "10"), ("0", "10"), ("20", "20")):
                page.goto(url + asked)
                expect(page.locator("#status")).to_contain_text("denim shorts")
                expect(page.locator("#k")).to_have_value(shown)
                expect(page.locator("#results li")).to_have_count(min(int(shown), engine.gallery_size))
                options = page.eval_on_selector_all("#k option", "options => options.map(o => Number(o.value))")
                assert options == sorted({5, 10, 20, 50, int(shown)}), options  # in order
            page.select_option("#k", "5")  # the usual choices still search
            expect(page.locator("#results li")).to_have_count(min(5, engine.gallery_size))
            assert parse_qs(urlsplit(page.url).query)["k"] == ["5"]
        finally:
            browser.close()
