"""The web service under arbitrary input (hypothesis): never a 500, never a file outside the gallery.

`/search` gets any text and any k; `/images/{id}` gets any id, percent-encoded or raw, with `..`,
`%2F`, `%5C`, NUL bytes and absolute paths. Every answer is a 200 or a 400 (search) or a 404
(images, unless the id is exactly a gallery id, when the bytes are that image's), and carries the
security headers. Files beside the gallery that the index does not name must never come back.

Two ways in: FastAPI's TestClient, whose httpx URL removes `..` segments and whose transport
percent-decodes the path a second time (so the id the app sees is worked out from the request
that was sent), and the app called as uvicorn calls it, with the request target exactly as written.
Redirects are judged, not followed: Starlette answers `/images/x/` with a 307 to `/images/x`.
"""

from __future__ import annotations

import asyncio
import json
import unicodedata
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import pytest
import regex
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_search_index import build_search_project

from fashion_search.search.app import MAX_RESULTS, create_app
from fashion_search.search.engine import SearchEngine

SECRET = "fuzz-secret-do-not-serve"
IMAGES = "/images/"
# No example database: it would leave a .hypothesis/ folder in the repository.
FUZZ = settings(max_examples=200, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = build_search_project(tmp_path_factory.mktemp("fuzz"))
    (root / "secret.txt").write_text(SECRET + " at the root")
    (root / "data/raw/secret.txt").write_text(SECRET + " beside the images folder")
    (root / "data/raw/images/secret.txt").write_text(SECRET + " in the images folder, not in the index")
    return root


@pytest.fixture(scope="module")
def engine(project: Path) -> SearchEngine:
    return SearchEngine.open(project / "models/index", root=project)


@pytest.fixture(scope="module")
def app(engine: SearchEngine):
    return create_app(engine)


@pytest.fixture(scope="module")
def client(app) -> TestClient:
    return TestClient(app, follow_redirects=False)  # a redirect is judged, not followed


@pytest.fixture(scope="module")
def gallery_bytes(engine: SearchEngine, project: Path) -> dict[str, bytes]:
    return {image_id: (project / path).read_bytes() for image_id, path in zip(engine.index.ids, engine.index.paths)}


@pytest.fixture(scope="module")
def outside_bytes(project: Path) -> set[bytes]:
    """Files a path trick could aim at: the secrets, the index's own files, the app's source."""
    files = [project / "secret.txt", project / "data/raw/secret.txt", project / "data/raw/images/secret.txt",
             project / "models/index/index.json", project / "metrics/evaluate.json",
             Path(__file__).resolve().parents[1] / "src/fashion_search/search/app.py"]
    return {path.read_bytes() for path in files}


def assert_security_headers(headers) -> None:
    assert headers["x-content-type-options"] == "nosniff"
    assert "default-src 'none'" in headers["content-security-policy"]


def assert_slash_redirect_stays_in_images(path: str, headers, body: bytes, netloc: str) -> None:
    """Starlette redirects `/images/x/` to `/images/x`: no body, same origin, still an image URL."""
    location = urlsplit(headers["location"])
    assert path.endswith("/") and body == b"" and location.netloc == netloc
    assert unquote(location.path).startswith(IMAGES)
    assert_security_headers(headers)


def assert_image_answer(status: int, headers, body: bytes, app_id: str | None,
                        gallery_bytes: dict[str, bytes], outside_bytes: set[bytes]) -> None:
    """200 with the image's bytes exactly when the app was asked for a gallery id, else 404."""
    assert_security_headers(headers)
    assert body not in outside_bytes and SECRET.encode() not in body
    if app_id in gallery_bytes:
        assert status == 200 and body == gallery_bytes[app_id]
    else:
        assert status == 404, (status, app_id, body[:200])


# --- /search ---------------------------------------------------------------------------------------

# Text a client can send: UTF-8, so no lone surrogates (those are covered as raw bytes below).
CONTROL = st.characters(categories=["Cc", "Cf", "Zs", "Zl", "Zp"])
EMOJI = st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF)
# Characters that show nothing: zero-width (format, Cf), control (Cc, NUL included), white space, Unicode's
# default-ignorable ones (the grapheme joiner, Hangul fillers, variation selectors, tags), the blank Braille
# cell, and combining marks, which show only on a character before them.
BLANK = ["\u034f", "\u2800", "\u115f", "\u1160", "\u3164", "\uffa0", "\ufe0f", "\U000e0100", "\U000e0041",
         "\u17b4", "\u180b", "\u0301", "\u20dd", "\u0903"]
INVISIBLE = st.one_of(st.sampled_from(["\x00", "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u202e", "\x7f",
                                       "\t", "\n", "\u3000", *BLANK]), CONTROL,
                      st.characters(categories=["Mn", "Mc", "Me"]))
INVISIBLE_QUERIES = st.text(alphabet=INVISIBLE, min_size=1, max_size=30)
QUERIES = st.one_of(
    INVISIBLE_QUERIES,
    st.builds(lambda pad, words: pad + words + pad, INVISIBLE_QUERIES, st.sampled_from(["a red dress", "shorts"])),
    st.text(),
    st.text(alphabet=st.one_of(CONTROL, EMOJI, st.characters(codec="utf-8")), max_size=50),
    st.text(min_size=500, max_size=4000),
    st.builds(lambda words, tail: words + tail, st.sampled_from(["a red dress", "denim shorts", " "]), st.text()),
)
K_VALUES = st.one_of(st.none(), st.integers(-1000, 1000), st.integers(), st.text(max_size=30),
                     st.sampled_from(["", " 5", "+3", "1_0", "1.0", "1.5", "1e3", "0x10", "٥", "5\x00", "-0"]))


@FUZZ
@given(q=QUERIES, k=K_VALUES)
def test_search_answers_any_query_and_k_with_200_or_400(client: TestClient, engine: SearchEngine,
                                                        q: str, k: int | str | None) -> None:
    params = {"q": q} if k is None else {"q": q, "k": str(k)}
    response = client.get("/search", params=params)
    assert response.status_code in (200, 400), (response.status_code, response.text[:300])
    assert_security_headers(response.headers)
    body = response.json()
    if response.status_code == 400:
        assert isinstance(body["detail"], str) and body["detail"]
        return
    results = body["results"]
    assert body["query"] == q and body["k"] == len(results) <= min(engine.gallery_size, MAX_RESULTS)
    assert [r["rank"] for r in results] == list(range(1, len(results) + 1))
    assert all(r["image_id"] in engine.index.ids for r in results)
    if isinstance(k, int):
        assert len(results) == min(k, engine.gallery_size, MAX_RESULTS)


@FUZZ
@given(q=QUERIES, k=st.one_of(st.none(), st.integers()))
def test_search_status_follows_the_query_and_k(client: TestClient, q: str, k: int | None) -> None:
    """A 400 exactly when the query shows nothing (blank, NUL, zero-width, control, default-ignorable
    characters and lone combining marks only)
    or k is below one: nothing else is refused."""
    response = client.get("/search", params={"q": q} if k is None else {"q": q, "k": k})
    refused = not shows_something(q) or (k is not None and k < 1)
    assert response.status_code == (400 if refused else 200), response.text[:300]


DEFAULT_IGNORABLE = regex.compile(r"\p{Default_Ignorable_Code_Point}")


def shows_something(text: str) -> bool:
    """The oracle: Unicode's Default_Ignorable_Code_Point from the `regex` module's tables."""
    return any(not (char.isspace() or char == "\u2800" or unicodedata.category(char) in ("Cc", "Cf")
                    or unicodedata.category(char).startswith("M") or DEFAULT_IGNORABLE.match(char))
               for char in text)


@FUZZ
@given(q=INVISIBLE_QUERIES)
def test_a_query_of_only_invisible_characters_is_empty(client: TestClient, q: str) -> None:
    response = client.get("/search", params={"q": q})
    assert response.status_code == 400 and "the query is empty" in response.json()["detail"], response.text[:300]


@pytest.mark.parametrize("query_string", ["%00", "%E2%80%8B", "%00%E2%80%8B%0D%0A%EF%BB%BF", "%E2%80%AE%09"])
def test_raw_nul_and_zero_width_queries_are_400(app, query_string: str) -> None:
    status, _, body = send_raw(app, ("/search?q=" + query_string).encode("ascii"))
    assert status == 400 and "the query is empty" in json.loads(body)["detail"]


QUERY_BYTES = ["%ED%A0%80", "%FF", "%FE%FF", "%C0%AE", "%E2%82", "%F0%9F%91%97", "%00", "%0D%0A", "%", "%z", "%%",
               "+", "%2B", "&", "=", ";", "a", "dress", "%20", "q=", "k=", "k=5", "k=-1", "k=%FF", "q"]


@FUZZ
@given(query_string=st.lists(st.sampled_from(QUERY_BYTES), max_size=12).map("".join))
def test_search_answers_raw_query_strings_with_200_or_400(app, engine: SearchEngine, query_string: str) -> None:
    """Invalid UTF-8, stray `%`, repeated and empty parameters, sent as written (httpx would escape a
    stray `%`): still a 200 or a 400 with a JSON body, never a 500."""
    status, headers, body = send_raw(app, ("/search?q=" + query_string).encode("ascii"))
    assert status in (200, 400), (status, body[:300])
    assert_security_headers(headers)
    answer = json.loads(body)
    if status == 200:
        assert answer["k"] == len(answer["results"]) <= min(engine.gallery_size, MAX_RESULTS)
    else:
        assert isinstance(answer["detail"], str) and answer["detail"]


# --- /images/{id} through the TestClient -----------------------------------------------------------

def encode_id(image_id: str, every_byte: bool) -> str:
    """The id as one path segment; a bare `.` or `..` is encoded too, or httpx would remove it."""
    if every_byte or image_id in (".", ".."):
        return "".join(f"%{byte:02X}" for byte in image_id.encode("utf-8"))
    return quote(image_id, safe="")


def id_seen_by_app(request_path: str) -> str | None:
    """The TestClient hands the app `unquote(url.path)`, a second decoding; None if no image route matches."""
    path = unquote(request_path)
    if not path.startswith(IMAGES) or "/" in path[len(IMAGES):]:
        return None
    return path[len(IMAGES):]


TRICK_IDS = ["..", ".", "../secret.txt", "../../secret.txt", "..\\secret.txt", "secret.txt", "/etc/passwd",
             "//etc/passwd", "C:\\Windows\\win.ini", "file:///etc/passwd", "\x00", "a\x00.jpg", "%2e%2e%2f",
             "..%2Fsecret.txt", "%252e%252e%252f", "\u2025", "\uff0e\uff0e\uff0fsecret.txt", "images/secret.txt"]


def image_ids(gallery: list[str], absolute: list[str]):
    """Any text, path-ish text, known tricks, and gallery ids with something stuck before or after."""
    mutated = st.builds(lambda image_id, before, after: before + image_id + after, st.sampled_from(gallery),
                        st.sampled_from(["", "../", "./", "/", "\\", "%2F", "images/", " ", "\x00"]),
                        st.sampled_from(["", "/", "\x00", " ", "%00", ".", "/..", "?x", "#x", "\\"]))
    return st.one_of(st.text(), st.text(alphabet=st.sampled_from("./\\%2Ff\x00é"), max_size=20),
                     st.sampled_from(TRICK_IDS + absolute + gallery), mutated)


@pytest.fixture(scope="module")
def id_strategy(engine: SearchEngine, project: Path):
    absolute = [str(project / "secret.txt"), str(project / "data/raw/images/secret.txt"),
                str(project / engine.index.paths[0]), str(project / engine.index.paths[0]).lstrip("/")]
    return image_ids(list(engine.index.ids), absolute)


def test_images_by_any_encoded_id_are_404_unless_a_gallery_id(client: TestClient, id_strategy,
                                                             gallery_bytes: dict[str, bytes],
                                                             outside_bytes: set[bytes]) -> None:
    @settings(FUZZ, max_examples=300)
    @given(image_id=id_strategy, every_byte=st.booleans())
    def check(image_id: str, every_byte: bool) -> None:
        response = client.get(IMAGES + encode_id(image_id, every_byte))
        if response.status_code == 307:
            assert_slash_redirect_stays_in_images(unquote(response.request.url.path), response.headers,
                                                  response.content, "testserver")
            return
        app_id = id_seen_by_app(response.request.url.path)
        if "%" not in image_id and "/" not in image_id:
            assert app_id == image_id  # the encoding delivered the id intact
        assert_image_answer(response.status_code, response.headers, response.content, app_id,
                            gallery_bytes, outside_bytes)

    check()


@pytest.mark.parametrize("path", [
    "/images/..%2F..%2Fsecret.txt", "/images/..%2F..%2F..%2Fsecret.txt", "/images/%2E%2E%2Fsecret.txt",
    "/images/%2E%2E%2F%2E%2E%2Fsecret.txt", "/images/..%5C..%5Csecret.txt", "/images/%5C..%5Csecret.txt",
    "/images/%2Fetc%2Fpasswd", "/images/%2F%2Fetc%2Fpasswd", "/images/secret.txt", "/images/%00",
    "/images/secret.txt%00.jpg", "/images/%252E%252E%252Fsecret.txt", "/images/%C0%AE%C0%AE%2Fsecret.txt",
    "/images/%E2%80%A5%2Fsecret.txt", "/images/%EF%BC%8E%EF%BC%8E%EF%BC%8Fsecret.txt", "/images/%2E",
    "/images/%2E%2E", "/images/%FF%FE", "/images/C:%5CWindows%5Cwin.ini", "/images/images%2Fsecret.txt",
])
def test_pre_encoded_trick_paths_are_404(client: TestClient, path: str, gallery_bytes: dict[str, bytes],
                                         outside_bytes: set[bytes]) -> None:
    response = client.get(path)
    assert response.request.url.raw_path == path.encode()  # sent as written, not normalised
    assert_image_answer(response.status_code, response.headers, response.content, None,
                        gallery_bytes, outside_bytes)


def test_a_gallery_id_in_every_encoding_is_that_image(client: TestClient, gallery_bytes: dict[str, bytes],
                                                      outside_bytes: set[bytes]) -> None:
    for image_id, content in gallery_bytes.items():
        for every_byte in (False, True):
            response = client.get(IMAGES + encode_id(image_id, every_byte))
            assert response.status_code == 200 and response.content == content
            assert_security_headers(response.headers)


# --- /images/... as uvicorn hands it to the app: the raw request target -----------------------------

def send_raw(app, target: bytes, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """One request (GET unless told) through the ASGI app with the scope uvicorn builds: the path
    percent-decoded once, no dot-segment removal (unlike httpx), so `..` reaches the router exactly as
    a hostile client sent it."""
    raw_path, _, query = target.partition(b"?")
    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
             "method": method, "scheme": "http", "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 50000),
             "root_path": "", "path": unquote(raw_path.decode("ascii")), "raw_path": raw_path,
             "query_string": query, "headers": [(b"host", b"127.0.0.1:8000")], "state": {}}
    sent: list[dict] = []

    async def call() -> None:
        disconnected = asyncio.Event()
        requested = False

        async def receive() -> dict:
            nonlocal requested
            if not requested:
                requested = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await disconnected.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            sent.append(message)

        await app(scope, receive, send)

    asyncio.run(call())
    start = next(m for m in sent if m["type"] == "http.response.start")
    headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in start["headers"]}
    return start["status"], headers, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


FRAGMENTS = ["..", ".", "/", "\\", "%2F", "%2f", "%5C", "%2E", "%2E%2E", "%00", "%252F", "%252E%252E", "%C0%AE",
             "%C0%AF", "%E2%80%A5", "%EF%BC%8F", "%FF", "%0D%0A", "%20", "secret.txt", "etc", "passwd", "images",
             "data", "raw", "C:", "~", ";", "%3B", "%3F", "%23", ":", "@"]


@pytest.fixture(scope="module")
def raw_target_strategy(engine: SearchEngine, project: Path):
    gallery = list(engine.index.ids)
    absolute = quote(str(project / "secret.txt"), safe="/")
    pieces = st.one_of(st.sampled_from(FRAGMENTS + [absolute]), st.sampled_from(gallery),
                       st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E,
                                                      exclude_characters="?#"), max_size=8))
    return st.builds(lambda parts, query: IMAGES + "".join(parts) + query, st.lists(pieces, max_size=8),
                     st.sampled_from(["", "?", "?x=..%2F", "?path=/etc/passwd"]))


def test_raw_image_targets_reach_no_file_outside_the_gallery(app, raw_target_strategy,
                                                             gallery_bytes: dict[str, bytes],
                                                             outside_bytes: set[bytes]) -> None:
    @settings(FUZZ, max_examples=300)
    @given(target=raw_target_strategy)
    def check(target: str) -> None:
        status, headers, body = send_raw(app, target.encode("ascii"))
        path = unquote(target.partition("?")[0])
        if status == 307:
            assert_slash_redirect_stays_in_images(path, headers, body, "127.0.0.1:8000")
            return
        app_id = path[len(IMAGES):] if "/" not in path[len(IMAGES):] else None
        assert_image_answer(status, headers, body, app_id, gallery_bytes, outside_bytes)

    check()


@pytest.mark.parametrize("target", ["/images/..", "/images/../secret.txt", "/images/../../../secret.txt",
                                    "/images/../images/secret.txt", "/images/./secret.txt", "/images/..\\secret.txt",
                                    "/images//etc/passwd", "/images/%2E%2E/%2E%2E/secret.txt"])
def test_raw_dot_dot_targets_are_404(app, target: str, gallery_bytes: dict[str, bytes],
                                     outside_bytes: set[bytes]) -> None:
    status, headers, body = send_raw(app, target.encode("ascii"))
    assert_image_answer(status, headers, body, None, gallery_bytes, outside_bytes)


# --- HEAD: what GET answers, without the body ---------------------------------------------------------

@pytest.fixture(scope="module")
def head_target_strategy(engine: SearchEngine):
    searches = st.builds(lambda q, k: "/search?q=" + quote(q, safe="") + ("" if k is None else f"&k={k}"),
                         QUERIES, st.one_of(st.none(), st.integers(-3, 200)))
    images = st.builds(lambda image_id: IMAGES + quote(image_id, safe=""),
                       st.one_of(st.sampled_from(engine.index.ids), st.text(min_size=1, max_size=20)))
    return st.one_of(st.sampled_from(["/", "/health", "/search", "/static/app.js", "/nothing-here"]), searches, images)


def test_head_answers_what_get_answers_without_a_body(app, head_target_strategy) -> None:
    """HEAD on /, /health, /search and /images/{id}: GET's status and headers (length included), no body."""

    @settings(FUZZ, max_examples=150)
    @given(target=head_target_strategy)
    def check(target: str) -> None:
        get_status, get_headers, get_body = send_raw(app, target.encode("ascii"))
        status, headers, body = send_raw(app, target.encode("ascii"), method="HEAD")
        assert status == get_status and status != 405, (target, status)
        assert body == b""
        assert_security_headers(headers)
        assert headers.get("content-type") == get_headers.get("content-type")
        if "content-length" in get_headers:
            assert int(headers["content-length"]) == len(get_body)

    check()


@pytest.mark.parametrize("path", ["/", "/health", "/search?q=a+red+dress", "/images/{gallery}"])
def test_head_is_200_on_every_route(client: TestClient, engine: SearchEngine, path: str) -> None:
    path = path.format(gallery=quote(engine.index.ids[0], safe=""))
    get, head = client.get(path), client.head(path)
    assert get.status_code == head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(get.content))


# --- filters, /similar and /search/image ------------------------------------------------------------

@pytest.fixture(scope="module")
def filter_strategy(engine: SearchEngine):
    """(name, value) query pairs: real facets and values, wrong cases, unknown names, any text."""
    masks = engine.facets.masks
    known = [(facet, value) for facet in masks for value in masks[facet]]
    names = st.one_of(st.sampled_from(list(masks) + ["colr", "Gender", "", "q2", "k "]), st.text(max_size=12))
    values = st.one_of(st.sampled_from([v for _, v in known] + ["", "DENIM", "x" * 300]), st.text(max_size=12))
    return st.lists(st.one_of(st.sampled_from(known), st.tuples(names, values)), max_size=8)


def answer_is_consistent(engine: SearchEngine, body: dict, chosen: list[tuple[str, str]], k: int) -> None:
    """A 200 only for known filters; its results pass every filter and number min(k, matching, MAX_RESULTS)."""
    masks = engine.facets.masks
    assert all(facet in masks and value in masks[facet] for facet, value in chosen)
    by_facet: dict[str, set[str]] = {}
    for facet, value in chosen:
        by_facet.setdefault(facet, set()).add(value)
    for result in body["results"]:
        assert all(set(result["attributes"].get(facet, [])) & values for facet, values in by_facet.items())
    assert body["k"] == len(body["results"]) == min(k, body["matching"], MAX_RESULTS)


def test_search_with_any_filters_is_a_200_or_a_400_naming_the_filter(client: TestClient, engine: SearchEngine,
                                                                      filter_strategy) -> None:
    @settings(FUZZ, max_examples=150)
    @given(pairs=filter_strategy, q=st.one_of(st.just(""), st.sampled_from(["a red dress", "denim"])),
           k=st.integers(1, 120))
    def check(pairs: list[tuple[str, str]], q: str, k: int) -> None:
        pairs = [(name, value) for name, value in pairs if name not in ("q", "k")]
        response = client.get("/search", params=[("q", q), ("k", str(k)), *pairs])
        assert_security_headers(response.headers)
        unknown = [(n, v) for n, v in pairs if n not in engine.facets.masks or v not in engine.facets.masks[n]]
        if unknown or len(pairs) > 64 or (not q and not pairs):
            assert response.status_code == 400, response.text[:300]
            detail = response.json()["detail"]
            named = [repr(name if name not in engine.facets.masks else value) for name, value in unknown]
            assert not unknown or any(text in detail for text in named), detail  # httpx groups repeated names
            return
        assert response.status_code == 200, response.text[:300]
        answer_is_consistent(engine, response.json(), pairs, k)

    check()


def test_similar_answers_any_id_and_filters_with_200_400_or_404(client: TestClient, engine: SearchEngine,
                                                               filter_strategy) -> None:
    @settings(FUZZ, max_examples=150)
    @given(image_id=st.one_of(st.sampled_from(engine.index.ids), st.text(min_size=1, max_size=20)),
           pairs=filter_strategy, k=st.one_of(st.integers(-3, 120), st.text(max_size=5)))
    def check(image_id: str, pairs: list[tuple[str, str]], k) -> None:
        pairs = [(name, value) for name, value in pairs if name != "k"]
        response = client.get(IMAGES.replace("images", "similar") + quote(image_id, safe=""),
                              params=[("k", str(k)), *pairs], follow_redirects=False)
        assert response.status_code in (200, 400, 404, 307), (response.status_code, response.text[:300])
        assert_security_headers(response.headers)
        if response.status_code == 200:
            body = response.json()
            assert image_id in engine.index.ids and image_id not in {r["image_id"] for r in body["results"]}
            answer_is_consistent(engine, body, pairs, int(k))

    check()


def photo_bytes_of(path: Path, kind: str) -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    with Image.open(path) as image:
        image.convert("RGB").save(out, format=kind)
    return out.getvalue()


@pytest.fixture(scope="module")
def photo_strategy(project: Path, engine: SearchEngine):
    """Real photos, truncated, with bytes flipped, with another format's signature, or any bytes."""
    from bad_images import decompression_bomb_png

    photos = [photo_bytes_of(project / engine.index.paths[0], kind) for kind in ("JPEG", "PNG", "WEBP")]
    real = st.sampled_from(photos)
    truncated = st.builds(lambda data, cut: data[:cut], real, st.integers(0, 400))
    flipped = st.builds(lambda data, at, byte: data[:at] + bytes([byte]) + data[at + 1:], real,
                        st.integers(0, 600), st.integers(0, 255))
    spliced = st.builds(lambda head, tail: head + tail, st.sampled_from([b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n",
                                                                        b"RIFF\0\0\0\0WEBP", b"GIF89a", b""]),
                        st.binary(max_size=200))
    bombs = st.builds(decompression_bomb_png, st.integers(1, 30_000), st.integers(1, 30_000))
    return st.one_of(real, truncated, flipped, spliced, bombs, st.binary(max_size=300))


def test_search_by_photo_answers_any_bytes_with_200_400_or_415(client: TestClient, engine: SearchEngine,
                                                              photo_strategy) -> None:
    @settings(FUZZ, max_examples=150)
    @given(data=photo_strategy, as_form=st.booleans(), content_type=st.sampled_from(
        ["image/jpeg", "image/png", "application/octet-stream", "text/plain", ""]))
    def check(data: bytes, as_form: bool, content_type: str) -> None:
        if as_form:
            response = client.post("/search/image", files={"image": ("photo", data, content_type)})
        else:
            response = client.post("/search/image", content=data, headers={"content-type": content_type})
        assert response.status_code in (200, 400, 415), (response.status_code, response.text[:300])
        assert_security_headers(response.headers)
        body = response.json()
        if response.status_code == 200:
            assert body["k"] == len(body["results"]) == min(10, engine.gallery_size)
        else:
            assert isinstance(body["detail"], str) and body["detail"]

    check()
    assert client.get("/health").status_code == 200
