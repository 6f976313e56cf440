"""The web service through FastAPI's test client: answers, every bad input, images by id only, headers."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from test_search_engine import LONG_QUERY
from test_search_index import add_token_xattn, build_search_project

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
                                            "max_photo_bytes": MAX_PHOTO_BYTES, "max_results": MAX_RESULTS}


def test_the_page_and_its_script_and_style_are_served(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'src="/static/app.js"' in page.text and 'href="/static/style.css"' in page.text
    assert "<script>" not in page.text and "<style>" not in page.text  # nothing inline: the CSP forbids it
    assert client.get("/static/app.js").headers["content-type"].startswith(("text/javascript",
                                                                            "application/javascript"))
    assert client.get("/static/style.css").headers["content-type"].startswith("text/css")


# --- bad input -------------------------------------------------------------------------------------

@pytest.mark.parametrize("params", [{}, {"q": ""}, {"q": "   "}, {"q": "\t\n"}, {"q": "", "k": 3},
                                    {"q": "\u3164\u3164"}, {"q": "\u2800"}, {"q": "\u034f\u115f\u1160\uffa0"},
                                    {"q": "\u0301\u20dd"}, {"q": "\ufe0f\U000e0041"}])
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


@pytest.mark.parametrize("features", ["pooled", "tokens"])
def test_the_api_answers_for_xattn_with_its_name_and_its_re_ranking(project: Path, features: str) -> None:
    index = project / "models/index-xattn" if features == "pooled" else add_token_xattn(project)
    engine = SearchEngine.open(index, root=project)
    assert engine.scorer.config.features == features
    response = TestClient(create_app(engine)).get("/search", params={"q": "a red dress", "k": 3})
    assert response.status_code == 200, response.text
    body = response.json()
    hits = engine.search("a red dress", 3)
    assert body["model"] == "xattn" and [r["image_id"] for r in body["results"]] == [h.image_id for h in hits]
    assert [r["score"] for r in body["results"]] == pytest.approx([h.score for h in hits], abs=1e-5)


# --- filters ---------------------------------------------------------------------------------------

def biggest_value(engine: SearchEngine, facet: str) -> str:
    masks = engine.facets.masks[facet]
    return max(masks, key=lambda value: masks[value].sum())


def test_the_gallery_offers_the_facets_its_labels_have(engine: SearchEngine) -> None:
    assert engine.facets.names == ["category", "gender", "sleeve", "length", "fabric", "pattern", "colour",
                                   "accessories"]  # the synthetic source has colours; no facet is empty


def test_a_filtered_search_ranks_only_matching_images_and_returns_k_of_them(client: TestClient,
                                                                             engine: SearchEngine) -> None:
    value = biggest_value(engine, "gender")
    allowed = engine.facets.masks["gender"][value]
    body = client.get("/search", params={"q": "a red dress", "k": 5, "gender": value}).json()
    ids = [r["image_id"] for r in body["results"]]
    assert len(ids) == min(5, allowed.sum()) and body["matching"] == allowed.sum()
    assert all(value in r["attributes"]["gender"] for r in body["results"])
    # exactly the unfiltered ranking with the other images taken out
    ranked = [h.image_id for h in engine.search("a red dress", engine.gallery_size)]
    assert ids == [i for i in ranked if allowed[engine.row_of(i)]][:5]


def test_values_of_one_facet_are_alternatives_and_facets_must_all_hold(client: TestClient,
                                                                       engine: SearchEngine) -> None:
    masks = engine.facets.masks
    fabrics = list(masks["fabric"])[:2]
    gender = biggest_value(engine, "gender")
    expected = (masks["fabric"][fabrics[0]] | masks["fabric"][fabrics[1]]) & masks["gender"][gender]
    body = client.get("/search", params=[("q", "a top"), ("k", 100), ("fabric", fabrics[0]),
                                         ("fabric", fabrics[1]), ("gender", gender)]).json()
    assert body["matching"] == expected.sum() == len(body["results"])
    assert {r["image_id"] for r in body["results"]} == {engine.index.ids[row] for row in expected.nonzero()[0]}


def test_facet_counts_count_each_value_under_the_other_facets_choices(client: TestClient,
                                                                      engine: SearchEngine) -> None:
    masks = engine.facets.masks
    gender = biggest_value(engine, "gender")
    fabric = biggest_value(engine, "fabric")
    body = client.get("/facets", params={"gender": gender, "fabric": fabric}).json()
    counts = {f["name"]: {v["value"]: (v["count"], v["chosen"]) for v in f["values"]} for f in body["facets"]}
    for value, mask in masks["gender"].items():  # gender counted under the fabric choice only
        assert counts["gender"][value] == ((mask & masks["fabric"][fabric]).sum(), value == gender)
    for value, mask in masks["fabric"].items():  # fabric under the gender choice only
        assert counts["fabric"][value][0] == (mask & masks["gender"][gender]).sum()
    for value, mask in masks["pattern"].items():  # any other facet under both
        assert counts["pattern"][value][0] == (mask & masks["gender"][gender] & masks["fabric"][fabric]).sum()
    assert body["matching"] == (masks["gender"][gender] & masks["fabric"][fabric]).sum()


def test_filters_without_words_list_the_matching_images_in_gallery_order(client: TestClient,
                                                                         engine: SearchEngine) -> None:
    value = biggest_value(engine, "category")
    rows = engine.facets.masks["category"][value].nonzero()[0]
    for words in ({}, {"q": " "}, {"q": "\u3164\u200b\u0301"}):  # words that show nothing are no words
        body = client.get("/search", params={"category": value, "k": 100, **words}).json()
        assert [r["image_id"] for r in body["results"]] == [engine.index.ids[row] for row in rows]
        assert all(r["score"] is None for r in body["results"]) and body["weak_match"] is None


def test_a_filter_nothing_matches_returns_no_results(client: TestClient, engine: SearchEngine) -> None:
    masks = engine.facets.masks
    facet_a, value_a, facet_b, value_b = next(
        (a, va, b, vb) for a in masks for b in masks if a < b for va in masks[a] for vb in masks[b]
        if not (masks[a][va] & masks[b][vb]).any())
    body = client.get("/search", params={"q": "a dress", facet_a: value_a, facet_b: value_b}).json()
    assert body["results"] == [] and body["matching"] == 0


@pytest.mark.parametrize(("params", "mentions"), [
    ({"q": "dress", "colr": "red"}, ("unknown filter 'colr'", "colour")),
    ({"q": "dress", "fabric": "velvet"}, ("unknown value 'velvet'", "fabric", "denim")),
    ({"q": "dress", "category": "shorts"}, ("unknown value 'shorts'", "Shorts")),
    ({"fabric": ""}, ("unknown value ''",)),
])
def test_an_unknown_filter_or_value_is_a_400_naming_it(client: TestClient, params: dict,
                                                      mentions: tuple[str, ...]) -> None:
    assert_bad_request(client.get("/search", params=params), *mentions)
    assert_bad_request(client.get("/facets", params=params | {"q": "x"} if "q" in params else params), *mentions)


def test_too_many_filter_values_are_a_400(client: TestClient, engine: SearchEngine) -> None:
    value = biggest_value(engine, "gender")
    assert_bad_request(client.get("/search", params=[("q", "dress")] + [("gender", value)] * 65), "too many")


def test_a_source_without_labels_offers_no_filters_and_refuses_them(project: Path, engine: SearchEngine) -> None:
    index = engine.index
    bare = SearchEngine(type(index)(index.ids, index.paths, index.embeddings, index.reference, index.faiss_index),
                        engine.checkpoint, None, project)
    client = TestClient(create_app(bare))
    assert client.get("/health").json()["filters"] == [] and client.get("/facets").json()["facets"] == []
    assert_bad_request(client.get("/search", params={"q": "dress", "gender": "women"}),
                       "unknown filter 'gender'", "no labels")


# --- more like this ---------------------------------------------------------------------------------

def test_similar_ranks_the_gallery_by_image_similarity_without_the_image(client: TestClient,
                                                                         engine: SearchEngine) -> None:
    image_id = engine.index.ids[3]
    body = client.get(f"/similar/{image_id}", params={"k": 100}).json()
    ids = [r["image_id"] for r in body["results"]]
    assert image_id not in ids and len(ids) == engine.gallery_size - 1
    cosines = engine.index.embeddings @ engine.index.embeddings[3]
    assert [r["score"] for r in body["results"]] == pytest.approx(sorted(
        (c for i, c in enumerate(cosines) if i != 3), reverse=True), abs=1e-5)


def test_similar_keeps_the_filters(client: TestClient, engine: SearchEngine) -> None:
    value = biggest_value(engine, "gender")
    allowed = engine.facets.masks["gender"][value]
    body = client.get(f"/similar/{engine.index.ids[0]}", params={"gender": value, "k": 100}).json()
    assert {r["image_id"] for r in body["results"]} == {engine.index.ids[row] for row in allowed.nonzero()[0]} - {
        engine.index.ids[0]}


@pytest.mark.parametrize("image_id", ["no-such.jpg", "..%2Fsecret.txt", "secret.txt"])
def test_similar_to_an_unknown_image_is_a_404(client: TestClient, image_id: str) -> None:
    assert client.get(f"/similar/{image_id}").status_code == 404


def test_similar_with_bad_k_is_a_400(client: TestClient, engine: SearchEngine) -> None:
    assert_bad_request(client.get(f"/similar/{engine.index.ids[0]}", params={"k": 0}), "k")


# --- the weak-match notice -----------------------------------------------------------------------------

def calibrated_client(project: Path, engine: SearchEngine, weak_match: dict) -> TestClient:
    index = engine.index
    reference = {**index.reference, "weak_match": weak_match}
    return TestClient(create_app(SearchEngine(type(index)(index.ids, index.paths, index.embeddings, reference,
                                                          index.faiss_index, index.captions, index.facets),
                                              engine.checkpoint, None, project)))


@pytest.mark.parametrize(("threshold", "weak"), [(1.01, True), (-1.01, False), (None, None)])
def test_weak_match_follows_the_best_cosine_and_the_calibrated_threshold(project: Path, engine: SearchEngine,
                                                                         threshold: float | None,
                                                                         weak: bool | None) -> None:
    record = {"threshold": threshold, "fires_on_relevant": 0.05, "fires_on_off_domain": 0.8, "auc": 0.9}
    client = calibrated_client(project, engine, record)
    body = client.get("/search", params={"q": "a red dress", "k": 3}).json()
    assert body["weak_match"] is weak and len(body["results"]) == 3  # the closest results are still shown
    assert client.get("/health").json()["weak_match_threshold"] == threshold


def test_an_index_calibrated_before_off_domain_queries_still_flags(project: Path, engine: SearchEngine) -> None:
    client = calibrated_client(project, engine, {"threshold": 1.01, "quantile": 0.05, "queries": 9})
    assert client.get("/search", params={"q": "a red dress"}).json()["weak_match"] is True


def test_weak_match_does_not_apply_to_photos_or_more_like_this(project: Path, engine: SearchEngine) -> None:
    """The threshold is calibrated on word queries: image queries answer null, whatever their cosine."""
    client = calibrated_client(project, engine, {"threshold": 1.01})
    assert client.get(f"/similar/{engine.index.ids[0]}").json()["weak_match"] is None
    assert post_photo(client, photo_of(project, engine, 0)).json()["weak_match"] is None


# --- search by photo ---------------------------------------------------------------------------------

def photo_of(project: Path, engine: SearchEngine, row: int, kind: str = "JPEG", **save) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    with Image.open(project / engine.index.paths[row]) as image:
        image.convert("RGB").save(out, format=kind, **save)
    return out.getvalue()


def post_photo(client: TestClient, data: bytes, params: dict | None = None, name: str = "photo.jpg",
               content_type: str = "image/jpeg"):
    return client.post("/search/image", params=params or {}, files={"image": (name, data, content_type)})


@pytest.mark.parametrize("kind", ["JPEG", "PNG", "WEBP"])
def test_a_photo_of_a_gallery_image_finds_it_first(client: TestClient, engine: SearchEngine, project: Path,
                                                   kind: str) -> None:
    body = post_photo(client, photo_of(project, engine, 5, kind, **({"lossless": True} if kind == "WEBP" else {})),
                      {"k": 3}).json()
    assert body["results"][0]["image_id"] == engine.index.ids[5] and body["k"] == 3


def test_a_photo_search_costs_one_image_embedding(client: TestClient, engine: SearchEngine, project: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import fashion_search.search.engine as engine_module

    calls = []
    original = engine_module.embed_images
    monkeypatch.setattr(engine_module, "embed_images", lambda *a, **kw: calls.append(a[1].shape) or original(*a, **kw))
    assert post_photo(client, photo_of(project, engine, 1)).status_code == 200
    assert calls == [(1, 3, engine.checkpoint.pixel_spec.size, engine.checkpoint.pixel_spec.size)]


def test_a_photo_search_keeps_the_filters(client: TestClient, engine: SearchEngine, project: Path) -> None:
    value = biggest_value(engine, "gender")
    allowed = {engine.index.ids[row] for row in engine.facets.masks["gender"][value].nonzero()[0]}
    body = post_photo(client, photo_of(project, engine, 0), {"gender": value, "k": 100}).json()
    assert {r["image_id"] for r in body["results"]} == allowed


def test_a_photo_sent_as_the_body_itself_is_searched(client: TestClient, engine: SearchEngine,
                                                     project: Path) -> None:
    response = client.post("/search/image", content=photo_of(project, engine, 2), headers={
        "content-type": "image/jpeg"})
    assert response.status_code == 200 and response.json()["results"][0]["image_id"] == engine.index.ids[2]


def test_exif_orientation_is_honoured(client: TestClient, engine: SearchEngine, project: Path) -> None:
    """A photo stored sideways with EXIF orientation 6 (rotate 90° clockwise to view) is searched upright."""
    from PIL import Image

    with Image.open(project / engine.index.paths[4]) as image:
        sideways = image.convert("RGB").transpose(Image.Transpose.ROTATE_90)  # what the camera stored
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    sideways.save(out, format="PNG", exif=exif)
    upright = post_photo(client, out.getvalue(), {"k": 100}).json()["results"]
    expected = post_photo(client, photo_of(project, engine, 4, "PNG"), {"k": 100}).json()["results"]
    assert [r["image_id"] for r in upright] == [r["image_id"] for r in expected]


def test_a_phone_jpeg_is_turned_upright_before_it_is_embedded(client: TestClient, engine: SearchEngine,
                                                              project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real JPEG as a phone writes it: the sensor's pixels sideways and EXIF Orientation 6 (turn 90°
    clockwise to view). The embedded picture is upright: the portrait gallery image's size, and its embedding."""
    import fashion_search.search.engine as engine_module
    from PIL import Image

    with Image.open(project / engine.index.paths[4]) as image:
        upright = image.convert("RGB")
    assert upright.height > upright.width  # portrait, so a sideways decode would show in the size
    exif = Image.Exif()
    exif[0x0112] = 6
    sideways, straight = io.BytesIO(), io.BytesIO()
    upright.transpose(Image.Transpose.ROTATE_90).save(sideways, format="JPEG", quality=95, exif=exif)
    upright.save(straight, format="JPEG", quality=95)
    with Image.open(io.BytesIO(sideways.getvalue())) as stored:
        assert stored.format == "JPEG" and stored.size == (upright.height, upright.width)
        assert stored.getexif()[0x0112] == 6

    fitted_sizes, embeddings = [], []
    original_fit, original_embed = engine_module.fit_image, engine_module.embed_images
    monkeypatch.setattr(engine_module, "fit_image", lambda photo, *a: fitted_sizes.append(photo.size) or
                        original_fit(photo, *a))
    monkeypatch.setattr(engine_module, "embed_images", lambda *a, **kw: embeddings.append(
        original_embed(*a, **kw)) or embeddings[-1])
    for data in (sideways.getvalue(), straight.getvalue()):
        assert post_photo(client, data, {"k": 3}).status_code == 200
    assert fitted_sizes == [upright.size, upright.size]
    turned, reference = embeddings[0][0], embeddings[1][0]
    sideways_embedding = engine.embed_photo(upright.transpose(Image.Transpose.ROTATE_90))
    # the same picture up to JPEG's losses, and nearer the upright one than the sideways pixels are
    assert float(turned @ reference) == pytest.approx(1.0, abs=1e-4)
    assert float(turned @ reference) > float(sideways_embedding @ reference)


def test_upload_decoding_writes_nothing_to_disk(client: TestClient, engine: SearchEngine, project: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins
    import tempfile

    opened = []
    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", lambda file, mode="r", *a, **kw: (
        opened.append((file, mode)) if any(m in mode for m in "wax+") else None) or real_open(file, mode, *a, **kw))
    monkeypatch.setattr(tempfile, "SpooledTemporaryFile", lambda *a, **kw: opened.append("spooled") or None)
    monkeypatch.setattr(tempfile, "NamedTemporaryFile", lambda *a, **kw: opened.append("named") or None)
    data = photo_of(project, engine, 1, "PNG") + b"\0" * (2 * 2**20)  # 2 MB: past any form parser's memory limit
    assert post_photo(client, data, name="big.png", content_type="image/png").status_code == 200
    assert opened == []


def bad_uploads() -> list:
    from bad_images import decompression_bomb_png

    return [
        pytest.param(b"", 400, "empty", id="empty"),
        pytest.param(b"just some text, not a picture\n" * 10, 415, "not a JPEG, PNG or WebP", id="text"),
        pytest.param(b"GIF89a" + b"\0" * 100, 415, "not a JPEG, PNG or WebP", id="gif"),
        pytest.param(b"<svg xmlns='http://www.w3.org/2000/svg'/>", 415, "not a JPEG", id="svg"),
        pytest.param(decompression_bomb_png(20_000, 20_000), 400, "declares more than", id="20000x20000-png"),
        pytest.param(b"\xff\xd8\xff\xe0" + b"\0" * 50, 400, "cannot be decoded", id="truncated-jpeg-header"),
        pytest.param(b"RIFF\0\0\0\0WEBPVP8 ", 400, "cannot be decoded", id="truncated-webp"),
    ]


@pytest.mark.parametrize(("data", "status", "mention"), bad_uploads())
def test_a_bad_upload_is_refused_with_its_status_and_a_message(client: TestClient, data: bytes, status: int,
                                                               mention: str) -> None:
    response = post_photo(client, data)
    assert response.status_code == status and mention in response.json()["detail"], response.text
    assert client.get("/health").status_code == 200  # still serving


def test_a_truncated_jpeg_is_a_400(client: TestClient, engine: SearchEngine, project: Path) -> None:
    whole = photo_of(project, engine, 0)
    response = post_photo(client, whole[: len(whole) // 2])
    assert response.status_code == 400 and "cannot be decoded" in response.json()["detail"]


def test_a_50_mb_body_is_a_413_before_it_is_decoded(client: TestClient) -> None:
    response = post_photo(client, b"\xff\xd8\xff" + b"\0" * (50 * 2**20))
    assert response.status_code == 413 and "at most 10 MB" in response.json()["detail"]
    assert client.get("/health").status_code == 200


def test_a_body_longer_than_it_declared_is_cut_off_at_the_cap() -> None:
    import asyncio

    from fashion_search.search.upload import MAX_BODY_BYTES, UploadError, read_bounded

    async def chunks():
        for _ in range(100):
            yield b"\0" * (MAX_BODY_BYTES // 10)

    with pytest.raises(UploadError) as refused:
        asyncio.run(read_bounded("10", chunks()))  # a Content-Length that lies
    assert refused.value.status == 413


@pytest.mark.parametrize(("headers", "body", "mention"), [
    ({"content-type": "multipart/form-data"}, b"--x\r\n\r\n--x--", "no boundary"),
    ({"content-type": "multipart/form-data; boundary=x"}, b"--x\r\nContent-Disposition: form-data; name=\"other\""
                                                          b"\r\n\r\nhello\r\n--x--\r\n", "no file field"),
    ({"content-length": "abc"}, b"", "Content-Length"),
])
def test_malformed_uploads_are_a_400_naming_the_problem(client: TestClient, headers: dict, body: bytes,
                                                        mention: str) -> None:
    assert_bad_request(client.post("/search/image", content=body, headers=headers), mention)


def test_a_photo_search_with_a_bad_filter_or_k_is_a_400(client: TestClient, engine: SearchEngine,
                                                        project: Path) -> None:
    data = photo_of(project, engine, 0)
    assert_bad_request(post_photo(client, data, {"fabric": "velvet"}), "velvet")
    assert_bad_request(post_photo(client, data, {"k": "0"}), "k")


# --- the OpenAPI description -----------------------------------------------------------------------

def test_the_openapi_page_documents_every_endpoint_and_the_filters(client: TestClient, engine: SearchEngine) -> None:
    spec = client.get("/openapi.json").json()
    assert {"/search", "/similar/{image_id}", "/search/image", "/facets", "/images/{image_id}",
            "/health"} <= set(spec["paths"])
    names = {p["name"] for p in spec["paths"]["/search"]["get"]["parameters"]}
    assert {"q", "k", *engine.facets.names} <= names
    assert client.get("/docs").status_code == 200
