"""The index stage's pieces: which model serves, which images, the files it writes, and FAISS against matmul.

`build_search_project` makes a tiny but real project (synthetic images, a tokenizer,
an untrained tiny CLIP, an xattn scorer, split Parquet files, evaluate metrics and two
built indexes) in a few seconds; the API, engine and browser tests build on it too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import TINY_MODEL, write_params
from fashion_search.config import ConfigError, load_params, section
from fashion_search.data.pairs import build_pairs, write_pairs
from fashion_search.data.synthetic import generate_synthetic
from fashion_search.image_cache import build_cache
from fashion_search.models.clip import build_tiny, load_checkpoint
from fashion_search.models.xattn import XattnModel, new_scorer
from fashion_search.data.attributes import image_attributes
from fashion_search.errors import DataError
from fashion_search.models.loader import load_model
from fashion_search.search.calibration import (
    OFF_DOMAIN_QUERIES,
    best_scores,
    separating_threshold,
    served_threshold,
    shopper_queries,
    weak_match_threshold,
)
from fashion_search.search.facets import Facets, FilterError, facet_values
from fashion_search.search.index import (
    embed_gallery,
    gallery_pairs,
    image_paths,
    read_index,
    write_index,
)
from fashion_search.search.engine import SearchEngine
from fashion_search.search.served_model import best_model, choose_model
from fashion_search.search.vectors import (
    AUTO_APPROXIMATE_FROM,
    FASTSCAN_RESCORE_FACTOR,
    FaissSearch,
    MatmulSearch,
    build_faiss,
    resolve_kind,
    restricted_top,
)
from fashion_search.text import build_tokenizer
from fashion_search.tokenize import tokenize_pairs

REPO = Path(__file__).resolve().parents[1]
MAX_TOKENS = 77
RAW = Path("data/raw")
EXAMPLES = ["a red dress", "denim shorts"]


def _index_reference(model: str, rerank_k: int | None) -> dict:
    return {"model": model, "model_dir": f"models/{model}", "gallery": "test", "faiss": "exact",
            "max_tokens": MAX_TOKENS, "image_fit": "pad", "rerank_k": rerank_k, "examples": EXAMPLES}


def build_search_project(root: Path) -> Path:
    """A project tree as `dvc repro` would leave it, small: data, models, metrics and models/index*."""
    generate_synthetic(root / RAW, n_items=8, seed=0, image_size=(64, 96))
    pairs, _ = build_pairs(root / RAW)
    tokenizer = build_tokenizer(pairs["caption"], TINY_MODEL.vocab_size, MAX_TOKENS)
    pairs, _ = tokenize_pairs(pairs, tokenizer, MAX_TOKENS)
    items = sorted(pairs["item_id"].unique())
    test_items, val_items = set(items[: len(items) // 2]), set(items[len(items) // 2:len(items) // 2 + 1])
    write_pairs(pairs[~pairs["item_id"].isin(test_items | val_items)], root / "data/processed/train.parquet")
    write_pairs(pairs[pairs["item_id"].isin(val_items)], root / "data/processed/val.parquet")
    write_pairs(pairs[pairs["item_id"].isin(test_items)], root / "data/processed/test.parquet")
    build_cache(pairs["image"].tolist(), root / RAW / "images", TINY_MODEL.image_size, "pad", root / "data/cache/images")
    checkpoint = build_tiny(TINY_MODEL, tokenizer, MAX_TOKENS, seed=0)
    for name in ("baseline", "finetuned"):
        checkpoint.save(root / "models" / name)
    XattnModel(checkpoint, new_scorer(TINY_MODEL.embed_dim, 1, 2, 0.0, seed=0).eval()).save(root / "models/xattn")
    metrics = {"validation": {"baseline": {"shopper_ndcg_at_10": 0.1}, "finetuned": {"shopper_ndcg_at_10": 0.3},
                              "xattn": {"shopper_ndcg_at_10": 0.2}}, "gallery": {"size": 1}}
    (root / "metrics").mkdir()
    (root / "metrics/evaluate.json").write_text(json.dumps(metrics), encoding="utf-8")
    test = gallery_pairs(pairs, pairs[pairs["item_id"].isin(test_items)], "test")
    embeddings = embed_gallery(checkpoint, test, root / RAW, "pad", batch_size=16)
    facets = facet_values(image_attributes(root / RAW, test["image"].tolist()))
    for out, model, rerank_k in (("models/index", "finetuned", None), ("models/index-xattn", "xattn", 5)):
        write_index(root / out, test["image"].tolist(), image_paths(test, RAW), embeddings,
                    _index_reference(model, rerank_k), test["caption"].tolist(), facets)
    return root


TOKEN_INDEX = Path("models/index-xattn-tokens")


def add_token_xattn(root: Path) -> Path:
    """Beside `build_search_project`'s models, an xattn model whose scorer reads token states
    (`xattn.features: tokens`, weights moved off their start so that it re-orders) and an index naming it."""
    checkpoint = load_checkpoint(root / "models/finetuned")
    scorer = new_scorer(TINY_MODEL.embed_dim, 1, 2, 0.0, seed=0, features="tokens")
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for parameter in scorer.parameters():
            parameter.add_(0.3 * torch.randn(parameter.shape, generator=generator))
    XattnModel(checkpoint, scorer.eval()).save(root / "models/xattn-tokens")
    index = read_index(root / "models/index-xattn")
    write_index(root / TOKEN_INDEX, index.ids, index.paths, index.embeddings,
                {**index.reference, "model_dir": "models/xattn-tokens"}, index.captions)
    return root / TOKEN_INDEX


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_search_project(tmp_path_factory.mktemp("search"))


# --- which model serves ----------------------------------------------------------------------------

def test_best_model_is_chosen_on_validation_never_on_test() -> None:
    metrics = {"baseline": {"strict": {"t2i_recall_at_10": 0.9}, "item": {"t2i_recall_at_10": 0.9}},
               "finetuned": {"strict": {"t2i_recall_at_10": 0.3}},
               "xattn": {"strict": {"t2i_recall_at_10": 0.1}},
               "validation": {"baseline": {"shopper_ndcg_at_10": 0.2, "item_t2i_recall_at_10": 0.7},
                              "finetuned": {"shopper_ndcg_at_10": 0.4, "item_t2i_recall_at_10": 0.5},
                              "xattn": {"shopper_ndcg_at_10": 0.3, "item_t2i_recall_at_10": 0.6}}}
    assert best_model(metrics, "shopper_ndcg_at_10") == "finetuned"  # the test figures favour baseline
    assert best_model(metrics, "item_t2i_recall_at_10") == "baseline"


def test_best_model_breaks_a_tie_towards_the_earlier_model() -> None:
    tied = {"validation": {name: {"shopper_ndcg_at_10": 0.5} for name in ("xattn", "finetuned", "baseline")}}
    assert best_model(tied, "shopper_ndcg_at_10") == "baseline"


def test_best_model_without_the_validation_figure_says_what_to_do() -> None:
    with pytest.raises(ValueError, match="serve.model"):
        best_model({"gallery": {"size": 3}, "baseline": {"strict": {"t2i_recall_at_10": 0.5}}},
                   "shopper_ndcg_at_10")


def test_a_named_model_is_served_without_reading_metrics(tmp_path: Path) -> None:
    assert choose_model("xattn", tmp_path / "absent.json", "shopper_ndcg_at_10") == "xattn"


# --- which images ----------------------------------------------------------------------------------

def test_gallery_is_the_test_split_or_every_image_sorted_by_name() -> None:
    train = pd.DataFrame({"image": ["c.jpg", "a.jpg"]})
    test = pd.DataFrame({"image": ["d.jpg", "b.jpg"]})
    assert gallery_pairs(train, test, "test")["image"].tolist() == ["b.jpg", "d.jpg"]
    assert gallery_pairs(train, test, "all")["image"].tolist() == ["a.jpg", "b.jpg", "c.jpg", "d.jpg"]


# --- the files -------------------------------------------------------------------------------------

def test_index_files_round_trip_with_the_model_reference(project: Path) -> None:
    index = read_index(project / "models/index")
    test = pd.read_parquet(project / "data/processed/test.parquet")
    assert index.ids == sorted(test["image"])
    assert all(path.startswith("data/raw/images/") and (project / path).is_file() for path in index.paths)
    assert index.embeddings.shape == (len(test), TINY_MODEL.embed_dim) and index.embeddings.dtype == np.float32
    assert np.allclose(np.linalg.norm(index.embeddings, axis=1), 1.0, atol=1e-5)
    assert index.faiss_index.ntotal == len(test)
    assert {key: index.reference[key] for key in ("model", "model_dir", "dim", "gallery_size", "max_tokens",
                                                  "image_fit")} == {
        "model": "finetuned", "model_dir": "models/finetuned", "dim": TINY_MODEL.embed_dim, "gallery_size": len(test),
        "max_tokens": MAX_TOKENS, "image_fit": "pad"}


def test_an_index_whose_files_disagree_is_refused(project: Path, tmp_path: Path) -> None:
    broken = tmp_path / "index"
    shutil.copytree(project / "models/index", broken)
    reference = json.loads((broken / "index.json").read_text())
    (broken / "index.json").write_text(json.dumps({**reference, "gallery_size": 1}))
    with pytest.raises(ValueError, match="dvc repro index"):
        read_index(broken)


def test_a_missing_index_names_the_stage_that_writes_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="dvc repro index"):
        read_index(tmp_path / "nothing")


# --- FAISS against matmul --------------------------------------------------------------------------

def _unit(rows: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_exact_faiss_returns_what_matmul_returns() -> None:
    gallery, query = _unit(500, 16, seed=0), _unit(1, 16, seed=1)[0]
    expected_rows, expected_scores = MatmulSearch(gallery).top(query, 10)
    rows, scores = FaissSearch(build_faiss(gallery, "exact")).top(query, 10)
    assert rows.tolist() == expected_rows.tolist()
    assert np.allclose(scores, expected_scores, atol=1e-5)
    assert np.all(np.diff(scores) <= 0)


@pytest.mark.parametrize("kind", ["ivf", "hnsw", "fastscan"])  # fastscan re-scores 1,000 of the 4,000
def test_approximate_indexes_find_most_true_neighbours(kind: str) -> None:
    gallery, queries = _unit(4000, 16, seed=2), _unit(20, 16, seed=3)
    exact, approximate = MatmulSearch(gallery), FaissSearch(build_faiss(gallery, kind))
    found = [len(set(exact.top(q, 10)[0]) & set(approximate.top(q, 10)[0])) for q in queries]
    assert sum(found) / (10 * len(queries)) >= 0.8


def test_fastscan_re_scores_its_candidates_into_the_exact_top_k() -> None:
    gallery, queries = _unit(1000, 16, seed=6), _unit(20, 16, seed=7)  # k · 100 candidates cover it all
    exact, fastscan = MatmulSearch(gallery), FaissSearch(build_faiss(gallery, "fastscan"))
    for query in queries:
        (expected_rows, expected_scores), (rows, scores) = exact.top(query, 10), fastscan.top(query, 10)
        assert rows.tolist() == expected_rows.tolist()
        assert np.allclose(scores, expected_scores, atol=1e-5)


def test_fastscan_round_trips_through_the_index_files(tmp_path: Path) -> None:
    gallery, query = _unit(300, 16, seed=8), _unit(1, 16, seed=9)[0]
    ids = [f"{i:04d}.jpg" for i in range(len(gallery))]
    write_index(tmp_path / "index", ids, ids, gallery, {"faiss": "fastscan"})
    index = read_index(tmp_path / "index")
    assert index.reference["faiss"] == "fastscan" and index.faiss_index.ntotal == len(gallery)
    assert index.faiss_index.k_factor == FASTSCAN_RESCORE_FACTOR
    assert FaissSearch(index.faiss_index).top(query, 5)[0].tolist() == MatmulSearch(gallery).top(query, 5)[0].tolist()


def test_fastscan_refuses_a_gallery_too_small_to_train_naming_the_setting() -> None:
    with pytest.raises(ValueError, match="serve.faiss: fastscan needs at least 16 images"):
        build_faiss(_unit(10, 16, seed=10), "fastscan")


def test_an_unknown_index_kind_is_refused_naming_the_key() -> None:
    params = load_params(REPO / "params.yaml")
    with pytest.raises(ConfigError, match="serve.faiss"):
        section({**params, "serve": {**params["serve"], "faiss": "fastest"}}, "serve")
    assert section({**params, "serve": {**params["serve"], "faiss": "fastscan"}}, "serve").faiss == "fastscan"
    with pytest.raises(ValueError, match="serve.faiss"):
        build_faiss(_unit(100, 16, seed=11), "fastest")


def test_matmul_clamps_depth_to_the_gallery() -> None:
    rows, scores = MatmulSearch(_unit(3, 8, seed=4)).top(_unit(1, 8, seed=5)[0], 10)
    assert sorted(rows.tolist()) == [0, 1, 2] and np.all(np.diff(scores) <= 0)


def test_auto_is_exact_for_small_galleries_and_approximate_for_large_ones() -> None:
    assert resolve_kind("auto", AUTO_APPROXIMATE_FROM - 1) == "exact"
    assert resolve_kind("auto", AUTO_APPROXIMATE_FROM) == "fastscan"
    assert resolve_kind("ivf", 10) == "ivf"


# --- the stage, as DVC runs it ---------------------------------------------------------------------

def _stage_params(root: Path, serve: dict) -> None:
    write_params(root, {("serve", key): value for key, value in serve.items()})


def _run_index_stage(root: Path, out: str) -> subprocess.CompletedProcess[str]:
    args = ["--baseline", "models/baseline", "--finetuned", "models/finetuned", "--xattn", "models/xattn",
            "--train", "data/processed/train.parquet", "--val", "data/processed/val.parquet",
            "--test", "data/processed/test.parquet", "--raw", "data/raw", "--cache", "data/cache/images",
            "--metrics", "metrics/evaluate.json", "--out", out]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    return subprocess.run([sys.executable, str(REPO / "stages/index.py"), *args], cwd=root,
                          env={**env, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, timeout=300)


def test_index_stage_serves_the_best_model_over_every_image(project: Path) -> None:
    _stage_params(project, {"model": "best", "gallery": "all", "faiss": "fastscan"})
    result = _run_index_stage(project, "models/index-stage")
    assert result.returncode == 0, result.stderr
    index = read_index(project / "models/index-stage")
    everything = sum(len(pd.read_parquet(project / f"data/processed/{side}.parquet"))
                     for side in ("train", "val", "test"))
    assert index.reference["model"] == "finetuned"  # the best validation shopper nDCG@10 in the fixture's metrics
    assert index.reference["selected_by"] == "validation shopper_ndcg_at_10"
    assert index.reference["model_dir"] == "models/finetuned"
    assert (index.reference["gallery"], index.reference["faiss"]) == ("all", "fastscan")
    assert len(index.ids) == everything == index.reference["gallery_size"]


def test_index_stage_rejects_an_unknown_model_before_any_work(project: Path) -> None:
    _stage_params(project, {"model": "biggest"})
    result = _run_index_stage(project, "models/index-never")
    assert result.returncode == 1 and "serve.model" in result.stderr and "Traceback" not in result.stderr
    assert not (project / "models/index-never").exists()


def test_a_truncated_faiss_file_is_one_line_naming_it(project: Path, tmp_path: Path) -> None:
    broken = tmp_path / "index"
    shutil.copytree(project / "models/index", broken)
    faiss_file = broken / "vectors.faiss"
    faiss_file.write_bytes(faiss_file.read_bytes()[:40])
    with pytest.raises(ValueError, match=r"vectors\.faiss is not a readable FAISS index.*dvc repro -f index") as error:
        read_index(broken)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("key", ["faiss", "dim", "gallery_size", "model", "model_dir", "max_tokens"])
def test_an_index_json_missing_a_key_is_one_line_naming_it(project: Path, tmp_path: Path, key: str) -> None:
    broken = tmp_path / "index"
    shutil.copytree(project / "models/index", broken)
    reference = json.loads((broken / "index.json").read_text())
    del reference[key]
    (broken / "index.json").write_text(json.dumps(reference))
    with pytest.raises(ValueError, match=rf"index\.json lacks {key}; rebuild it with `dvc repro -f index`"):
        SearchEngine.open(broken, root=project)
    (broken / "index.json").write_text("{ not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_index(broken)


# --- filtered search: k results whenever k are allowed ---------------------------------------------

def masked_exact_top(embeddings: np.ndarray, query: np.ndarray, depth: int, allowed: np.ndarray) -> list[int]:
    scores = np.where(allowed, embeddings @ query, -np.inf)
    return [int(i) for i in np.argsort(-scores, kind="stable")[:min(depth, int(allowed.sum()))]]


@pytest.fixture
def small_exact_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """Filtered searches of over 300 allowed rows (of 32 dimensions) go through the index."""
    import fashion_search.search.vectors as vectors

    monkeypatch.setattr(vectors, "EXACT_FILTER_FLOATS", 300 * 32)


@pytest.mark.parametrize("kind", ["exact", "fastscan", "ivf", "hnsw"])
@pytest.mark.parametrize("share", [0.003, 0.05, 0.3, 0.97])
def test_a_filtered_search_returns_k_allowed_rows_the_exact_ones_when_exact(kind: str, share: float,
                                                                            small_exact_budget: None) -> None:
    rng = np.random.default_rng(1)
    gallery = rng.standard_normal((AUTO_APPROXIMATE_FROM * 2, 32)).astype(np.float32)
    gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
    allowed = rng.random(len(gallery)) < share  # 0.003 of 10,000 is scanned alone, the others pass the index
    search = FaissSearch(build_faiss(gallery, kind))
    found = overlap = 0
    for query in gallery[:5]:
        rows, scores = restricted_top(search, gallery, query, 10, allowed)
        assert len(rows) == 10 and allowed[rows].all() and list(scores) == sorted(scores, reverse=True)
        expected = masked_exact_top(gallery, query, 10, allowed)
        if kind == "exact":
            assert rows.tolist() == expected
        overlap += len(set(rows.tolist()) & set(expected))
        found += 10
    if kind in ("exact", "fastscan"):  # IVF and HNSW lose neighbours on random vectors, filtered or not
        assert overlap == found


class MissingIndex(FaissSearch):
    """An approximate index that finds almost nothing (as IVF can with few probes); counts its calls."""

    def __init__(self) -> None:
        self.asked: list[int] = []

    def candidates(self, query: np.ndarray, count: int) -> np.ndarray:
        self.asked.append(count)
        return np.array([0, 2])


def test_a_filtered_search_asks_deeper_then_falls_back_to_the_exact_scan(small_exact_budget: None) -> None:
    rng = np.random.default_rng(2)
    gallery = rng.standard_normal((AUTO_APPROXIMATE_FROM * 2, 32)).astype(np.float32)
    allowed = np.zeros(len(gallery), dtype=bool)
    allowed[1::2] = True
    index = MissingIndex()
    rows, _ = restricted_top(index, gallery, gallery[0], 7, allowed)
    assert rows.tolist() == masked_exact_top(gallery, gallery[0], 7, allowed)
    assert index.asked == [350, 1400, 5600, 10000]  # 25 × 7 / (1/2), four times deeper, then the whole gallery


@pytest.mark.parametrize("allowed_rows", [[], [4], [1, 5, 9]])
def test_a_filtered_search_never_returns_more_than_is_allowed(allowed_rows: list[int]) -> None:
    gallery = np.eye(12, dtype=np.float32)
    allowed = np.zeros(12, dtype=bool)
    allowed[allowed_rows] = True
    rows, _ = restricted_top(MatmulSearch(gallery), gallery, gallery[0], 10, allowed)
    assert sorted(rows.tolist()) == allowed_rows


# --- facets and calibration ---------------------------------------------------------------------------

def test_facets_offer_only_what_the_source_has_and_no_absences() -> None:
    attributes = pd.DataFrame({"gender": ["women", "men", None], "category": ["Dresses", "Denim", None],
                               "hat": ["hat", "no hat", None], "glasses": ["no glasses", "sunglasses", None],
                               "upper_fabric": ["denim", None, None], "lower_fabric": ["cotton", "denim", None],
                               "upper_colour": [None, None, None]})
    values = facet_values(attributes)
    assert list(values) == ["category", "gender", "fabric", "accessories"]  # no colour: no image has one
    assert values["fabric"] == [["cotton", "denim"], ["denim"], []]
    assert values["accessories"] == [["hat"], ["sunglasses"], []]
    facets = Facets.from_values(values, 3)
    assert facets.allowed({"fabric": ["cotton", "denim"]}).tolist() == [True, True, False]
    assert facets.allowed({"fabric": ["denim"], "gender": ["men"]}).tolist() == [False, True, False]
    with pytest.raises(FilterError, match="unknown filter 'colour'"):
        facets.parse([("colour", "red")])


def test_each_query_is_scored_by_its_best_cosine_over_the_gallery() -> None:
    texts = torch.tensor([[1.0, 0, 0, 0], [0.6, 0.8, 0, 0], [0, 0, -1.0, 0]])
    assert best_scores(texts, torch.eye(4)).tolist() == pytest.approx([1.0, 0.8, 0.0])
    assert best_scores(texts, np.eye(4, dtype=np.float32)).tolist() == pytest.approx([1.0, 0.8, 0.0])


def test_the_threshold_separates_off_domain_queries_from_shopper_queries() -> None:
    relevant, off_domain = np.linspace(0.5, 0.9, 100), np.linspace(0.1, 0.4, 40)
    record = separating_threshold(relevant, off_domain)
    assert record["threshold"] == 0.5  # the lowest score that flags every off-domain query and no shopper query
    assert record["fires_on_relevant"] == 0.0 and record["fires_on_off_domain"] == 1.0
    assert record["auc"] == record["best_balanced_accuracy"] == 1.0
    assert (record["relevant_queries"], record["off_domain_queries"]) == (100, 40)


def test_equally_good_thresholds_resolve_to_the_lower_one() -> None:
    # flagging below 0.3 catches half the nonsense and no real query; below 0.8 all of it and half the real ones
    relevant, off_domain = np.repeat([0.3, 0.8], 50), np.repeat([0.2, 0.5], 50)
    record = separating_threshold(relevant, off_domain)
    assert record["threshold"] == pytest.approx(0.3) and record["best_balanced_accuracy"] == 0.75
    assert record["fires_on_relevant"] == 0.0 and record["fires_on_off_domain"] == 0.5


def test_a_model_that_scores_nonsense_higher_gets_no_threshold() -> None:
    """As the tiny default model does: unseen words land near every picture, so nonsense scores high. The
    best cut flags all nonsense and all but the 5 best shopper queries: a balanced accuracy of 0.507,
    within chance of its 40 off-domain queries, so it is not kept."""
    relevant, off_domain = np.concatenate([np.full(370, 0.4), np.full(5, 0.7)]), np.full(40, 0.6)
    record = separating_threshold(relevant, off_domain, relevant_units=130)
    assert record["threshold"] is None
    assert record["fires_on_relevant"] == record["fires_on_off_domain"] == 0.0  # nothing is flagged
    assert record["best_balanced_accuracy"] == pytest.approx(0.5 * (1 + 5 / 375))  # what it could not keep
    assert record["auc"] == pytest.approx(5 / 375) and record["relevant_units"] == 130


def test_the_shopper_side_counts_its_combinations_as_the_independent_units() -> None:
    """22 of 40 nonsense queries flagged against 30% of 120 shopper queries: kept when those are 120
    separate combinations, not when they are 3 phrasings each of 40."""
    relevant, off_domain = np.concatenate([np.full(36, 0.1), np.full(84, 0.5)]), np.concatenate(
        [np.full(22, 0.2), np.full(18, 0.6)])
    assert separating_threshold(relevant, off_domain)["threshold"] == pytest.approx(0.5)
    assert separating_threshold(relevant, off_domain, relevant_units=40)["threshold"] is None


def test_the_calibration_scores_shopper_and_off_domain_queries_on_the_validation_images(project: Path) -> None:
    checkpoint, _ = load_model(project / "models/finetuned", "finetuned")
    validation = pd.read_parquet(project / "data/processed/val.parquet").drop_duplicates("image")
    attributes = image_attributes(project / RAW, validation["image"].tolist())
    embeddings = embed_gallery(checkpoint, validation, project / RAW, "pad", batch_size=16)
    record = weak_match_threshold(checkpoint, attributes, embeddings, min_relevant=1, max_queries=5, seed=42,
                                  max_tokens=MAX_TOKENS, long_text="truncate", batch_size=16)
    texts, combinations = shopper_queries(attributes, 1, 5, 42)
    assert texts and record["relevant_queries"] == len(texts) and record["relevant_units"] == combinations
    assert record["off_domain_queries"] == len(OFF_DOMAIN_QUERIES) >= 20
    assert 0.0 <= record["auc"] <= 1.0 and 0.5 <= record["best_balanced_accuracy"] <= 1.0
    assert weak_match_threshold(checkpoint, attributes, embeddings, min_relevant=10**6, max_queries=5, seed=42,
                                max_tokens=MAX_TOKENS, long_text="truncate", batch_size=16) is None


@pytest.mark.parametrize(("weak_match", "threshold"), [
    ({"threshold": 0.24, "quantile": 0.05, "queries": 375}, 0.24),  # written before the off-domain queries
    ({"threshold": 0.3, "auc": 0.9, "fires_on_relevant": 0.05}, 0.3),
    ({"threshold": None, "auc": 0.32}, None),  # calibrated, and nothing separates
    (None, None),
])
def test_the_served_threshold_reads_old_and_new_records(weak_match: dict | None, threshold: float | None) -> None:
    assert served_threshold({"weak_match": weak_match}) == threshold
    assert served_threshold({}) is None  # an index from before calibration


@pytest.mark.parametrize("weak_match", [{"threshold": "0.3"}, {"threshold": True}, {"threshold": float("nan")},
                                        {"quantile": 0.05}, 0.3, [0.3]])
def test_a_malformed_weak_match_record_is_a_one_line_data_error(weak_match) -> None:
    with pytest.raises(DataError, match="weak_match .* holds no numeric threshold"):
        served_threshold({"weak_match": weak_match})
