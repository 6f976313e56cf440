"""The models: CLIP checkpoints (clip.py), the cross-modal pair scorer (xattn.py), and one loader (loader.py).

The pipeline trains three models (`MODELS`: defined in config.py, the lowest layer, which validates
serve.model against them); every stage, command and report names them from here."""

from fashion_search.config import MODELS

__all__ = ["MADE_BY", "MODELS"]

MADE_BY = {"baseline": "train_baseline", "finetuned": "finetune", "xattn": "train_xattn"}  # the stage that writes it
