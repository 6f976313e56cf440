"""The search engine and the `query` command: ranking, re-ranking as in evaluation, and every bad query."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import PARAMS
from test_search_index import RAW, add_token_xattn, build_search_project

from fashion_search.cli import main
from fashion_search.config import load_params, section
from fashion_search.data.pairs import read_pairs
from fashion_search.errors import DataError
from fashion_search.evaluate import pipeline as evaluation
from fashion_search.evaluate.retrieval import query_first, search
from fashion_search.search.engine import QueryError, SearchEngine
from fashion_search.search.index import gallery_pairs, write_index

LONG_QUERY = " ".join(["a long-sleeved shirt with black and white boxes and a red skirt"] * 20)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_search_project(tmp_path_factory.mktemp("engine"))


@pytest.fixture(scope="module")
def engine(project: Path) -> SearchEngine:
    return SearchEngine.open(project / "models/index", root=project)


@pytest.fixture(scope="module")
def xattn_engine(project: Path) -> SearchEngine:
    return SearchEngine.open(project / "models/index-xattn", root=project)


def test_results_are_ranked_best_first_with_their_files(engine: SearchEngine) -> None:
    hits = engine.search("a red dress", 5)
    assert len(hits) == 5
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert len({h.image_id for h in hits}) == 5
    assert all(h.path.is_file() and h.path.name == h.image_id for h in hits)


def test_scores_are_the_cosines_of_the_query_and_the_gallery(engine: SearchEngine) -> None:
    text = engine.encode("denim shorts").numpy()
    hits = engine.search("denim shorts", 3)
    rows = [engine.index.ids.index(h.image_id) for h in hits]
    assert np.allclose([h.score for h in hits], engine.index.embeddings[rows] @ text, atol=1e-5)


def test_k_beyond_the_gallery_returns_the_whole_gallery(engine: SearchEngine) -> None:
    assert len(engine.search("a hat", 10_000)) == engine.gallery_size


@pytest.mark.parametrize("query", ["", "   ", "\t\n"])
def test_an_empty_query_is_refused_with_a_message(engine: SearchEngine, query: str) -> None:
    with pytest.raises(QueryError, match="empty"):
        engine.search(query, 5)


@pytest.mark.parametrize("k", [0, -3])
def test_k_below_one_is_refused(engine: SearchEngine, k: int) -> None:
    with pytest.raises(QueryError, match="k must be"):
        engine.search("a red dress", k)


def test_a_query_over_77_tokens_is_truncated_not_refused(engine: SearchEngine) -> None:
    ids = engine.checkpoint.tokenizer(LONG_QUERY)["input_ids"]
    assert len(ids) > 77
    kept = engine.checkpoint.tokenizer.decode(ids[1:76])  # what survives truncation, end token re-added
    assert [h.image_id for h in engine.search(LONG_QUERY, 5)] == [h.image_id for h in engine.search(kept, 5)]


@pytest.mark.parametrize("query", ["robe rouge à fleurs", "красное платье", "連衣裙", "👗✨", "a dress 👗"])
def test_non_ascii_and_emoji_queries_work(engine: SearchEngine, query: str) -> None:
    assert len(engine.search(query, 3)) == 3


def test_a_query_costs_one_text_encoding(engine: SearchEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    model, calls = engine.checkpoint.model, []
    original = model.get_text_features
    monkeypatch.setattr(model, "get_text_features", lambda **kw: calls.append(1) or original(**kw))
    monkeypatch.setattr(model, "get_image_features", lambda **kw: pytest.fail("images are embedded once, offline"))
    engine.search("a red dress", 5)
    assert len(calls) == 1


def test_faiss_and_matmul_give_the_same_results(project: Path, engine: SearchEngine) -> None:
    exact = SearchEngine.open(project / "models/index", root=project, exact=True)
    assert exact.backend == "matmul"
    for query in ("a red dress", "long-sleeved shirt with black and white boxes"):
        assert [h.image_id for h in exact.search(query, 8)] == [h.image_id for h in engine.search(query, 8)]


def test_a_fastscan_index_gives_the_exact_results(project: Path, engine: SearchEngine, tmp_path: Path) -> None:
    index = engine.index
    reference = {**index.reference, "faiss": "fastscan"}
    write_index(tmp_path / "index", index.ids, index.paths, index.embeddings, reference)
    fastscan = SearchEngine.open(tmp_path / "index", root=project)
    assert (engine.backend, fastscan.backend) == ("exact", "fastscan")
    for query in ("a red dress", "denim shorts"):
        expected, hits = engine.search(query, 8), fastscan.search(query, 8)
        assert [h.image_id for h in hits] == [h.image_id for h in expected]
        assert np.allclose([h.score for h in hits], [h.score for h in expected], atol=1e-5)


@pytest.mark.parametrize("k", [1, 3, 8])
def test_xattn_re_ranks_the_dual_encoders_top_candidates_as_evaluation_does(xattn_engine: SearchEngine,
                                                                            k: int) -> None:
    scorer, rerank_k = xattn_engine.scorer, xattn_engine.index.reference["rerank_k"]
    text = xattn_engine.encode("a red dress")
    gallery = torch.tensor(xattn_engine.index.embeddings)
    rows, scores = search(text, gallery, k, lambda t, image: scorer(image, t), rerank_k)
    hits = xattn_engine.search("a red dress", k)
    assert [h.image_id for h in hits] == [xattn_engine.index.ids[int(r)] for r in rows]
    assert np.allclose([h.score for h in hits], scores.numpy(), atol=1e-5)


@pytest.fixture(scope="module")
def tokens_engine(project: Path) -> SearchEngine:
    return SearchEngine.open(add_token_xattn(project), root=project)


@pytest.mark.parametrize("query", ["a red dress", "long-sleeved shirt with black and white boxes"])
@pytest.mark.parametrize("k", [1, 3, 8])
def test_a_token_xattn_re_ranks_as_the_evaluate_stage_does(project: Path, tokens_engine: SearchEngine,
                                                          query: str, k: int) -> None:
    """The evaluation path: the gallery's token states from the image cache, the query's from a batch."""
    params = load_params(PARAMS)
    settings, text = section(params, "evaluate"), section(params, "text")
    test = read_pairs(project / "data/processed/test.parquet", "split")
    gallery = evaluation.TestGallery(gallery_pairs(test, test, "test"), project / RAW, "pad", project / "data/cache/images")
    checkpoint, scorer = tokens_engine.checkpoint, tokens_engine.scorer
    images, _ = evaluation.encode_gallery(checkpoint, gallery, settings, tokens=True)
    rows = evaluation.encode_queries(checkpoint, [query], settings, text, tokens=True)
    rerank_k = tokens_engine.index.reference["rerank_k"]
    expected, scores = search(rows, images, k, query_first(scorer), rerank_k)
    hits = tokens_engine.search(query, k)
    assert gallery.pairs["image"].tolist() == tokens_engine.index.ids
    assert [h.image_id for h in hits] == [tokens_engine.index.ids[int(r)] for r in expected]
    assert np.allclose([h.score for h in hits], scores.numpy(), rtol=0, atol=1e-5)


def test_a_token_xattn_re_orders_the_dual_encoders_candidates(tokens_engine: SearchEngine) -> None:
    rerank_k = tokens_engine.index.reference["rerank_k"]
    text = tokens_engine.encode("a red dress")
    dual = np.argsort(-(tokens_engine.index.embeddings @ text.numpy()), kind="stable")[:rerank_k]
    hits = tokens_engine.search("a red dress", rerank_k)
    rows = [tokens_engine.row_of(h.image_id) for h in hits]
    assert sorted(rows) == sorted(dual.tolist()) and rows != dual.tolist()


def test_a_token_xattn_computes_token_states_of_the_candidates_only(tokens_engine: SearchEngine,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    model, images = tokens_engine.checkpoint.model, []
    original = model.get_image_features
    monkeypatch.setattr(model, "get_image_features",
                        lambda **kw: images.append(len(kw["pixel_values"])) or original(**kw))
    tokens_engine.search("a red dress", 2)
    assert images == [tokens_engine.index.reference["rerank_k"]]


def test_a_token_xattn_index_whose_image_files_are_gone_is_refused_naming_one(project: Path,
                                                                              tokens_engine: SearchEngine) -> None:
    index = tokens_engine.index
    moved = type(index)(index.ids, [*index.paths[:-1], "data/raw/images/gone.jpg"], index.embeddings,
                        index.reference, index.faiss_index)
    with pytest.raises(DataError, match=r"1 of the gallery's .* image files \(e.g. .*gone.jpg\) are missing"):
        SearchEngine(moved, tokens_engine.checkpoint, tokens_engine.scorer, project)
    SearchEngine(moved, tokens_engine.checkpoint, None, project)  # the dual encoder alone needs no pixels


def test_images_are_found_by_id_only(engine: SearchEngine, project: Path) -> None:
    first = engine.index.ids[0]
    assert engine.image_path(first) == project / "data/raw/images" / first
    for trick in ("../params.yaml", "..", "/etc/passwd", "images/" + first, first.upper(), ""):
        assert engine.image_path(trick) is None


def test_an_index_built_by_another_model_width_is_refused(project: Path, engine: SearchEngine) -> None:
    index = engine.index
    narrower = type(index)(index.ids, index.paths, index.embeddings[:, :16], {**index.reference, "dim": 16},
                           index.faiss_index)
    with pytest.raises(ValueError, match="dvc repro index"):
        SearchEngine(narrower, engine.checkpoint, None, project)


# --- the `fashion-search query` command ------------------------------------------------------------

def test_query_command_prints_ranked_results_and_writes_a_grid(project: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(project)
    main(["query", "a red dress", "-k", "3", "--grid", "out/grid.png"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("3 of ") and "finetuned" in lines[0]
    ranked = [line.split() for line in lines[1:4]]
    assert [row[0] for row in ranked] == ["1", "2", "3"]
    assert all(row[2].endswith(".jpg") for row in ranked)
    assert (project / "out/grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_query_command_answers_with_a_token_xattn(project: Path, tokens_engine: SearchEngine,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(project)
    main(["query", "a red dress", "-k", "3", "--index", "models/index-xattn-tokens"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("3 of ") and "xattn" in lines[0]
    assert [line.split()[2] for line in lines[1:4]] == [h.image_id for h in tokens_engine.search("a red dress", 3)]


def test_query_command_reports_an_empty_query_in_one_line(project: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(project)
    with pytest.raises(SystemExit) as exit_info:
        main(["query", "  ", "-k", "3"])
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.startswith("error: the query is empty")


def test_query_command_without_an_index_names_the_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        main(["query", "a red dress"])
    assert "dvc repro index" in capsys.readouterr().err


def _one_line_error(capsys: pytest.CaptureFixture[str], code: int, exit_info: pytest.ExceptionInfo) -> str:
    err = capsys.readouterr().err
    assert exit_info.value.code == code, err
    assert "Traceback" not in err and len([line for line in err.splitlines() if "error" in line]) == 1, err
    return err


@pytest.mark.parametrize("grid", ["out", "params.yaml/grid.png"])
def test_query_grid_at_a_folder_or_an_unwritable_path_is_one_line_before_searching(
        project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], grid: str) -> None:
    monkeypatch.chdir(project)
    (project / "out").mkdir(exist_ok=True)
    (project / "params.yaml").write_text("seed: 42\n")  # a file where the grid's folder should be
    monkeypatch.setattr(SearchEngine, "open", lambda *a, **k: pytest.fail("searched before checking --grid"))
    with pytest.raises(SystemExit) as exit_info:
        main(["query", "a red dress", "--grid", grid])
    assert f"--grid {grid}" in _one_line_error(capsys, 1, exit_info)


def test_query_grid_that_cannot_be_written_is_one_line(project: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """Past the early check (root may write anywhere): the write itself fails, still one line."""
    import fashion_search.search.commands as commands

    monkeypatch.chdir(project)
    monkeypatch.setattr(commands, "check_grid_path", lambda out: None)
    with pytest.raises(SystemExit) as exit_info:
        main(["query", "a red dress", "--grid", "params.yaml/grid.png"])
    assert "--grid params.yaml/grid.png: cannot write it" in _one_line_error(capsys, 1, exit_info)


def test_query_from_another_folder_finds_the_repository_above_the_index(
        project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    main(["query", "a red dress", "-k", "2", "--index", str(project / "models/index")])
    assert capsys.readouterr().out.startswith("2 of ")
    moved = tmp_path / "elsewhere" / "index"
    shutil.copytree(project / "models/index-xattn", moved)  # away from the repository that holds its model
    with pytest.raises(SystemExit) as exit_info:
        main(["query", "a red dress", "--index", str(moved)])
    err = _one_line_error(capsys, 1, exit_info)
    assert f"the index {moved}" in err and "models/xattn" in err and "train_xattn" not in err


def test_query_with_a_flipped_weight_byte_names_the_file_and_the_stage_in_one_line(
        project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """The index's model (finetuned, whose manifest records no stage here) no longer has the bytes it was
    saved with: the stage that writes finetuned is named all the same."""
    copy = tmp_path / "project"
    shutil.copytree(project, copy)
    weights = copy / "models/finetuned/model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    monkeypatch.chdir(copy)
    with pytest.raises(SystemExit) as exit_info:
        main(["query", "a red dress"])
    err = _one_line_error(capsys, 1, exit_info)
    assert "models/finetuned/model.safetensors is damaged" in err and "dvc repro -f finetune`" in err


@pytest.mark.parametrize("port", ["99999", "-1", "0", "http"])
def test_serve_refuses_a_port_outside_1_to_65535_in_one_line(capsys: pytest.CaptureFixture[str], port: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--port", port, "--index", "/nonexistent"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err
    assert "argument --port" in err and "not a port number (1-65535)" in err


def test_results_table_of_a_missing_readme_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["results-table", "--readme", str(tmp_path / "NOPE.md")])
    assert f"--readme {tmp_path / 'NOPE.md'}: no such file" in _one_line_error(capsys, 1, exit_info)
