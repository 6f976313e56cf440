"""The one function that opens a model: the pipeline's own (by name) or any CLIP a user can name.

Evaluation, the index and the search service open `baseline`, `finetuned` and `xattn`
through `load_model`; `fashion-search benchmark` opens a model from outside the same way.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from fashion_search.models import MADE_BY
from fashion_search.models.clip import INFO_FILE, WEIGHTS_HASHES, Checkpoint, load_checkpoint, load_pretrained
from fashion_search.models.xattn import SCORER_CONFIG, XattnScorer, load_xattn


def load_model(source: str | Path, name: str | None = None) -> tuple[Checkpoint, XattnScorer | None]:
    """The dual encoder that embeds, and for xattn the pair scorer that re-ranks its top candidates.

    `name` (one of `fashion_search.models.MODELS`) says which of the project's models the directory holds, so a missing
    file is reported against the stage that writes it. Without it the directory decides: an xattn
    directory, a project checkpoint directory, or else anything `from_pretrained` takes (a plain
    save_pretrained CLIP directory, a Hugging Face id in the local cache).
    """
    path = Path(source)
    if name == "xattn" or (name is None and (path / SCORER_CONFIG).is_file()):
        xattn = load_xattn(path)
        return xattn.encoder, xattn.scorer
    if name is not None or (path / INFO_FILE).is_file():
        return load_checkpoint(path, None if name is None else MADE_BY.get(name)), None
    return load_pretrained(str(source)), None


def model_digest(directory: Path) -> str | None:
    """One digest for what a model directory holds: the SHA-256 of every weights file its manifests
    record (the dual encoder's, and for xattn the scorer's beside it), read from the manifests, which
    loading verifies against the bytes. None for a directory without a manifest (a plain save_pretrained).

    It names the model in MLflow: the training run logs it, and the evaluate run finds that run by it,
    even when DVC took the model from its cache and the run belongs to an earlier pipeline."""
    recorded = {}
    for manifest in sorted([*directory.rglob(INFO_FILE), *directory.rglob(SCORER_CONFIG)]):
        hashes = json.loads(manifest.read_text(encoding="utf-8")).get(WEIGHTS_HASHES) or {}
        for name, value in hashes.items():
            recorded[str((manifest.parent / name).relative_to(directory))] = value
    if not recorded:
        return None
    return hashlib.sha256(json.dumps(recorded, sort_keys=True).encode()).hexdigest()[:16]
