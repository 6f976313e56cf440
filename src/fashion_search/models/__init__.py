"""The models: CLIP checkpoints (clip.py), the cross-modal pair scorer (xattn.py), and one loader (loader.py).

The pipeline trains three models; every stage, command and report names them from here."""

MODELS = ("baseline", "finetuned", "xattn")
MADE_BY = {"baseline": "train_baseline", "finetuned": "finetune", "xattn": "train_xattn"}  # the stage that writes it
