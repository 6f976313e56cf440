"""Training the pair scorer: hard negatives come from other items, and training lowers the loss."""

from __future__ import annotations

import pytest
import torch

from fashion_search.device import pick_runtime
from fashion_search.models.xattn import new_scorer
from fashion_search.train.xattn import hard_negative_loss, hard_negatives, in_batch_loss


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


def test_the_cpu_runtime_is_full_precision_and_cuda_is_refused_without_a_gpu() -> None:
    runtime = pick_runtime("auto", "auto")
    if not torch.cuda.is_available():
        assert runtime.device.type == "cpu" and runtime.dtype is None and not runtime.needs_scaler
        with pytest.raises(ValueError, match="runtime.device"):
            pick_runtime("cuda", "auto")


def test_batches_prepared_by_worker_threads_train_exactly_like_inline_ones() -> None:
    """Prefetching changes when a batch is built, never which batch or what is in it."""
    from fashion_search.config import TinyModelSettings, TrainSettings
    from fashion_search.models.clip import build_tiny
    from fashion_search.text import build_tokenizer
    from fashion_search.train.loop import train_contrastive

    captions = [f"a {colour} dress with {pattern} patterns" for colour in ("red", "blue", "green", "black")
                for pattern in ("striped", "floral", "lattice", "plain")]
    tokenizer = build_tokenizer(captions, 300, 77)
    pieces = [[ids] for ids in tokenizer(captions)["input_ids"]]
    pixels = torch.randint(0, 256, (len(captions), 3, 32, 32), dtype=torch.uint8)
    small = TinyModelSettings(embed_dim=32, layers=1, heads=2, image_size=32, patch_size=8, vocab_size=300)
    losses = []
    for workers in (0, 2):
        settings = TrainSettings(epochs=2, lr=1e-3, batch_size=4, temperature=0.1, weight_decay=0.0,
                                 warmup_steps=1, schedule="cosine", grad_clip=1.0, workers=workers)
        losses.append(train_contrastive(build_tiny(small, tokenizer, 77, seed=3), pixels, pieces, settings, seed=3))
    assert len(losses[0]) == 8 and losses[0] == losses[1]


def test_pair_scorer_training_is_bit_identical_on_rerun_with_several_threads() -> None:
    """With two threads the gradient of a gather with repeated indices used to add in varying order."""
    from fashion_search.config import TinyModelSettings, XattnSettings
    from fashion_search.models.clip import build_tiny
    from fashion_search.models.xattn import XattnModel
    from fashion_search.text import build_tokenizer
    from fashion_search.train.xattn import train_xattn

    captions = [f"a {colour} shirt with {pattern} patterns" for colour in ("red", "blue", "green", "black")
                for pattern in ("striped", "floral", "lattice", "plain")] * 2
    tokenizer = build_tokenizer(captions, 300, 77)
    pieces = [[ids] for ids in tokenizer(captions)["input_ids"]]
    pixels = torch.randint(0, 256, (len(captions), 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    small = TinyModelSettings(embed_dim=32, layers=1, heads=2, image_size=32, patch_size=8, vocab_size=300)
    settings = XattnSettings(layers=2, heads=4, dropout=0.1, epochs=2, lr=1e-5, head_lr=1e-3, batch_size=8,
                             temperature=0.1, weight_decay=0.01, warmup_steps=1, grad_clip=1.0, workers=0,
                             negatives=3, rerank_k=5)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        runs = [train_xattn(XattnModel(build_tiny(small, tokenizer, 77, seed=1), new_scorer(32, 2, 4, 0.1, seed=1)),
                            pixels, pieces, list(range(len(captions))), settings, seed=1) for _ in range(2)]
    finally:
        torch.set_num_threads(threads)
    assert runs[0] == runs[1]
