"""The real pipeline, shrunk: `dvc repro` in a temporary git repository, then an experiment.

Composes the real params.yaml and makes it small (few items, a narrow model, one
epoch) rather than mocking anything: every stage, DVC and MLflow run for real.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from ruamel.yaml import YAML

from conftest import commit_all, copy_project, write_params

REPO = Path(__file__).resolve().parents[1]
SMALL = {
    ("data", "n_items"): 24,
    ("model", "tiny", "embed_dim"): 32,
    ("model", "tiny", "layers"): 1,
    ("model", "tiny", "heads"): 2,
    ("model", "tiny", "image_size"): 32,
    ("model", "tiny", "vocab_size"): 400,
    ("train_baseline", "epochs"): 2,
    ("train_baseline", "batch_size"): 16,
    ("train_baseline", "warmup_steps"): 2,
    ("train_baseline", "checkpoint_every"): 3,  # mid-epoch states: a killed stage resumes
    ("finetune", "checkpoint_every"): 3,
    ("xattn", "checkpoint_every"): 2,
    ("finetune", "batch_size"): 16,
    ("xattn", "layers"): 1,
    ("xattn", "batch_size"): 8,
    ("retrieval", "rerank_k"): 5,
    ("evaluate", "plot_max_k"): 10,
    # 24 items leave too few validation images for a shopper combination's 10 relevant ones
    ("serve", "select_by"): "item_t2i_recall_at_10",
}
STAGES = ["train_baseline", "finetune", "train_xattn", "evaluate"]
pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["HF_HUB_OFFLINE"] = "1"
    return env


def _run(repo: Path, *args: str) -> str:
    result = subprocess.run(args, cwd=repo, env=_env(), capture_output=True, text=True)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def _shrink(params_file: Path, changes: dict[tuple[str, ...], object] = SMALL) -> None:
    write_params(params_file, changes, source=params_file)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the project's files (what git would commit) in a fresh git repository, after `dvc repro`."""
    repo = copy_project(tmp_path_factory.mktemp("project"))
    _shrink(repo / "params.yaml")
    for path in (repo / "metrics").glob("*.json"):
        path.unlink()
    commit_all(repo)
    _run(repo, sys.executable, "-m", "dvc", "repro")
    return repo


def _mlflow_runs(repo: Path) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("fashion-search")
    return client.search_runs([experiment.experiment_id])


def test_repro_writes_metrics_for_every_model(project: Path) -> None:
    metrics = json.loads((project / "metrics/evaluate.json").read_text())
    for model in ("baseline", "finetuned", "xattn"):
        for protocol in ("strict", "item", "gallery_32"):
            for direction in ("t2i", "i2t"):
                for k in (1, 5, 10):
                    assert 0.0 <= metrics[model][protocol][f"{direction}_recall_at_{k}"] <= 1.0
                assert metrics[model][protocol][f"{direction}_mean_rank"] >= 1.0
        assert metrics[model]["item"]["t2i_recall_at_1"] >= metrics[model]["strict"]["t2i_recall_at_1"]
        for direction in ("t2i", "i2t"):  # intervals over products, the independent unit
            strict = metrics[model]["strict"]
            assert (strict[f"{direction}_recall_at_10_low"] <= strict[f"{direction}_recall_at_10"]
                    <= strict[f"{direction}_recall_at_10_high"])
        assert 0.0 <= metrics[model]["marqo"]["recall_at_1"] <= metrics[model]["marqo"]["recall_at_10"] <= 1.0
    split = json.loads((project / "metrics/split.json").read_text())
    assert metrics["gallery"]["size"] == split["test_pairs"]
    assert metrics["gallery"]["validation_size"] == split["val_pairs"] > 0
    for model in ("baseline", "finetuned", "xattn"):  # chosen on validation, reported on test
        assert 0.0 <= metrics["validation"][model]["item_t2i_recall_at_10"] <= 1.0
        item = metrics[model]["item"]
        assert item["t2i_recall_at_10_low"] <= item["t2i_recall_at_10"] <= item["t2i_recall_at_10_high"]
        assert "families" in metrics[model]["shopper"]
    assert set(metrics["differences"]) == {"finetuned_vs_baseline", "xattn_vs_finetuned",
                                           "xattn_reranked_vs_its_dual_encoder",
                                           "xattn_late_interaction_vs_its_dual_encoder",
                                           "xattn_reranked_vs_xattn_late_interaction"}
    for reranker in ("reranked", "dual_encoder", "late_interaction"):  # on test, and on validation to choose by
        for figures in (metrics["xattn"][reranker], metrics["validation"][f"xattn_{reranker}"]):
            assert 0.0 <= figures["item_t2i_mrr_at_10"] <= figures["item_t2i_recall_at_10"] <= 1.0
    assert metrics["xattn"]["reranked"]["item_t2i_recall_at_10"] == metrics["xattn"]["item"]["t2i_recall_at_10"]
    assert metrics["validation"]["xattn_reranked"]["item_t2i_recall_at_10"] == \
        metrics["validation"]["xattn"]["item_t2i_recall_at_10"]
    by_attribute = json.loads((project / "metrics/evaluate_by_attribute.json").read_text())
    sleeves = by_attribute["finetuned"]["sleeve_length"]
    assert sum(bucket["queries"] for bucket in sleeves.values()) == metrics["gallery"]["size"]
    data = json.loads((project / "metrics/data.json").read_text())
    assert data["pairs"] == data["images"] > 0
    assert (project / "reports/retrieval_grid.png").stat().st_size > 0
    for plot in ("t2i", "i2t", "item_t2i", "item_i2t"):
        curve = (project / f"metrics/plots/{plot}_recall_at_k.csv").read_text().splitlines()
        assert curve[0] == "k,baseline,finetuned,xattn" and len(curve) == 11


def test_trec_files_give_evaluate_s_numbers_through_ranx(project: Path) -> None:
    """The run files evaluate writes, read by a standard IR library, give the figures evaluate reports."""
    ranx = pytest.importorskip("ranx")
    metrics = json.loads((project / "metrics/evaluate.json").read_text())
    trec = project / "reports/trec"
    for protocol, reported in (("strict_t2i", "strict"), ("item_t2i", "item")):
        qrels = ranx.Qrels.from_file(str(trec / protocol / "qrels.txt"), kind="trec")
        for model in ("baseline", "finetuned", "xattn"):
            run = ranx.Run.from_file(str(trec / protocol / f"{model}.run.gz"))
            got = float(ranx.evaluate(qrels, run, "hit_rate@10"))  # one relevant (strict) or any view (item)
            assert got == pytest.approx(metrics[model][reported]["t2i_recall_at_10"], rel=1e-12, abs=1e-12)
    families = metrics["xattn"]["shopper"]["families"]
    if families:  # shopper precision@10 of a family: the mean over combinations of their phrasings' mean
        qrels = ranx.Qrels.from_file(str(trec / "shopper/qrels.txt"), kind="trec")
        run = ranx.Run.from_file(str(trec / "shopper/xattn.run.gz"))
        ranx.evaluate(qrels, run, "precision@10")
        family = next(iter(families))
        by_combination: dict[str, list[float]] = {}
        for qid, value in run.scores["precision@10"].items():
            if qid.startswith(f"{family}-"):
                by_combination.setdefault(qid.rsplit("-", 1)[0], []).append(float(value))
        combined = sum(sum(v) / len(v) for v in by_combination.values()) / len(by_combination)
        assert combined == pytest.approx(families[family]["precision_at_10"], rel=1e-9)


def test_dvc_status_is_clean_after_repro(project: Path) -> None:
    assert "up to date" in _run(project, sys.executable, "-m", "dvc", "status")


def _finetune_with(project: Path, out: Path, changes: dict[tuple[str, ...], object]) -> None:
    """Run the finetune stage script into `out` with params changed, then put params.yaml back."""
    params = project / "params.yaml"
    original = params.read_text()
    try:
        _shrink(params, changes)
        _run(project, sys.executable, "stages/finetune.py", "--baseline", "models/baseline",
             "--train", "data/processed/train.parquet", "--cache", "data/cache/images", "--out", str(out / "model"),
             "--metrics", str(out / "finetune.json"), "--state", str(out / "state"))
    finally:
        params.write_text(original)


def test_finetune_on_two_gloo_processes_matches_the_single_process_run(project: Path, tmp_path: Path) -> None:
    """runtime.processes=2: the stage re-executes itself under torchrun (two CPU processes, gloo over
    loopback); one MLflow run and one checkpoint, with the loss curve and weights of one process
    (at lr 1e-3, so that a wrong gradient would show)."""
    import torch
    from mlflow.tracking import MlflowClient
    from safetensors.torch import load_file

    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    curves, weights = [], []
    for processes in (1, 2):
        before = {r.info.run_id for r in _mlflow_runs(project)}
        _finetune_with(project, tmp_path / str(processes),
                       {("runtime", "processes"): processes, ("finetune", "lr"): 1e-3})
        new = [r for r in _mlflow_runs(project) if r.info.run_id not in before]
        # one run of the stage (rank 0 alone logs), nested under the parent of its new pipeline (params changed)
        assert sorted(r.data.tags["stage"] for r in new) == ["finetune", "pipeline"]
        run = next(r for r in new if r.data.tags["stage"] == "finetune")
        assert run.data.tags["mlflow.parentRunId"] == next(r.info.run_id for r in new if r.data.tags["stage"] == "pipeline")
        assert run.data.params["runtime.processes"] == str(processes)
        history = client.get_metric_history(run.info.run_id, "train_loss")
        curves.append([m.value for m in sorted(history, key=lambda m: m.step)])
        weights.append(load_file(str(tmp_path / str(processes) / "model" / "model.safetensors")))
        assert json.loads((tmp_path / str(processes) / "state" / "state.json").read_text())["complete"]
    # (the loss need not fall in these few steps: at lr 1e-3 from a baseline that already fits the captions it
    # can rise; what is checked is that two processes take the steps one process takes)
    assert len(curves[0]) > 1 and all(math.isfinite(value) for value in curves[0])
    assert curves[1] == pytest.approx(curves[0], rel=1e-4)
    # Adam turns rounding noise in near-zero gradients into steps of up to lr: compare the gap between
    # the two runs with how far training moved the weights, not element by element.
    baseline = load_file(str(project / "models/baseline/model.safetensors"))
    gap = torch.cat([(weights[1][name] - weights[0][name]).flatten() for name in baseline]).norm()
    moved = torch.cat([(weights[0][name] - baseline[name]).flatten() for name in baseline]).norm()
    assert moved > 0 and gap < 0.01 * moved


def test_every_tracked_stage_has_an_mlflow_run_with_params_and_provenance(project: Path) -> None:
    runs = _mlflow_runs(project)
    by_stage = {run.data.tags["stage"]: run for run in runs}
    assert set(STAGES) <= set(by_stage)
    commit = _run(project, "git", "rev-parse", "HEAD").strip()
    for run in by_stage.values():
        assert run.data.tags["git_commit"] == commit
    assert by_stage["finetune"].data.params["finetune.lr"] == "1e-06"
    assert "train_loss" in by_stage["finetune"].data.metrics
    evaluated = by_stage["evaluate"].data.metrics
    assert {"baseline/strict/t2i_recall_at_10", "finetuned/item/i2t_recall_at_1", "xattn/marqo/avg_recall",
            "xattn/gallery_32/t2i_recall_at_5", "by_attribute/unlabelled_queries",
            "finetuned/item_t2i_recall_at_k"} <= set(evaluated)
    assert any(name.startswith("by_attribute/finetuned/sleeve_length/") and name.endswith("/item_recall_at_10")
               for name in evaluated)


def test_benchmark_of_the_finetuned_model_on_the_test_split_agrees_with_the_stage(project: Path) -> None:
    """One definition of every metric: the benchmark command and the evaluate stage give the same numbers."""
    shown = _run(project, str(Path(sys.executable).parent / "fashion-search"), "benchmark", "--model",
                 "models/finetuned", "--pairs", "data/processed/test.parquet", "--protocol", "all")
    report = json.loads(shown)
    stage = json.loads((project / "metrics/evaluate.json").read_text())["finetuned"]
    for protocol in ("strict", "item", "marqo", "gallery_32"):
        # the stage adds the strict and item-level intervals over products; every figure both report is the same
        extra = set(stage[protocol]) - set(report[protocol])
        assert extra <= {f"{d}_recall_at_10_{end}" for d in ("t2i", "i2t") for end in ("low", "high")}
        assert report[protocol] == pytest.approx({key: stage[protocol][key] for key in report[protocol]})
    full = json.loads(_run(project, str(Path(sys.executable).parent / "fashion-search"), "benchmark", "--model",
                           "models/finetuned", "--protocol", "marqo"))
    assert full["gallery"]["size"] == json.loads((project / "metrics/data.json").read_text())["pairs"]


def test_the_attribute_probe_bench_runs_on_the_pipeline_s_models(project: Path, tmp_path: Path) -> None:
    """bench/attribute_probe.py (what limits the default, bench/RESULTS.md) on the pipeline's own outputs."""
    out = tmp_path / "probe.json"
    _run(project, sys.executable, "bench/attribute_probe.py", "--epochs", "1", "--out", str(out))
    result = json.loads(out.read_text())
    assert set(result["probes"]) == {"baseline", "finetuned", "xattn"}
    for probes in result["probes"].values():
        assert probes and all(0 <= p["accuracy"] <= 1 and 0 <= p["majority"] <= 1 and p["images"] > 0
                              for p in probes.values())
    for run in ("supervised_vit", "supervised_vit_augmented"):
        assert set(result[run]["val"]) == set(result[run]["train"]) and result[run]["epochs"] == 1
        assert all(0 <= value <= 1 for split in ("train", "val") for value in result[run][split].values())
    assert "supervised_cnn_augmented" not in result  # only with --cnn
    assert set(result["shopper_baseline"]) == {"train", "val"}
    assert result["shopper_baseline"]["train"]["images"] == len(pd.read_parquet(project / "data/processed/train.parquet"))


def test_rerun_from_scratch_gives_identical_metrics(project: Path) -> None:
    """Every metric file is byte-identical after a forced rerun; only the timing file (wall seconds) moves."""
    def metrics() -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in (project / "metrics").glob("*.json") if p.name != "timing.json"}

    before = metrics()
    assert {"evaluate.json", "headline.json"} <= set(before)
    _run(project, sys.executable, "-m", "dvc", "repro", "-f")
    assert metrics() == before
    timing = json.loads((project / "metrics/timing.json").read_text())
    stages = list(YAML(typ="safe").load((project / "dvc.yaml").read_text())["stages"])
    assert set(timing["stages"]) == set(stages)  # every stage, by the forced full rerun
    assert all(seconds > 0 for seconds in timing["stages"].values())
    assert timing["pipeline_seconds"] == pytest.approx(sum(timing["stages"].values()), abs=0.2)


@pytest.fixture(scope="module")
def lr_experiment(project: Path) -> Path:
    """The user's workflow: `dvc exp run -S finetune.lr=1e-4` after the default run (the baseline is cached)."""
    _run(project, sys.executable, "-m", "dvc", "exp", "run", "-S", "finetune.lr=1e-4", "-n", "lr-1e-4")
    return project


def test_experiment_with_a_changed_learning_rate_is_tracked(lr_experiment: Path) -> None:
    """`dvc exp run -S` writes 1e-04 into params.yaml; it must load as a number and give a new run."""
    project = lr_experiment
    finetunes = [r for r in _mlflow_runs(project) if r.data.tags["stage"] == "finetune"]
    tagged = [r for r in finetunes if r.data.tags.get("dvc_exp_name") == "lr-1e-4"]
    assert len(tagged) == 1 and float(tagged[0].data.params["finetune.lr"]) == pytest.approx(1e-4)
    shown = _run(project, sys.executable, "-m", "dvc", "exp", "show", "--json")
    assert "lr-1e-4" in shown
    # the headline and the time, not the hundreds of columns of evaluate.json
    assert "shopper_p10_low" in shown and "pipeline_seconds" in shown and "gallery_32" not in shown


def _evaluate_runs(client, experiment_id: str, exp_name: str) -> list:
    return client.search_runs([experiment_id], order_by=["attributes.start_time DESC"],
                              filter_string=f"tags.stage = 'evaluate' and tags.dvc_exp_name = '{exp_name}'")


def test_evaluate_runs_compare_by_every_param_and_name_the_models_they_scored(lr_experiment: Path) -> None:
    """In MLflow the two evaluate runs differ by finetune.lr, each names its models (digest, dvc.lock hash, the run
    that trained it: for the cached baseline, the default run's), and each pipeline is one parent with its stages."""
    from mlflow.tracking import MlflowClient
    from ruamel.yaml import YAML

    client = MlflowClient(tracking_uri=f"sqlite:///{lr_experiment / 'mlflow.db'}")
    experiment_id = client.get_experiment_by_name("fashion-search").experiment_id
    default, changed = _evaluate_runs(client, experiment_id, "workspace")[0], _evaluate_runs(client, experiment_id,
                                                                                             "lr-1e-4")[0]
    (by_lr,) = client.search_runs([experiment_id],
                                  filter_string="tags.stage = 'evaluate' and params.`finetune.lr` = '0.0001'")
    assert by_lr.info.run_id == changed.info.run_id and default.data.params["finetune.lr"] == "1e-06"
    for run in (default, changed):  # the primary metric with its interval, on both
        metrics = run.data.metrics
        assert metrics["finetuned/shopper/headline/precision_at_10_low"] <= \
            metrics["finetuned/shopper/headline/precision_at_10"] <= metrics["finetuned/shopper/headline/precision_at_10_high"]
        assert run.data.tags["git_commit"] and run.data.tags["dvc_exp_name"]
    tags = {name: run.data.tags for name, run in (("default", default), ("changed", changed))}
    assert tags["default"]["model_digest.baseline"] == tags["changed"]["model_digest.baseline"]
    assert tags["default"]["model_digest.finetuned"] != tags["changed"]["model_digest.finetuned"]
    trained = client.get_run(tags["changed"]["source_run.baseline"])  # taken from DVC's cache: the default run's
    assert trained.data.tags["stage"] == "train_baseline" and trained.data.tags["dvc_exp_name"] == "workspace"
    finetuned = client.get_run(tags["changed"]["source_run.finetuned"])
    assert finetuned.data.tags["dvc_exp_name"] == "lr-1e-4" and finetuned.data.params["finetune.lr"] == "0.0001"
    lock = YAML(typ="safe").load((lr_experiment / "dvc.lock").read_text())["stages"]
    locked = {out["path"]: out["md5"] for stage in lock.values() for out in stage.get("outs", [])}
    for name, path in (("baseline", "models/baseline"), ("finetuned", "models/finetuned"), ("xattn", "models/xattn")):
        assert tags["changed"][f"dvc_lock.{name}"] == locked[path]  # the workspace holds the experiment's results
    assert tags["default"]["dvc_lock.finetuned"] != tags["changed"]["dvc_lock.finetuned"]

    parent = client.get_run(changed.data.tags["mlflow.parentRunId"])
    assert parent.data.tags["stage"] == "pipeline" and parent.info.run_name == "lr-1e-4"
    assert parent.data.params["finetune.lr"] == "0.0001"
    assert parent.data.tags["source_run.baseline"] == trained.info.run_id
    assert parent.data.metrics["finetuned/shopper/headline/precision_at_10"] == \
        changed.data.metrics["finetuned/shopper/headline/precision_at_10"]
    children = client.search_runs([experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert {run.data.tags["stage"] for run in children} == {"finetune", "train_xattn", "evaluate"}  # baseline: cached
    assert {run.data.tags["pipeline"] for run in children} == {parent.data.tags["pipeline"]}


def test_the_mlflow_compare_view_of_the_two_evaluate_runs_opens_in_chromium(lr_experiment: Path,
                                                                           tmp_path: Path) -> None:
    """Smoke test of the README's comparison: `mlflow server` on 127.0.0.1, its compare view of the default and
    the lr-1e-4 evaluate runs in Chromium, a screenshot saved."""
    import http.client
    import socket
    import time

    from mlflow.tracking import MlflowClient
    from playwright.sync_api import expect, sync_playwright
    from test_browser import CHROMIUM, CHROMIUM_ARGS

    if CHROMIUM is None and not os.environ.get("CI"):
        pytest.skip("no Chromium on PATH (apt-get install chromium); CI installs it and runs this test")
    assert CHROMIUM is not None, "CI must have Chromium: .ci/run installs it with apt-get install chromium"
    client = MlflowClient(tracking_uri=f"sqlite:///{lr_experiment / 'mlflow.db'}")
    experiment_id = client.get_experiment_by_name("fashion-search").experiment_id
    runs = [_evaluate_runs(client, experiment_id, name)[0].info.run_id for name in ("workspace", "lr-1e-4")]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1",
                               "--port", str(port), "--workers", "1",
                               "--backend-store-uri", f"sqlite:///{lr_experiment / 'mlflow.db'}"],
                              cwd=lr_experiment, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(240):  # the server is up when /health answers (start-up is not what this test measures)
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                connection.request("GET", "/health")
                if connection.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("mlflow server did not start")
        url = (f"http://127.0.0.1:{port}/#/compare-runs?runs={json.dumps(runs, separators=(',', ':'))}"
               f"&experiments={json.dumps([experiment_id])}")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(url)
                expect(page.get_by_text("finetune.lr").first).to_be_visible(timeout=60_000)
                expect(page.get_by_text("0.0001").first).to_be_visible()
                shot = tmp_path / "mlflow_compare.png"
                page.screenshot(path=str(shot), full_page=True)
            finally:
                browser.close()
        assert shot.stat().st_size > 10_000
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_killed_stage_leaves_the_previous_output_or_none_and_repro_recovers(project: Path) -> None:
    """SIGKILL train_xattn at several moments: models/xattn is always the old complete model or absent."""
    from fashion_search.models.xattn import load_xattn

    cmd = [sys.executable, "stages/train_xattn.py", "--finetuned", "models/finetuned",
           "--train", "data/processed/train.parquet", "--cache", "data/cache/images",
           "--out", "models/xattn", "--metrics", "metrics/train_xattn.json", "--state", "checkpoints/train_xattn"]
    before = (project / "models/xattn/scorer.safetensors").read_bytes()
    for delay in (1.0, 4.0, 8.0, 12.0):
        process = subprocess.Popen(cmd, cwd=project, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        out = project / "models/xattn"
        if out.exists():
            load_xattn(out)  # complete, whichever version it is
            json.loads((project / "metrics/train_xattn.json").read_text())
    assert (project / "models/xattn/scorer.safetensors").read_bytes() == before  # same seed, same model
    _run(project, sys.executable, "-m", "dvc", "repro")
    assert "up to date" in _run(project, sys.executable, "-m", "dvc", "status")


def test_queued_experiments_run_two_at_a_time_all_reach_mlflow(project: Path) -> None:
    """Four experiments through `dvc queue start -j 2`: every one ends with its runs in the one SQLite store."""
    import time

    names = [f"q-lr-{i}" for i in range(4)]
    for i, name in enumerate(names):
        _run(project, sys.executable, "-m", "dvc", "exp", "run", "--queue", "-n", name,
             "-S", f"finetune.lr={2 + i}e-5")
    # The workers are daemons that inherit the starting command's stdout and stderr: captured, a worker that
    # outlives its queue (celery's "shutting down due to empty queue" while a task still runs leaves one
    # idle) would hold the pipes open and block this call forever. Their output goes to their own logs.
    started = subprocess.run([sys.executable, "-m", "dvc", "queue", "start", "-j", "2"], cwd=project, env=_env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    assert started.returncode == 0
    deadline = time.monotonic() + 1200
    try:
        while time.monotonic() < deadline:
            status = _run(project, sys.executable, "-m", "dvc", "queue", "status")
            if "Queued" not in status and "Running" not in status:
                break
            time.sleep(10)
    finally:
        subprocess.run([sys.executable, "-m", "dvc", "queue", "stop", "--kill"], cwd=project, env=_env(),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    assert "Failed" not in status, status
    shown = _run(project, sys.executable, "-m", "dvc", "exp", "show", "--json")
    assert all(name in shown for name in names)
    runs = _mlflow_runs(project)
    for name in names:
        stages = {r.data.tags["stage"] for r in runs if r.data.tags.get("dvc_exp_name") == name}
        assert {"finetune", "train_xattn", "evaluate"} <= stages, (name, stages)
    # the README's sweep: one row per learning rate, from the experiments, a CSV dvc plots reads, a README table
    shown = _run(project, str(Path(sys.executable).parent / "fashion-search"), "sweep", "finetune.lr")
    rows = (project / "reports/sweeps/finetune_lr.csv").read_text().splitlines()
    lrs = {float(line.split(",")[0]) for line in rows[1:]}
    assert {2e-5, 3e-5, 4e-5, 5e-5} <= lrs, rows
    row = re.compile(r"\| 2e-05( \(chosen\))? \| q-lr-0 \|")  # the value chosen on validation is marked
    assert row.search((project / "README.md").read_text()) and row.search(shown)
    assert "Chosen on validation" in shown
    plots = _run(project, sys.executable, "-m", "dvc", "plots", "show", "--json")
    assert "Fine-tuned shopper P@10" in plots and "log10_finetune" in plots  # the sweep's plot is drawn
