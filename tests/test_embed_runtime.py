"""Embedding's runtime: compiled towers embed like eager ones and keep the checkpoint format, the
runtime.compile param is checked, and the in-place pixel normalisation changes no number.

One compile of a one-layer CLIP is shared by the module (inductor on the CPU takes seconds per graph).
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest
import torch

from conftest import TINY_MODEL
from fashion_search.config import ConfigError, load_params, section
from fashion_search.device import pick_runtime
from fashion_search.embedding import embed_images, embed_texts
from fashion_search.images import PixelSpec
from fashion_search.models.clip import Checkpoint, build_tiny, load_checkpoint, tiny_processor
from fashion_search.text import build_tokenizer, encode

SMALLEST = dataclasses.replace(TINY_MODEL, image_size=16)
CAPTIONS = ["a red dress", "long-sleeved shirt with black and white boxes", "denim shorts",
            "a woman wearing a hat and a long striped skirt"]
MAX_TOKENS = 16
BATCH = 8  # above the inputs' count: one batch, one shape, one compile per tower


def eager_checkpoint() -> Checkpoint:
    tokenizer = build_tokenizer(CAPTIONS * 20, SMALLEST.vocab_size, MAX_TOKENS)
    return build_tiny(SMALLEST, tokenizer, MAX_TOKENS, seed=0)


def compiled_copy(checkpoint: Checkpoint) -> Checkpoint:
    """A copy, because compiling is in place."""
    compiled = dataclasses.replace(checkpoint, model=copy.deepcopy(checkpoint.model))
    pick_runtime("cpu", compile=True).compiled(compiled.model)
    return compiled


@pytest.fixture(scope="module")
def checkpoints() -> tuple[Checkpoint, Checkpoint]:
    eager = eager_checkpoint()
    return eager, compiled_copy(eager)


def test_compiled_embeddings_match_eager(checkpoints) -> None:
    eager, compiled = checkpoints
    pixels = torch.randint(0, 256, (5, 3, SMALLEST.image_size, SMALLEST.image_size), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    ids = encode(eager.tokenizer, CAPTIONS, MAX_TOKENS)[0]
    captions = [[ids[0]], [ids[1]], [ids[2], ids[3]]]  # the last one in two pieces, averaged
    on = pick_runtime("cpu", compile=True)
    torch.testing.assert_close(embed_images(compiled, pixels, BATCH, on), embed_images(eager, pixels, BATCH),
                               atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(embed_texts(compiled, captions, BATCH, on), embed_texts(eager, captions, BATCH),
                               atol=1e-5, rtol=1e-4)


def test_compiling_keeps_the_checkpoint_format(checkpoints, tmp_path: Path) -> None:
    eager, compiled = checkpoints
    assert list(compiled.model.state_dict()) == list(eager.model.state_dict())
    compiled.save(tmp_path / "compiled")
    reloaded = load_checkpoint(tmp_path / "compiled").model.state_dict()
    assert list(reloaded) == list(eager.model.state_dict())
    for name, tensor in eager.model.state_dict().items():
        torch.testing.assert_close(reloaded[name], tensor, atol=0, rtol=0)


def test_prepare_compiles_only_when_asked_and_only_once(checkpoints) -> None:
    eager, compiled = checkpoints
    assert pick_runtime("cpu").compiled(eager.model) is eager.model
    assert eager.model.vision_model._compiled_call_impl is None
    before = compiled.model.text_model._compiled_call_impl
    pick_runtime("cpu", compile=True).compiled(compiled.model)
    assert compiled.model.text_model._compiled_call_impl is before


def test_in_place_normalisation_gives_the_formula_exactly_and_leaves_its_input_alone() -> None:
    spec = PixelSpec.from_processor(tiny_processor(16))
    pixels = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    mean, std = torch.tensor(spec.mean).view(1, 3, 1, 1), torch.tensor(spec.std).view(1, 3, 1, 1)
    assert torch.equal(spec.normalise(pixels), (pixels.float() / 255.0 - mean) / std)
    as_float = pixels.float()
    spec.normalise(as_float)
    assert torch.equal(as_float, pixels.float())  # a float input is copied, not overwritten


def write_runtime(tmp_path: Path, compile_value: str) -> Path:
    text = Path(__file__).parents[1].joinpath("params.yaml").read_text(encoding="utf-8")
    marker = "\n  compile: false"
    assert marker in text, "params.yaml has no runtime.compile: false"
    path = tmp_path / "params.yaml"
    path.write_text(text.replace(marker, f"\n  compile: {compile_value}", 1), encoding="utf-8")
    return path


def test_runtime_compile_is_a_bool_param(tmp_path: Path) -> None:
    assert section(load_params(write_runtime(tmp_path, "false")), "runtime").compile is False
    assert section(load_params(write_runtime(tmp_path, "true")), "runtime").compile is True
    for wrong in ("yes-please", "1", "on"):
        with pytest.raises(ConfigError, match="runtime.compile"):
            section(load_params(write_runtime(tmp_path, wrong)), "runtime")
