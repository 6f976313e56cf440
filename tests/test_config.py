"""params.yaml validation: the real file passes, and each kind of mistake fails naming its key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fashion_search import config
from fashion_search.config import SECTIONS, ConfigError, flatten, load_params, section, seed

BASE = Path(__file__).parents[1] / "params.yaml"


def base_text() -> str:
    return BASE.read_text(encoding="utf-8")


def set_value(text: str, dotted: str, value: str) -> str:
    """Replace the value of section.key (first occurrence inside that section) in the YAML text."""
    section_name, key = dotted.split(".")
    lines = text.splitlines()
    start = lines.index(next(line for line in lines if re.match(rf"^{section_name}:", line)))
    for i in range(start + 1, len(lines)):
        if re.match(r"^\S", lines[i]):
            break
        match = re.match(rf"^(\s+{key}:)\s*[^#]*(#.*)?$", lines[i])
        if match:
            lines[i] = f"{match.group(1)} {value}"
            return "\n".join(lines) + "\n"
    raise AssertionError(f"{dotted} not in the params text")  # a broken test, not a library failure


def delete_key(text: str, dotted: str) -> str:
    marker = set_value(text, dotted, "__DELETE_ME__")
    return "\n".join(line for line in marker.splitlines() if "__DELETE_ME__" not in line) + "\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_real_params_validate() -> None:
    params = load_params(BASE)
    for name, cls in SECTIONS.items():
        assert isinstance(section(params, name), cls)
    assert seed(params) == 42
    assert section(params, "finetune").lr == pytest.approx(1e-6)
    assert section(params, "model").tiny.embed_dim == 128
    assert section(params, "evaluate").ks == [1, 5, 10]


def test_helper_edits_only_the_named_section(tmp_path: Path) -> None:
    params = load_params(write(tmp_path, set_value(base_text(), "finetune.lr", "0.5")))
    assert section(params, "finetune").lr == 0.5
    assert section(params, "xattn").lr == pytest.approx(1e-6)
    assert section(params, "train_baseline").lr == pytest.approx(5e-4)


def test_exponent_without_a_dot_is_a_float(tmp_path: Path) -> None:
    # What `dvc exp run -S finetune.lr=1e-4` writes; a YAML 1.1 loader would return the string '1e-04'.
    text = set_value(base_text(), "finetune.lr", "1e-04")
    assert re.search(r"^\s+lr: 1e-04$", text, re.M)
    params = load_params(write(tmp_path, text))
    assert isinstance(params["finetune"]["lr"], float)
    lr = section(params, "finetune").lr
    assert isinstance(lr, float) and lr == pytest.approx(1e-4)


def test_a_number_in_quotes_is_coerced(tmp_path: Path) -> None:
    params = load_params(write(tmp_path, set_value(base_text(), "finetune.lr", '"1e-04"')))
    assert params["finetune"]["lr"] == "1e-04"
    lr = section(params, "finetune").lr
    assert isinstance(lr, float) and lr == pytest.approx(1e-4)
    params = load_params(write(tmp_path, set_value(base_text(), "finetune.epochs", '"3"')))
    assert section(params, "finetune").epochs == 3


def test_a_word_where_a_number_belongs(tmp_path: Path) -> None:
    params = load_params(write(tmp_path, set_value(base_text(), "finetune.lr", "fast")))
    with pytest.raises(ConfigError, match=r"finetune\.lr"):
        section(params, "finetune")


@pytest.mark.parametrize("value", ["1.5", "0", "-0.2"])
def test_test_size_out_of_range(tmp_path: Path, value: str) -> None:
    params = load_params(write(tmp_path, set_value(base_text(), "split.test_size", value)))
    with pytest.raises(ConfigError, match=r"split\.test_size"):
        section(params, "split")


def test_test_size_of_one_is_refused_naming_the_key(tmp_path: Path) -> None:
    """All pairs in the test split leave nothing to train on (scikit-learn refuses it without the key)."""
    params = load_params(write(tmp_path, set_value(base_text(), "split.test_size", "1.0")))
    with pytest.raises(ConfigError, match=r"split\.test_size is 1\.0; it must be < 1\.0"):
        section(params, "split")
    params = load_params(write(tmp_path, set_value(base_text(), "split.test_size", "0.85")))
    assert section(params, "split").test_size == 0.85
    params = load_params(write(tmp_path, set_value(base_text(), "split.test_size", "0.95")))
    with pytest.raises(ConfigError, match=r"split\.test_size \(0\.95\) \+ split\.val_size \(0\.1\) must be < 1"):
        section(params, "split")


@pytest.mark.parametrize("value", ["-1", "4294967296"])
def test_a_seed_outside_numpys_range_is_refused_naming_the_key(tmp_path: Path, value: str) -> None:
    params = load_params(write(tmp_path, base_text().replace("seed: 42", f"seed: {value}", 1)))
    with pytest.raises(ConfigError, match=r"params\.yaml: seed is"):
        seed(params)
    params = load_params(write(tmp_path, base_text().replace("seed: 42", "seed: 0", 1)))
    assert seed(params) == 0


def test_negative_learning_rate(tmp_path: Path) -> None:
    params = load_params(write(tmp_path, set_value(base_text(), "finetune.lr", "-1")))
    with pytest.raises(ConfigError, match=r"finetune\.lr"):
        section(params, "finetune")


def test_value_not_among_the_choices(tmp_path: Path) -> None:
    params = load_params(write(tmp_path, set_value(base_text(), "data.source", "ftp")))
    with pytest.raises(ConfigError, match=r"data\.source") as error:
        section(params, "data")
    assert "synthetic" in str(error.value) and "local" in str(error.value)
    assert "ftp" in str(error.value)


def test_an_unknown_augmentation_is_refused_naming_the_key_and_the_choices(tmp_path: Path) -> None:
    params = load_params(write(tmp_path, set_value(base_text(), "train_baseline.augment", "colour_jitter")))
    with pytest.raises(ConfigError, match=r"train_baseline\.augment") as error:
        section(params, "train_baseline")
    assert "flip_crop" in str(error.value) and "colour_jitter" in str(error.value)


def test_typo_in_a_key(tmp_path: Path) -> None:
    text = base_text().replace("  lr: 1.0e-6\n  batch_size: 32\n  temperature: 0.1\n  weight_decay: 0.01\n"
                               "  warmup_steps: 0", "  lrr: 1.0e-6\n  batch_size: 32\n  temperature: 0.1\n"
                               "  weight_decay: 0.01\n  warmup_steps: 0", 1)
    assert "lrr:" in text
    with pytest.raises(ConfigError, match=r"finetune\.lrr"):
        load_params(write(tmp_path, text))


@pytest.mark.parametrize(("after", "key"), [("serve:", "serve.colour"), ("image:", "image.fit_mode"),
                                            ("  tiny:", "model.tiny.colour")])
def test_an_unknown_key_in_any_section_is_reported_when_params_are_read(tmp_path: Path, after: str, key: str) -> None:
    """By the first stage (download reads only data and seed), not only by the stage that reads the section."""
    lines = base_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith(after))
    indent = " " * (len(after) - len(after.lstrip()) + 2)
    lines.insert(at + 1, f"{indent}{key.rsplit('.', 1)[1]}: blue")
    with pytest.raises(ConfigError, match=re.escape(key)):
        load_params(write(tmp_path, "\n".join(lines) + "\n"))


def test_unknown_top_level_section(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="trainn"):
        load_params(write(tmp_path, base_text() + "\ntrainn:\n  epochs: 3\n"))


def test_missing_key(tmp_path: Path) -> None:
    params = load_params(write(tmp_path, delete_key(base_text(), "finetune.warmup_steps")))
    assert "warmup_steps" not in params["finetune"]
    with pytest.raises(ConfigError, match=r"finetune\.warmup_steps"):
        section(params, "finetune")


def test_missing_section_and_missing_seed() -> None:
    params = load_params(BASE)
    del params["xattn"], params["seed"]
    with pytest.raises(ConfigError, match="xattn"):
        section(params, "xattn")
    with pytest.raises(ConfigError, match="seed"):
        seed(params)


def test_a_bool_where_an_int_belongs(tmp_path: Path) -> None:
    params = load_params(write(tmp_path, set_value(base_text(), "finetune.epochs", "true")))
    assert params["finetune"]["epochs"] is True
    with pytest.raises(ConfigError, match=r"finetune\.epochs"):
        section(params, "finetune")


def test_a_switch_is_true_or_false(tmp_path: Path) -> None:
    assert section(load_params(BASE), "xattn").lock_image is False
    params = load_params(write(tmp_path, set_value(base_text(), "xattn.lock_image", "true")))
    assert section(params, "xattn").lock_image is True


@pytest.mark.parametrize("value", ['"true"', "yes", "1", "0", "0.0"])
def test_a_string_or_number_where_a_switch_belongs(tmp_path: Path, value: str) -> None:
    # The YAML 1.2 loader reads yes (YAML 1.1's true) as a string.
    params = load_params(write(tmp_path, set_value(base_text(), "xattn.lock_text", value)))
    with pytest.raises(ConfigError, match=r"xattn\.lock_text must be true or false"):
        section(params, "xattn")


def test_xattn_lr_of_zero_needs_both_towers_locked(tmp_path: Path) -> None:
    """lr 0 once froze both encoders; now freezing is the lock switches, and lr 0 alone is refused."""
    text = set_value(base_text(), "xattn.lr", "0")
    with pytest.raises(ConfigError, match=r"xattn\.lr is 0 with xattn\.lock_image, xattn\.lock_text false"):
        section(load_params(write(tmp_path, text)), "xattn")
    text = set_value(text, "xattn.lock_image", "true")
    with pytest.raises(ConfigError, match=r"xattn\.lr is 0 with xattn\.lock_text false"):
        section(load_params(write(tmp_path, text)), "xattn")
    settings = section(load_params(write(tmp_path, set_value(text, "xattn.lock_text", "true"))), "xattn")
    assert settings.lr == 0 and settings.lock_image and settings.lock_text


def test_integral_float_is_an_int_but_a_fraction_is_not(tmp_path: Path) -> None:
    params = load_params(write(tmp_path, set_value(base_text(), "finetune.epochs", "2.0")))
    epochs = section(params, "finetune").epochs
    assert epochs == 2 and isinstance(epochs, int)
    params = load_params(write(tmp_path, set_value(base_text(), "finetune.epochs", "2.5")))
    with pytest.raises(ConfigError, match=r"finetune\.epochs"):
        section(params, "finetune")


def test_nested_section_error_names_the_full_key() -> None:
    params = load_params(BASE)
    params["model"]["tiny"]["heads"] = 0
    with pytest.raises(ConfigError, match=r"model\.tiny\.heads"):
        section(params, "model")


def test_list_items_are_checked() -> None:
    params = load_params(BASE)
    params["evaluate"]["ks"] = [1, "five"]
    with pytest.raises(ConfigError, match=r"evaluate\.ks\[1\]"):
        section(params, "evaluate")
    params["evaluate"]["ks"] = []
    with pytest.raises(ConfigError, match=r"evaluate\.ks"):
        section(params, "evaluate")
    for ks, problem in (([0], r"evaluate\.ks\[0\] is 0"), ([1, -5], r"evaluate\.ks\[1\] is -5"),
                        ([1, 51], r"evaluate\.ks\[1\] is 51.*plot_max_k \(50\)"),
                        ([5, 1, 5], r"evaluate\.ks lists \[5\] more than once"),
                        ([1, 2.5], r"evaluate\.ks\[1\] must be an integer")):
        params["evaluate"]["ks"] = ks
        with pytest.raises(ConfigError, match=problem):
            section(params, "evaluate")
    params["evaluate"]["ks"] = [1, 50]
    assert section(params, "evaluate").ks == [1, 50]
    params["evaluate"]["ks"] = [1]
    for name, key in (("evaluate", "queries"), ("serve", "examples")):
        for bad in ("", "   ", "\u200b\u200b", "\x00", 7):
            params[name][key] = ["a red dress", bad]
            with pytest.raises(ConfigError, match=re.escape(f"{name}.{key}[1]")):
                section(params, name)
        params[name][key] = ["a red dress"]
        assert section(params, name)
        section(params, "evaluate")


def test_unknown_section_name_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nope"):
        section(load_params(BASE), "nope")
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "absent.yaml")


def test_config_error_is_a_value_error() -> None:
    assert issubclass(config.ConfigError, ValueError)


def test_flatten_gives_dotted_keys() -> None:
    flat = flatten({"seed": 42, "model": {"name": "tiny", "tiny": {"embed_dim": 128}}, "evaluate": {"ks": [1, 5]}})
    assert flat == {"seed": 42, "model.name": "tiny", "model.tiny.embed_dim": 128, "evaluate.ks": [1, 5]}


def test_flatten_the_real_params() -> None:
    flat = flatten(load_params(BASE))
    assert flat["finetune.lr"] == pytest.approx(1e-6)
    assert flat["retrieval.rerank_k"] == 20
    assert flat["model.tiny.vocab_size"] == 1000
    assert not any(isinstance(value, dict) for value in flat.values())


@pytest.mark.parametrize(("key", "default", "other", "wrong"), [("features", "pooled", "tokens", "patches"),
                                                                ("schedule", "cosine", "constant", "linear")])
def test_xattn_choices_are_validated_and_default_when_left_out(tmp_path: Path, key: str, default: str, other: str,
                                                               wrong: str) -> None:
    assert getattr(section(load_params(BASE), "xattn"), key) == default
    assert getattr(section(load_params(write(tmp_path, set_value(base_text(), f"xattn.{key}", other))), "xattn"),
                   key) == other
    with pytest.raises(ConfigError, match=rf"xattn\.{key}"):
        section(load_params(write(tmp_path, set_value(base_text(), f"xattn.{key}", wrong))), "xattn")
    # A params.yaml from before the key existed trains as it did then.
    assert getattr(section(load_params(write(tmp_path, delete_key(base_text(), f"xattn.{key}"))), "xattn"),
                   key) == default


def test_each_stage_declares_the_params_its_dvc_entry_lists() -> None:
    """One list of a stage's params (STAGE_PARAMS): dvc.yaml's `params` and the MLflow run's agree with it."""
    from ruamel.yaml import YAML

    dvc = YAML(typ="safe").load((BASE.parent / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    assert {stage: tuple(spec.get("params", ())) for stage, spec in dvc.items()} == config.STAGE_PARAMS
    params = load_params(BASE)
    for stage in config.STAGE_PARAMS:
        tracked = config.stage_params(params, stage)
        assert list(tracked) == list(config.STAGE_PARAMS[stage])
    assert config.stage_params(params, "evaluate")["retrieval"] == {"rerank_k": 20}


def test_a_key_that_moved_says_where_it_went(tmp_path: Path) -> None:
    """rerank_k is a retrieval setting now (changing it must not retrain xattn): an old params.yaml is told so."""
    old = base_text().replace("  negatives: 7", "  negatives: 7\n  rerank_k: 20", 1)
    with pytest.raises(ConfigError, match=r"xattn\.rerank_k is now retrieval\.rerank_k"):
        load_params(write(tmp_path, old))


def test_serve_model_is_best_or_one_of_the_pipelines_models_named_in_one_place() -> None:
    import dataclasses

    from fashion_search import models

    assert models.MODELS is config.MODELS  # the registry, defined where the settings can read it
    (field,) = [field for field in dataclasses.fields(config.ServeSettings) if field.name == "model"]
    assert field.metadata["choices"] == ("best", *models.MODELS)


def test_text_that_displays_nothing_is_not_visible_text() -> None:
    """Every code point alone, against Unicode's Default_Ignorable_Code_Point (the `regex` module's tables):
    those, white space, control characters, combining marks with nothing to sit on and the blank Braille
    cell show nothing; a letter with its mark shows."""
    import unicodedata

    import regex

    ignorable = regex.compile(r"\p{Default_Ignorable_Code_Point}")
    wrong = [f"U+{code:04X}" for code in range(0x110000) if 0xD800 > code or code > 0xDFFF
             if config.has_visible_text(char := chr(code)) == bool(
                 char.isspace() or char == "\u2800" or ignorable.match(char)
                 or unicodedata.category(char) in ("Cc", "Cf") or unicodedata.category(char).startswith("M"))]
    assert wrong == []
    assert config.has_visible_text("e\u0301") and config.has_visible_text("\u3164a\u3164")
    assert not config.has_visible_text("\u034f\u2800\u115f\u1160\u3164\uffa0\u0301\ufe0f\U000e0041")
