"""The stage scripts as a user runs them: one line `error: ...` for a problem they can fix, before any work.

Each case runs a real script in `stages/` as a subprocess, from its own temporary
directory holding a copy of the repository's params.yaml with one change, and the
tests read its exit status, its stderr and the files it left behind. The happy path
runs download and tokenize on a handful of synthetic items; the bad-data case
corrupts a copy of that download and checks that every problem is counted in
metrics/data.json, not crashed on.

Every subprocess pays seconds of imports (torch, transformers), so the independent
runs are started together by module-scoped fixtures and the tests only inspect them.
Even so the file takes over a minute on two CPUs, hence the slow mark.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from bad_images import decompression_bomb_png
from PIL import Image
from ruamel.yaml import YAML

from conftest import write_params
from fashion_search.data.pairs import PAIR_COLUMNS

REPO = Path(__file__).resolve().parents[1]
IMAGE_NAME = re.compile(r"^(MEN|WOMEN)-[A-Za-z_]+-id_\d{8}-\d{2}_\d+_[a-z]+\.jpg$")
BAD_COUNTS = ["images_without_caption", "captions_without_image", "unreadable_images", "empty_captions",
              "non_text_captions", "duplicate_caption_keys", "malformed_label_lines",
              "images_in_some_label_files_only", "label_rows_for_unknown_images"]
SMALL_DATA = {("data", "n_items"): 6, ("data", "image_width"): 64, ("data", "image_height"): 96,
              ("model", "tiny", "vocab_size"): 300}
TOKENIZE_ARGS = ("--raw", "data/raw", "--out", "data/interim/captions.parquet", "--tokenizer-out", "models/tokenizer",
                 "--metrics", "metrics/tokenize.json", "--data-metrics", "metrics/data.json")
FINETUNE_ARGS = ("--baseline", "models/baseline", "--train", "data/processed/train.parquet",
                 "--cache", "data/cache/images", "--out", "models/finetuned", "--metrics", "metrics/finetune.json",
                 "--state", "checkpoints/finetune")
SPLIT_ARGS = ("--pairs", "data/interim/captions.parquet", "--train", "data/processed/train.parquet",
              "--val", "data/processed/val.parquet", "--test", "data/processed/test.parquet",
              "--metrics", "metrics/split.json")
pytestmark = pytest.mark.slow


# ---------------------------------------------------------------- running stages


def stage_script(stage: str) -> str:
    """The script path in the stage's dvc.yaml command (`python stages/<script>.py ...`)."""
    with (REPO / "dvc.yaml").open(encoding="utf-8") as stream:
        return YAML(typ="safe").load(stream)["stages"][stage]["cmd"].split()[1]


def run_stage(directory: Path, stage: str, args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """The stage's script (as dvc.yaml runs it) with `args`, from `directory`, which holds the params.yaml it reads."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    env["HF_HUB_OFFLINE"] = "1"
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{directory / 'mlflow.db'}"
    command = [sys.executable, str(REPO / stage_script(stage)), *args]
    return subprocess.run(command, cwd=directory, env=env, capture_output=True, text=True, timeout=300)


@dataclass(frozen=True)
class Case:
    """One stage run: what its directory holds beforehand, and the stage's arguments."""

    stage: str
    args: tuple[str, ...]
    params: dict[tuple[str, ...], Any] = field(default_factory=dict)
    prepare: Callable[[Path], None] | None = None


@dataclass(frozen=True)
class Ran:
    directory: Path
    result: subprocess.CompletedProcess[str]
    files_before: set[str]

    def files_after(self) -> set[str]:
        return files_under(self.directory)


def run_together(directories: dict[str, Path], cases: dict[str, Case]) -> dict[str, Ran]:
    """Prepare each case in its directory, then run them all, as many at a time as there are CPUs."""
    before = {}
    for name, case in cases.items():
        write_params(directories[name], case.params)
        if case.prepare is not None:
            case.prepare(directories[name])
        before[name] = files_under(directories[name])
    workers = min(len(cases), max(2, os.cpu_count() or 2))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {name: pool.submit(run_stage, directories[name], case.stage, case.args)
                   for name, case in cases.items()}
    return {name: Ran(directories[name], futures[name].result(), before[name]) for name in cases}


def assert_user_error(result: subprocess.CompletedProcess[str], *mentions: str) -> str:
    """Exit status 1 and one `error: ...` line on stderr naming every mention, with no traceback."""
    stderr = result.stderr
    assert result.returncode == 1, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{stderr}"
    assert "Traceback" not in stderr, stderr
    error_lines = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(error_lines) == 1, stderr
    message = error_lines[0]
    for mention in mentions:
        assert mention in message, f"{mention!r} not in {message!r}"
    return message


def assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


def files_under(directory: Path) -> set[str]:
    return {p.relative_to(directory).as_posix() for p in directory.rglob("*")}


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def small_pairs(relative: str) -> Callable[[Path], None]:
    """Write a pairs Parquet that read_pairs accepts (every column, a few rows) at `relative`."""
    def prepare(directory: Path) -> None:
        rows = [{"image": f"WOMEN-Dresses-id_0000000{i}-01_1_front.jpg", "item_id": f"WOMEN-Dresses-id_0000000{i}",
                 "caption": f"a red dress number {i}", "input_ids": [2, 10 + i, 3], "n_tokens": 3,
                 "truncated": False, "segments": [[2, 10 + i, 3]]} for i in range(1, 5)]
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows, columns=PAIR_COLUMNS).to_parquet(path, index=False)
    return prepare


# ---------------------------------------------------------------- the cases a user meets


ERROR_CASES = {
    # Invalid params: caught before any input is read. Where the inputs exist, no output may appear.
    "test_size_above_one": Case("split", SPLIT_ARGS, {("split", "test_size"): 1.5},
                                small_pairs("data/interim/captions.parquet")),
    "negative_lr": Case("finetune", FINETUNE_ARGS, {("finetune", "lr"): -0.001}),  # inputs absent
    "unknown_source": Case("download", ("--out", "data/raw"), {("data", "source"): "ftp"}),
    "misspelt_key": Case("finetune", FINETUNE_ARGS, {("finetune", "lrr"): 1e-4}),
    # Missing inputs: the message names the stage that writes them.
    "split_without_pairs": Case("split", SPLIT_ARGS),
    # finetune reads the train pairs before the baseline, so they exist here for the baseline check to be reached.
    "finetune_without_baseline": Case("finetune", FINETUNE_ARGS,
                                      prepare=small_pairs("data/processed/train.parquet")),
    # An unknown model offline: checked before the (absent) raw data is paired.
    "unknown_model": Case("tokenize", TOKENIZE_ARGS, {("model", "name"): "no-such-org/no-such-clip"}),
    # Mistakes a user makes: NaN, YAML syntax errors, broken captions.json.
    "nan_lr": Case("finetune", FINETUNE_ARGS, {("finetune", "lr"): float("nan")}),  # written as `.nan`
    "params_not_yaml": Case("split", SPLIT_ARGS, prepare=lambda d: (d / "params.yaml").write_text(
        "seed: 42\nsplit:\n  test_size: [0.2\n  group_by: item\n", encoding="utf-8")),
    # Once tracebacks from numpy, scikit-learn or torchrun (fixed): refused naming the key.
    "negative_seed": Case("split", SPLIT_ARGS, {("seed",): -1}, small_pairs("data/interim/captions.parquet")),
    "test_size_one": Case("split", SPLIT_ARGS, {("split", "test_size"): 1.0},
                          small_pairs("data/interim/captions.parquet")),
    "uneven_processes": Case("finetune", FINETUNE_ARGS, {("runtime", "processes"): 3},
                             small_pairs("data/processed/train.parquet")),
    # A key misspelt in the last stage's section, reported by the first stage.
    "serve_key_read_by_download": Case("download", ("--out", "data/raw"), {("serve", "colour"): "blue"}),
}


@pytest.fixture(scope="module")
def error_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Ran]:
    return run_together({name: tmp_path_factory.mktemp(name) for name in ERROR_CASES}, ERROR_CASES)


def test_split_rejects_test_size_above_one_before_any_work(error_runs: dict[str, Ran]) -> None:
    ran = error_runs["test_size_above_one"]
    assert_user_error(ran.result, "split.test_size", "1.5")
    assert ran.files_after() == ran.files_before  # no outputs, not even their folders


def test_finetune_rejects_negative_lr_before_touching_inputs(error_runs: dict[str, Ran]) -> None:
    ran = error_runs["negative_lr"]
    message = assert_user_error(ran.result, "finetune.lr")
    assert "does not exist" not in message  # the lr, not the missing inputs
    assert ran.files_after() == {"params.yaml"}  # no MLflow store, no outputs


def test_download_rejects_unknown_source_and_lists_the_choices(error_runs: dict[str, Ran]) -> None:
    ran = error_runs["unknown_source"]
    assert_user_error(ran.result, "data.source", "ftp", "synthetic", "local")
    assert ran.files_after() == {"params.yaml"}


def test_finetune_rejects_a_misspelt_key(error_runs: dict[str, Ran]) -> None:
    ran = error_runs["misspelt_key"]
    message = assert_user_error(ran.result, "finetune.lrr")
    assert "does not exist" not in message


def test_split_rejects_a_negative_seed_and_a_test_size_of_one_naming_the_key(error_runs: dict[str, Ran]) -> None:
    for case, key in (("negative_seed", "seed"), ("test_size_one", "split.test_size")):
        ran = error_runs[case]
        assert_user_error(ran.result, f"params.yaml: {key} is")
        assert ran.files_after() == ran.files_before


def test_finetune_refuses_processes_that_do_not_divide_the_batch_before_torchrun(error_runs: dict[str, Ran]) -> None:
    ran = error_runs["uneven_processes"]
    message = assert_user_error(ran.result, "finetune.batch_size=32", "runtime.processes=3")
    assert "torch.distributed" not in ran.result.stderr and "does not exist" not in message


def test_a_misspelt_serve_key_is_reported_by_the_first_stage(error_runs: dict[str, Ran]) -> None:
    ran = error_runs["serve_key_read_by_download"]
    assert_user_error(ran.result, "serve.colour")
    assert ran.files_after() == {"params.yaml"}


def test_split_without_pairs_names_the_tokenize_stage(error_runs: dict[str, Ran]) -> None:
    ran = error_runs["split_without_pairs"]
    assert_user_error(ran.result, "data/interim/captions.parquet", "'tokenize'", "dvc repro tokenize")
    assert ran.files_after() == {"params.yaml"}


def test_finetune_without_baseline_names_the_train_baseline_stage(error_runs: dict[str, Ran]) -> None:
    ran = error_runs["finetune_without_baseline"]
    assert_user_error(ran.result, "models/baseline", "'train_baseline'")
    assert ran.files_after() == ran.files_before


def test_tokenize_with_unknown_model_offline_fails_before_reading_data(error_runs: dict[str, Ran]) -> None:
    ran = error_runs["unknown_model"]
    message = assert_user_error(ran.result, "model.name", "no-such-org/no-such-clip", "tiny", "local directory")
    assert "does not exist" not in message  # the model check comes before the data is paired
    assert ran.files_after() == {"params.yaml"}


def test_finetune_rejects_nan_lr(error_runs: dict[str, Ran]) -> None:
    ran = error_runs["nan_lr"]
    assert_user_error(ran.result, "finetune.lr")


def test_params_yaml_syntax_error_is_one_line(error_runs: dict[str, Ran]) -> None:
    ran = error_runs["params_not_yaml"]
    assert_user_error(ran.result, "params.yaml")


# ---------------------------------------------------------------- the happy path, small, and bad data


@pytest.fixture(scope="module")
def downloaded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project directory after `download` with 6 synthetic items of 64x96 pixels; read-only for the tests."""
    project = tmp_path_factory.mktemp("downloaded")
    write_params(project, SMALL_DATA)
    assert_ok(run_stage(project, "download", ("--out", "data/raw")))
    return project


def test_download_writes_the_deepfashion_layout(downloaded: Path) -> None:
    raw = downloaded / "data" / "raw"
    images = sorted(p.name for p in (raw / "images").iterdir())
    assert len(images) >= 6 * 2  # 2 to 5 views per item
    assert [name for name in images if not IMAGE_NAME.match(name)] == []
    captions = read_json(raw / "captions.json")
    assert sorted(captions) == images
    assert all(isinstance(c, str) and c.strip() for c in captions.values())
    assert [p.name for p in (downloaded / "data").iterdir()] == ["raw"]  # no temporary left behind


TRUNCATED, UNCAPTIONED, EMPTIED, DUPLICATED = range(4)  # which of the sorted image names each corruption hits
ZERO_BYTE_IMAGE = "WOMEN-Dresses-id_99999999-01_1_front.jpg"
IMAGELESS_CAPTION = "MEN-Shirts-id_99999998-01_1_front.jpg"
SECOND_CAPTION = "the second caption of this image wins"
BOMB_IMAGE = "WOMEN-Dresses-id_99999997-01_1_front.png"  # 66 bytes declaring 50000×50000 pixels
WEBP_IMAGE = "WOMEN-Skirts-id_99999996-01_1_front.webp"
NUMBER_CAPTIONED = "MEN-Pants-id_99999995-01_1_front.jpg"  # its caption is a number: counted once, not twice


def corrupt(directory: Path) -> None:
    """One of each kind of bad data that metrics/data.json counts."""
    raw = directory / "data" / "raw"
    captions: dict[str, str] = read_json(raw / "captions.json")
    names = sorted(captions)
    image = raw / "images" / names[TRUNCATED]
    image.write_bytes(image.read_bytes()[:100])  # unreadable; it keeps its caption
    (raw / "images" / ZERO_BYTE_IMAGE).write_bytes(b"")  # unreadable; captioned, or it would count as uncaptioned
    captions[ZERO_BYTE_IMAGE] = "a zero byte picture of a dress"
    captions[IMAGELESS_CAPTION] = "a shirt whose picture is missing"
    (raw / "images" / BOMB_IMAGE).write_bytes(decompression_bomb_png())  # unreadable, not a crash
    captions[BOMB_IMAGE] = "a dress in a picture too large to decode"
    with Image.open(raw / "images" / names[DUPLICATED]) as picture:  # a readable image, paired
        picture.save(raw / "images" / WEBP_IMAGE, format="WEBP")
    captions[WEBP_IMAGE] = "a skirt saved as webp"
    shutil.copy(raw / "images" / names[DUPLICATED], raw / "images" / NUMBER_CAPTIONED)
    captions[NUMBER_CAPTIONED] = 42  # type: ignore[assignment]
    del captions[names[UNCAPTIONED]]
    captions[names[EMPTIED]] = ""
    # A duplicate key can only be written by hand; the last value is the one kept.
    entries = [*captions.items(), (names[DUPLICATED], SECOND_CAPTION)]
    body = ",\n".join(f"  {json.dumps(key)}: {json.dumps(value)}" for key, value in entries)
    (raw / "captions.json").write_text("{\n" + body + "\n}\n", encoding="utf-8")
    # Labels: a row for an image that does not exist (in all three files), one malformed line,
    # and one image dropped from the fabric file only.
    for relative, codes in (("shape/shape_anno_all.txt", "0 " * 12), ("texture/fabric_ann.txt", "1 1 7 "),
                            ("texture/pattern_ann.txt", "3 3 7 ")):
        with (raw / "labels" / relative).open("a", encoding="utf-8") as stream:
            stream.write(f"MEN-Denim-id_99999999-01_1_front.jpg {codes.strip()}\n")
    with (raw / "labels/shape/shape_anno_all.txt").open("a", encoding="utf-8") as stream:
        stream.write("WOMEN-Dresses-id_99999998-01_1_front.jpg 1 2 x\n")
    fabric = raw / "labels/texture/fabric_ann.txt"
    fabric.write_text("".join(fabric.read_text(encoding="utf-8").splitlines(keepends=True)[1:]), encoding="utf-8")


def captions_as_list(directory: Path) -> None:
    path = directory / "data" / "raw" / "captions.json"
    path.write_text(json.dumps(sorted(read_json(path).values())), encoding="utf-8")


def captions_not_json(directory: Path) -> None:
    path = directory / "data" / "raw" / "captions.json"
    path.write_text(path.read_text(encoding="utf-8")[:-1] + ',"cut off', encoding="utf-8")


TOKENIZE_CASES = {
    "clean": Case("tokenize", TOKENIZE_ARGS, SMALL_DATA),
    "corrupt": Case("tokenize", TOKENIZE_ARGS, SMALL_DATA, corrupt),
    "captions_not_an_object": Case("tokenize", TOKENIZE_ARGS, SMALL_DATA, captions_as_list),
    "captions_not_json": Case("tokenize", TOKENIZE_ARGS, SMALL_DATA, captions_not_json),
}


@pytest.fixture(scope="module")
def tokenize_runs(downloaded: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Ran]:
    """tokenize on copies of the download: as it is, corrupted, and with captions.json a list."""
    directories = {}
    for name in TOKENIZE_CASES:
        directories[name] = tmp_path_factory.mktemp(name)
        shutil.copytree(downloaded / "data" / "raw", directories[name] / "data" / "raw")
    return run_together(directories, TOKENIZE_CASES)


def test_tokenize_pairs_every_image_and_truncates_to_77(tokenize_runs: dict[str, Ran]) -> None:
    ran = tokenize_runs["clean"]
    assert_ok(ran.result)
    project = ran.directory
    n_images = len(list((project / "data" / "raw" / "images").glob("*.jpg")))
    counts = read_json(project / "metrics" / "data.json")
    assert counts["pairs"] == counts["images"] == counts["captions"] == n_images
    assert {key: counts[key] for key in BAD_COUNTS} == dict.fromkeys(BAD_COUNTS, 0)

    summary = read_json(project / "metrics" / "tokenize.json")
    assert 0.0 <= summary["share_truncated"] <= 1.0
    assert summary["pairs"] == n_images
    assert summary["max_tokens"] == 77

    pairs = pd.read_parquet(project / "data" / "interim" / "captions.parquet")
    assert list(pairs.columns) == PAIR_COLUMNS
    assert len(pairs) == n_images
    assert pairs["image"].tolist() == sorted(pairs["image"])
    assert all(image.startswith(f"{item}-") for image, item in zip(pairs["image"], pairs["item_id"]))
    lengths = pairs["input_ids"].map(len)
    assert (lengths <= 77).all()
    assert (lengths == pairs["n_tokens"].clip(upper=77)).all()
    assert (pairs["truncated"] == (pairs["n_tokens"] > 77)).all()
    assert (project / "models" / "tokenizer").is_dir()


def test_tokenize_counts_bad_data_and_pairs_only_the_good(tokenize_runs: dict[str, Ran]) -> None:
    ran = tokenize_runs["corrupt"]
    assert_ok(ran.result)
    project = ran.directory
    added = {ZERO_BYTE_IMAGE, BOMB_IMAGE, NUMBER_CAPTIONED}
    names = sorted(p.name for p in (project / "data" / "raw" / "images").iterdir() if p.name not in added)
    n = len(names)  # the synthetic images and the webp one
    counts = read_json(project / "metrics" / "data.json")
    sharing = {key: counts.pop(key) for key in ("unique_captions", "images_per_caption")}
    assert counts == {
        "images": n + 3,  # the zero-byte file, the bomb, the number-captioned one; the webp is in n
        "captions": n + 3,  # one removed; the zero-byte, bomb, number and imageless added; a duplicate once
        "pairs": n - 3,  # not the truncated, the uncaptioned or the emptied one
        "unreadable_images": 3,  # the truncated, the zero-byte one and the decompression bomb
        "images_without_caption": 1,  # the uncaptioned one; the emptied and the number are counted as such
        "captions_without_image": 1,
        "empty_captions": 1,
        "non_text_captions": 1,
        "duplicate_caption_keys": 1,
        "malformed_label_lines": 1,
        "images_in_some_label_files_only": 1,  # the image whose fabric line was removed
        "label_rows_for_unknown_images": 1,
    }
    pairs = pd.read_parquet(project / "data" / "interim" / "captions.parquet")
    assert len(pairs) == counts["pairs"]
    assert sharing["unique_captions"] == pairs["caption"].nunique()  # of the pairs, not of the bad data
    assert sum(int(n) * texts for n, texts in sharing["images_per_caption"].items()) == counts["pairs"]
    assert set(pairs["image"]) == set(names) - {names[TRUNCATED], names[UNCAPTIONED], names[EMPTIED]}
    assert WEBP_IMAGE in set(pairs["image"])
    assert (pairs["caption"].str.strip() != "").all()
    assert pairs.loc[pairs["image"] == names[DUPLICATED], "caption"].tolist() == [SECOND_CAPTION]
    assert read_json(project / "metrics" / "tokenize.json")["pairs"] == counts["pairs"]


def test_tokenize_rejects_captions_that_are_not_an_object(tokenize_runs: dict[str, Ran]) -> None:
    ran = tokenize_runs["captions_not_an_object"]
    assert_user_error(ran.result, "captions.json", "JSON object")
    assert ran.files_after() == ran.files_before


def test_tokenize_names_captions_json_that_is_not_json(tokenize_runs: dict[str, Ran]) -> None:
    ran = tokenize_runs["captions_not_json"]
    assert_user_error(ran.result, "captions.json")
    assert ran.files_after() == ran.files_before
