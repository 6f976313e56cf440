"""The web service through FastAPI's test client: answers, every bad input, images by id only, headers."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from test_search_engine import LONG_QUERY
from test_search_index import build_search_project

from fashion_search.search.app import MAX_RESULTS, create_app
from fashion_search.search.engine import SearchEngine
from fashion_search.search.upload import MAX_PHOTO_BYTES

SECRET = "do-not-serve-this-file"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = build_search_project(tmp_path_factory.mktemp("api"))
    (root / "secret.txt").write_text(SECRET)
    (root / "data/raw/images/secret.txt").write_text(SECRET)  # beside the gallery, but not in the index
    return root


@pytest.fixture(scope="module")
def engine(project: Path) -> SearchEngine:
    return SearchEngine.open(project / "models/index", root=project)


@pytest.fixture(scope="module")
def client(engine: SearchEngine) -> TestClient:
    return TestClient(create_app(engine))


def assert_bad_request(response, *mentions: str) -> None:
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str)
    for mention in mentions:
        assert mention in detail, detail


# --- answers ---------------------------------------------------------------------------------------

def test_search_returns_ranked_ids_scores_urls_and_the_model(client: TestClient, engine: SearchEngine) -> None:
    body = client.get("/search", params={"q": "a red dress", "k": 4}).json()
    assert body["model"] == "finetuned" and body["query"] == "a red dress"
    assert body["gallery_size"] == engine.gallery_size and body["k"] == 4
    results = body["results"]
    assert [r["rank"] for r in results] == [1, 2, 3, 4]
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)
    assert [r["image_id"] for r in results] == [h.image_id for h in engine.search("a red dress", 4)]
    for result in results:
        image = client.get(result["url"])
        assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
        assert image.content[:2] == b"\xff\xd8"


def test_k_defaults_to_ten(client: TestClient) -> None:
    assert len(client.get("/search", params={"q": "a hat"}).json()["results"]) == min(10, client.get(
        "/health").json()["gallery_size"])


def test_k_beyond_the_gallery_is_clamped(client: TestClient, engine: SearchEngine) -> None:
    body = client.get("/search", params={"q": "a red dress", "k": 10**9}).json()
    assert body["k"] == len(body["results"]) == min(engine.gallery_size, MAX_RESULTS)


def test_health_names_the_model_gallery_and_examples(client: TestClient, engine: SearchEngine) -> None:
    assert client.get("/health").json() == {"status": "ok", "model": "finetuned",
                                            "gallery_size": engine.gallery_size, "examples": engine.examples,
                                            "filters": engine.facets.names, "weak_match_threshold": None,
                                            "max_photo_bytes": MAX_PHOTO_BYTES}


def test_the_page_and_its_script_and_style_are_served(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'src="/static/app.js"' in page.text and 'href="/static/style.css"' in page.text
    assert "<script>" not in page.text and "<style>" not in page.text  # nothing inline: the CSP forbids it
    assert client.get("/static/app.js").headers["content-type"].startswith(("text/javascript",
                                                                            "application/javascript"))
    assert client.get("/static/style.css").headers["content-type"].startswith("text/css")


# --- bad input -------------------------------------------------------------------------------------

@pytest.mark.parametrize("params", [{}, {"q": ""}, {"q": "   "}, {"q": "\t\n"}, {"q": "", "k": 3}])
def test_an_empty_query_is_a_400_with_a_message(client: TestClient, params: dict) -> None:
    assert_bad_request(client.get("/search", params=params), "empty")


@pytest.mark.parametrize("k", ["0", "-1", "-100"])
def test_k_below_one_is_a_400(client: TestClient, k: str) -> None:
    assert_bad_request(client.get("/search", params={"q": "a red dress", "k": k}), "k")


@pytest.mark.parametrize("k", ["abc", "1.5", "", "1e3", "ten", "0x10"])
def test_non_numeric_k_is_a_400(client: TestClient, k: str) -> None:
    assert_bad_request(client.get("/search", params={"q": "a red dress", "k": k}), "k")


def test_a_query_over_77_tokens_is_answered(client: TestClient) -> None:
    response = client.get("/search", params={"q": LONG_QUERY, "k": 3})
    assert response.status_code == 200 and len(response.json()["results"]) == 3


@pytest.mark.parametrize("query", ["robe rouge à fleurs", "красное платье", "連衣裙", "👗✨", "a dress 👗"])
def test_non_ascii_and_emoji_queries_are_answered(client: TestClient, query: str) -> None:
    response = client.get("/search", params={"q": query, "k": 2})
    assert response.status_code == 200
    assert response.json()["query"] == query and len(response.json()["results"]) == 2


# --- images by id only -----------------------------------------------------------------------------

TRICKS = [
    "/images/no-such-image.jpg",
    "/images/secret.txt",                               # a real file in the images folder, not in the gallery
    "/images/..%2Fsecret.txt",
    "/images/..%2F..%2F..%2Fsecret.txt",
    "/images/%2E%2E%2F%2E%2E%2F%2E%2E%2Fsecret.txt",
    "/images/..%5C..%5C..%5Csecret.txt",
    "/images/%2Fetc%2Fpasswd",
    "/images//etc/passwd",
    "/images/../../../secret.txt",
    "/images/%252e%252e%252fsecret.txt",
    "/images/%2E%2E",
    "/images/%2E",
    "/images/%00",
]


@pytest.mark.parametrize("url", TRICKS)
def test_unknown_ids_and_path_tricks_are_404_and_read_nothing(client: TestClient, engine: SearchEngine,
                                                              url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    looked_up = []
    original = engine.image_path
    monkeypatch.setattr(engine, "image_path", lambda image_id: looked_up.append(original(image_id)) or
                        original(image_id))
    response = client.get(url)
    assert response.status_code == 404
    assert SECRET not in response.text and "root:" not in response.text
    assert all(path is None for path in looked_up)  # no id resolved to a file


def test_an_absolute_path_as_id_is_404(client: TestClient, engine: SearchEngine, project: Path) -> None:
    gallery_file = project / engine.index.paths[0]
    assert client.get("/images/" + str(gallery_file).replace("/", "%2F")).status_code == 404


def test_static_files_cannot_reach_outside_their_folder(client: TestClient) -> None:
    for url in ("/static/../app.py", "/static/..%2Fapp.py", "/static/%2E%2E/engine.py"):
        response = client.get(url)
        assert response.status_code == 404 and "SearchEngine" not in response.text


# --- headers ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("url", ["/", "/health", "/search?q=dress", "/search?q=", "/images/nope", "/static/app.js"])
def test_every_response_carries_the_security_headers(client: TestClient, url: str) -> None:
    headers = client.get(url).headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    csp = headers["content-security-policy"]
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp and "frame-ancestors 'none'" in csp


def test_the_api_answers_for_xattn_with_its_name(project: Path) -> None:
    client = TestClient(create_app(SearchEngine.open(project / "models/index-xattn", root=project)))
    body = client.get("/search", params={"q": "a red dress", "k": 3}).json()
    assert body["model"] == "xattn" and len(body["results"]) == 3
