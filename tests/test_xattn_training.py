"""Training the pair scorer: hard negatives come from other items, and training lowers the loss."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from conftest import TINY_MODEL
from fashion_search.config import XattnSettings
from fashion_search.device import pick_runtime
from fashion_search.device import CPU
from fashion_search.models.clip import Checkpoint, build_tiny, image_embeddings
from fashion_search.models.xattn import XattnModel, new_scorer
from fashion_search.text import build_tokenizer
from fashion_search.train import xattn as xattn_training
from fashion_search.train.features import LockedFeatures, locked_features
from fashion_search.train.loop import device_batch
from fashion_search.train.xattn import hard_negative_loss, hard_negatives, in_batch_loss, train_xattn


def test_hard_negatives_are_the_most_similar_candidates_of_other_items() -> None:
    image = torch.eye(4)
    text = torch.tensor([[1.0, 0.9, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.2], [0.0, 0.0, 0.1, 1.0]])
    groups = torch.tensor([0, 1, 2, 2])  # pairs 2 and 3 are views of one item
    images_for_text, texts_for_image = hard_negatives(image, text, groups, n=1)
    # text 0 resembles image 1 most after its own; texts 2 and 3 may not pick each other's image
    assert images_for_text[0].tolist() == [1]
    assert images_for_text[2].item() not in (2, 3) and images_for_text[3].item() not in (2, 3)
    assert texts_for_image[1].tolist() == [0]


def test_hard_negative_training_lowers_the_loss() -> None:
    torch.manual_seed(0)
    scorer = new_scorer(dim=16, layers=1, heads=4, dropout=0.0, seed=0)
    image = torch.randn(12, 16)
    text = image + 0.8 * torch.randn(12, 16)
    groups = torch.arange(12)
    optimizer = torch.optim.AdamW(scorer.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = hard_negative_loss(scorer, image, text, groups, negatives=3, temperature=0.1)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_in_batch_loss_matches_symmetric_cross_entropy_of_the_score_matrix() -> None:
    scorer = new_scorer(dim=16, layers=1, heads=4, dropout=0.0, seed=0).eval()
    image, text = torch.randn(5, 16), torch.randn(5, 16)
    scores = scorer.score_matrix(image, text) / 0.1
    targets = torch.arange(5)
    expected = (torch.nn.functional.cross_entropy(scores, targets)
                + torch.nn.functional.cross_entropy(scores.T, targets)) / 2
    assert in_batch_loss(scorer, image, text, 0.1).item() == pytest.approx(expected.item(), rel=1e-6)


def test_the_cpu_runtime_is_full_precision_and_cuda_is_refused_without_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """Asserts on every machine: a GPU machine is made to look like one without a GPU."""
    for runtime in (pick_runtime("cpu", "auto"), pick_runtime("cpu", "bf16"), CPU):
        assert runtime.device.type == "cpu" and runtime.dtype is None and not runtime.needs_scaler
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    runtime = pick_runtime("auto", "auto")
    assert runtime.device.type == "cpu" and runtime.dtype is None and not runtime.needs_scaler
    with pytest.raises(ValueError, match="runtime.device"):
        pick_runtime("cuda", "auto")


def test_auto_on_a_gpu_is_cuda_with_mixed_precision() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device: on the CPU `auto` is full precision, checked above")
    runtime = pick_runtime("auto", "auto")
    assert runtime.device.type == "cuda" and runtime.dtype in (torch.bfloat16, torch.float16)
    assert runtime.needs_scaler == (runtime.dtype is torch.float16)
    assert pick_runtime("auto", "fp32").dtype is None


def test_batches_prepared_by_worker_threads_train_exactly_like_inline_ones() -> None:
    """Prefetching changes when a batch is built, never which batch or what is in it."""
    from fashion_search.config import TrainSettings
    from fashion_search.models.clip import build_tiny
    from fashion_search.text import build_tokenizer
    from fashion_search.train.loop import train_contrastive

    captions = [f"a {colour} dress with {pattern} patterns" for colour in ("red", "blue", "green", "black")
                for pattern in ("striped", "floral", "lattice", "plain")]
    tokenizer = build_tokenizer(captions, 300, 77)
    pieces = [[ids] for ids in tokenizer(captions)["input_ids"]]
    pixels = torch.randint(0, 256, (len(captions), 3, 32, 32), dtype=torch.uint8)
    small = TINY_MODEL
    losses = []
    for workers in (0, 2):
        settings = TrainSettings(epochs=2, lr=1e-3, batch_size=4, temperature=0.1, weight_decay=0.0,
                                 warmup_steps=1, schedule="cosine", grad_clip=1.0, workers=workers,
                                 checkpoint_every=0)
        losses.append(train_contrastive(build_tiny(small, tokenizer, 77, seed=3), pixels, pieces, settings, seed=3))
    assert len(losses[0]) == 8 and losses[0] == losses[1]


def tiny_pairs() -> tuple[Checkpoint, list[list[list[int]]], torch.Tensor]:
    """32 (image, caption) pairs for a small random CLIP; every third caption comes in two pieces,
    as `text.long_text: segment` writes long ones, so the per-caption averaging is exercised."""
    captions = [f"a {colour} shirt with {pattern} patterns" for colour in ("red", "blue", "green", "black")
                for pattern in ("striped", "floral", "lattice", "plain")] * 2
    tokenizer = build_tokenizer(captions, 300, 77)
    ids = tokenizer(captions)["input_ids"]
    pieces = [[row, row[:4]] if i % 3 == 0 else [row] for i, row in enumerate(ids)]
    pixels = torch.randint(0, 256, (len(captions), 3, 32, 32), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    small = TINY_MODEL
    return build_tiny(small, tokenizer, 77, seed=1), pieces, pixels


def xattn_settings(**changes: object) -> XattnSettings:
    base = XattnSettings(layers=2, heads=4, dropout=0.1, epochs=2, lr=1e-5, lock_image=False, lock_text=False,
                         head_lr=1e-3, batch_size=8, temperature=0.1, weight_decay=0.01, warmup_steps=1,
                         grad_clip=1.0, workers=0, checkpoint_every=0, negatives=3)
    return dataclasses.replace(base, **changes)


def train_tiny(settings: XattnSettings) -> tuple[list[float], dict[str, torch.Tensor], XattnModel]:
    """The losses, the CLIP weights before training, and the trained model."""
    checkpoint, pieces, pixels = tiny_pairs()
    before = {name: value.clone() for name, value in checkpoint.model.state_dict().items()}
    xattn = XattnModel(checkpoint, new_scorer(32, settings.layers, settings.heads, settings.dropout, seed=1))
    return train_xattn(xattn, pixels, pieces, list(range(len(pieces))), settings, seed=1), before, xattn


def unchanged(before: dict[str, torch.Tensor], xattn: XattnModel, prefixes: tuple[str, ...] = ("",)) -> list[bool]:
    """For each CLIP weight whose name starts with one of `prefixes`: is it bit-identical to before?"""
    after = xattn.encoder.model.state_dict()
    return [torch.equal(value, after[name]) for name, value in before.items() if name.startswith(prefixes)]


IMAGE_TOWER = ("vision_model.", "visual_projection.")
TEXT_TOWER = ("text_model.", "text_projection.")


@pytest.mark.parametrize("lock_image,lock_text", [(False, False), (True, True), (True, False)])
def test_pair_scorer_training_is_bit_identical_on_rerun_with_several_threads(lock_image: bool,
                                                                             lock_text: bool) -> None:
    """With two threads the gradient of a gather with repeated indices adds in a varying order unless
    the deterministic kernels are on, as the loop turns them on for the CPU."""
    settings = xattn_settings(lock_image=lock_image, lock_text=lock_text)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        runs = [train_tiny(settings) for _ in range(2)]
    finally:
        torch.set_num_threads(threads)
    assert runs[0][0] == runs[1][0]
    first, second = (xattn.scorer.state_dict() for _, _, xattn in runs)
    assert all(torch.equal(first[name], second[name]) for name in first)


def test_locked_features_equal_what_the_towers_compute_per_batch_in_eval_mode() -> None:
    """The table read at every step is what an eval-mode tower would give that step's batch."""
    checkpoint, pieces, pixels = tiny_pairs()
    locked = locked_features(checkpoint, pixels, pieces, lock_image=True, lock_text=True, runtime=CPU)
    index = torch.tensor([5, 0, 17, 3, 30, 9])  # captions 0, 3, 9 and 30 have two pieces
    batch = device_batch(pixels, pieces, index, checkpoint.pad_id, checkpoint.pixel_spec, CPU)
    with torch.no_grad():
        model = checkpoint.model.eval()
        image, text = image_embeddings(model, batch.pixels), batch.text_embeds(model)
    assert locked.image.shape == (len(pieces), 32) and locked.text.shape == (len(pieces), 32)
    torch.testing.assert_close(locked.image[index], F.normalize(image, dim=-1), rtol=0, atol=1e-6)
    torch.testing.assert_close(locked.text[index], F.normalize(text, dim=-1), rtol=0, atol=1e-6)


@pytest.mark.parametrize("negatives", [0, 3])
def test_locked_training_equals_training_frozen_towers_run_at_every_step(
        negatives: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Computing the locked towers' embeddings once changes the speed, not the training: without the
    tables the same frozen towers (eval mode, no gradients) embed every batch, to the same result."""
    settings = xattn_settings(lock_image=True, lock_text=True, negatives=negatives, epochs=3)
    cached_losses, _, cached = train_tiny(settings)
    monkeypatch.setattr(xattn_training, "locked_features", lambda *args, **kwargs: LockedFeatures(None, None))
    per_batch_losses, _, per_batch = train_tiny(settings)
    torch.testing.assert_close(torch.tensor(cached_losses), torch.tensor(per_batch_losses), rtol=1e-5, atol=1e-6)
    # Adam divides each gradient by its own scale, so a weight whose gradient is nearly zero moves by
    # up to the learning rate on rounding noise: a few 1e-5 here, against ~1e-2 of real movement.
    expected = per_batch.scorer.state_dict()
    for name, value in cached.scorer.state_dict().items():
        torch.testing.assert_close(value, expected[name], rtol=1e-4, atol=1e-4)


def test_with_both_towers_locked_clip_is_untouched_and_the_scorer_learns(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_image_tower_in_a_step(*args: object) -> None:
        raise AssertionError("a locked image tower ran during training")

    monkeypatch.setattr(xattn_training, "image_embeddings", no_image_tower_in_a_step)  # and no tokens reach a step
    losses, before, xattn = train_tiny(xattn_settings(lock_image=True, lock_text=True, lr=0.0, epochs=10))
    assert all(unchanged(before, xattn))
    steps = len(losses) // 10
    first_epoch, last_epoch = sum(losses[:steps]) / steps, sum(losses[-steps:]) / steps
    assert last_epoch < 0.8 * first_epoch


@pytest.mark.parametrize("locked,trained", [(IMAGE_TOWER, TEXT_TOWER), (TEXT_TOWER, IMAGE_TOWER)])
def test_one_locked_tower_leaves_only_the_other_to_train(locked: tuple[str, ...], trained: tuple[str, ...]) -> None:
    settings = xattn_settings(lock_image=locked == IMAGE_TOWER, lock_text=locked == TEXT_TOWER, lr=1e-3)
    _, before, xattn = train_tiny(settings)
    assert all(unchanged(before, xattn, locked)) and all(unchanged(before, xattn, ("logit_scale",)))
    trained_unchanged = unchanged(before, xattn, trained)
    assert sum(trained_unchanged) < len(trained_unchanged) // 2  # most of the other tower's weights moved
