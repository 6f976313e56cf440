"""params.yaml -> typed, validated settings, in one place.

Every stage validates its own section before doing any work, so a typo or an
out-of-range value fails in a second with a message naming the key, instead of
after an hour of training. params.yaml is read with a YAML 1.2 loader (as DVC
reads it): `dvc exp run -S finetune.lr=1e-4` writes `1e-04`, which a YAML 1.1
loader such as PyYAML's would return as a string.
"""

from __future__ import annotations

import dataclasses
import math
import typing
import unicodedata
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from fashion_search.errors import UserError


class ConfigError(UserError, ValueError):
    """A params.yaml value that cannot be used; the message names the key."""


def rule(*, low: float | None = None, high: float | None = None, low_open: bool = False, high_open: bool = False,
         choices: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Field metadata: allowed range (inclusive unless low_open / high_open) or allowed values."""
    return {"low": low, "high": high, "low_open": low_open, "high_open": high_open, "choices": choices}


@dataclasses.dataclass(frozen=True)
class DeepFashionSettings:
    """The official files on Google Drive: file ids (or URLs) and optional MD5 checksums."""

    images: str
    captions: str
    labels: str  # empty: no labels
    images_md5: str
    captions_md5: str
    labels_md5: str
    cache_dir: str  # downloads are kept here (outside data/raw) and never fetched twice


@dataclasses.dataclass(frozen=True)
class DataSettings:
    source: str = dataclasses.field(metadata=rule(choices=("synthetic", "deepfashion", "local", "hf")))
    local_path: str  # a folder in the DeepFashion-MultiModal layout, for source: local
    hf_repo: str  # a Hub dataset with the Marqo/deepfashion-multimodal schema, or a local folder of its Parquet
    deepfashion: DeepFashionSettings
    n_items: int = dataclasses.field(metadata=rule(low=2))
    image_width: int = dataclasses.field(metadata=rule(low=32, high=2048))
    image_height: int = dataclasses.field(metadata=rule(low=32, high=2048))

    def __post_init__(self) -> None:
        """dvc.yaml templates local_path into the download stage's deps, so it is tracked whatever the source."""
        if not self.local_path.strip():
            raise ConfigError("params.yaml: data.local_path is empty; DVC tracks it as a dependency of the download "
                              "stage, so it must name a folder: the placeholder local_data (with any source), or "
                              "your own DeepFashion-layout folder (with source: local)")


@dataclasses.dataclass(frozen=True)
class TinyModelSettings:
    """Architecture of the small CLIP trained here from scratch (model.name: tiny)."""

    embed_dim: int = dataclasses.field(metadata=rule(low=16, high=1024))
    layers: int = dataclasses.field(metadata=rule(low=1, high=24))
    heads: int = dataclasses.field(metadata=rule(low=1, high=32))
    image_size: int = dataclasses.field(metadata=rule(low=16, high=512))
    patch_size: int = dataclasses.field(metadata=rule(low=2, high=64))
    vocab_size: int = dataclasses.field(metadata=rule(low=300, high=65536))


@dataclasses.dataclass(frozen=True)
class ModelSettings:
    name: str  # "tiny", a Hugging Face CLIP model id, or a local save_pretrained directory
    tiny: TinyModelSettings


@dataclasses.dataclass(frozen=True)
class TextSettings:
    max_tokens: int = dataclasses.field(metadata=rule(low=8, high=77))
    long_text: str = dataclasses.field(metadata=rule(choices=("truncate", "segment")))


@dataclasses.dataclass(frozen=True)
class ImageSettings:
    fit: str = dataclasses.field(metadata=rule(choices=("pad", "crop")))


@dataclasses.dataclass(frozen=True)
class SplitSettings:
    """Train / validation / test shares (of items, or of pairs with group_by: none)."""

    test_size: float = dataclasses.field(metadata=rule(low=0.0, high=1.0, low_open=True, high_open=True))
    val_size: float = dataclasses.field(metadata=rule(low=0.0, high=1.0, low_open=True, high_open=True))
    group_by: str = dataclasses.field(metadata=rule(choices=("item", "none")))

    def __post_init__(self) -> None:
        if self.test_size + self.val_size >= 1:
            raise ConfigError(f"params.yaml: split.test_size ({self.test_size}) + split.val_size ({self.val_size}) "
                              "must be < 1, so that something is left to train on")


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """One contrastive training run (train_baseline for the tiny model, finetune)."""

    epochs: int = dataclasses.field(metadata=rule(low=0, high=1000))
    lr: float = dataclasses.field(metadata=rule(low=0.0, high=1.0, low_open=True))
    batch_size: int = dataclasses.field(metadata=rule(low=2, high=65536))
    temperature: float = dataclasses.field(metadata=rule(low=0.0, high=10.0, low_open=True))
    weight_decay: float = dataclasses.field(metadata=rule(low=0.0, high=1.0))
    warmup_steps: int = dataclasses.field(metadata=rule(low=0))
    schedule: str = dataclasses.field(metadata=rule(choices=("constant", "cosine")))
    grad_clip: float = dataclasses.field(metadata=rule(low=0.0))
    workers: int = dataclasses.field(metadata=rule(low=0, high=64))  # threads preparing batches ahead
    checkpoint_every: int = dataclasses.field(metadata=rule(low=0))  # steps between resumable states; 0: none
    # short texts written from each image's labels, besides its caption (data/alt_text.py); 0: captions only
    alt_texts: int = dataclasses.field(default=0, metadata=rule(low=0, high=64))
    # pair: a text's only positive is its own image (CLIP, the report); labels: every batch image it fits
    positives: str = dataclasses.field(default="pair", metadata=rule(choices=("pair", "labels")))
    # weight of the attribute heads' labelled loss beside the contrastive one (train.heads); 0: none
    label_weight: float = dataclasses.field(default=0.0, metadata=rule(low=0.0, high=100.0))
    # training pictures mirrored and randomly cropped (train/augment.py); none: as they are (the report)
    augment: str = dataclasses.field(default="none", metadata=rule(choices=("none", "flip_crop")))


@dataclasses.dataclass(frozen=True)
class ShopperSettings:
    """The shopper protocol (evaluate/shopper.py): short queries from the labels."""

    min_relevant: int = dataclasses.field(metadata=rule(low=10))  # relevant gallery images a combination needs
    max_queries: int = dataclasses.field(metadata=rule(low=1))  # combinations per family, sampled with the seed


@dataclasses.dataclass(frozen=True)
class XattnSettings:
    """The cross-modal attention pair scorer and its training.

    A locked tower (`lock_image`, `lock_text`, as open_clip's --lock-image) does not train: its
    embeddings of the training pairs are computed once, before training. An unlocked tower trains
    at `lr`, so `lr` 0 is refused unless both towers are locked; with both locked `lr` is unused.
    """

    layers: int = dataclasses.field(metadata=rule(low=1, high=24))
    heads: int = dataclasses.field(metadata=rule(low=1, high=32))
    dropout: float = dataclasses.field(metadata=rule(low=0.0, high=0.9))
    epochs: int = dataclasses.field(metadata=rule(low=0, high=1000))
    lr: float = dataclasses.field(metadata=rule(low=0.0, high=1.0))  # the unlocked CLIP towers
    lock_image: bool  # the vision tower is frozen and embeds every training image once
    lock_text: bool  # the text tower is frozen and embeds every training caption once
    head_lr: float = dataclasses.field(metadata=rule(low=0.0, high=1.0, low_open=True))
    batch_size: int = dataclasses.field(metadata=rule(low=2, high=4096))
    temperature: float = dataclasses.field(metadata=rule(low=0.0, high=10.0, low_open=True))
    weight_decay: float = dataclasses.field(metadata=rule(low=0.0, high=1.0))
    warmup_steps: int = dataclasses.field(metadata=rule(low=0))
    grad_clip: float = dataclasses.field(metadata=rule(low=0.0))
    workers: int = dataclasses.field(metadata=rule(low=0, high=64))
    checkpoint_every: int = dataclasses.field(metadata=rule(low=0))
    negatives: int = dataclasses.field(metadata=rule(low=0, high=1024))  # 0: all in-batch pairs; n: n hard negatives
    # After the warm-up; a params.yaml written before this key existed trains with cosine, as it did then.
    schedule: str = dataclasses.field(default="cosine", metadata=rule(choices=("constant", "cosine")))
    # What the scorer reads of a pair: the two pooled embeddings (the report) or every token's state.
    features: str = dataclasses.field(default="pooled", metadata=rule(choices=("pooled", "tokens")))

    def __post_init__(self) -> None:
        """An unlocked tower at lr 0 would run in training mode and compute gradients only to never move."""
        unlocked = [f"xattn.lock_{tower}" for tower, locked in (("image", self.lock_image), ("text", self.lock_text))
                    if not locked]
        if self.lr == 0 and unlocked:
            names = ", ".join(unlocked)
            raise ConfigError(f"params.yaml: xattn.lr is 0 with {names} false: an unlocked tower trains at "
                              f"xattn.lr; to freeze it set {names} to true (its embeddings are then computed "
                              "once), or give xattn.lr > 0")


@dataclasses.dataclass(frozen=True)
class EvaluateSettings:
    ks: list[int]
    plot_max_k: int = dataclasses.field(metadata=rule(low=1, high=1000))
    chunk_size: int = dataclasses.field(metadata=rule(low=1))
    batch_size: int = dataclasses.field(metadata=rule(low=1))
    queries: list[str]
    gallery_size: int = dataclasses.field(metadata=rule(low=2))  # small random galleries (the report's batch: 32)
    gallery_draws: int = dataclasses.field(metadata=rule(low=1, high=10000))
    marqo_queries: int = dataclasses.field(metadata=rule(low=1))  # unique captions sampled as queries (Marqo: 2,000)
    shopper: ShopperSettings = ShopperSettings(min_relevant=10, max_queries=60)

    def __post_init__(self) -> None:
        """Each k names a metric (recall_at_k) and a point of the plotted curves."""
        for i, k in enumerate(self.ks):
            if k < 1 or k > self.plot_max_k:
                raise ConfigError(f"params.yaml: evaluate.ks[{i}] is {k}; every k must be >= 1 and <= "
                                  f"evaluate.plot_max_k ({self.plot_max_k})")
        repeated = sorted({k for k in self.ks if self.ks.count(k) > 1})
        if repeated:
            raise ConfigError(f"params.yaml: evaluate.ks lists {repeated} more than once; give distinct values")


@dataclasses.dataclass(frozen=True)
class RetrievalSettings:
    """How a model answers a query, in evaluation and in the service alike: settings of retrieval, not of
    training, so changing them reruns evaluate and index and never retrains."""

    rerank_k: int = dataclasses.field(metadata=rule(low=1, high=1000))  # candidates the pair scorer re-orders


# The pipeline's models, in the order it trains them. Defined here, the package's lowest layer, so that
# serve.model is validated against them; every other module names them through fashion_search.models.
MODELS = ("baseline", "finetuned", "xattn")
SELECTION_METRICS = ("shopper_ndcg_at_10", "shopper_precision_at_10", "item_t2i_recall_at_10")


@dataclasses.dataclass(frozen=True)
class ServeSettings:
    """The search service: which model answers, over which images, through which vector index."""

    model: str = dataclasses.field(metadata=rule(choices=("best", *MODELS)))
    # what `best` is decided by, on the validation split (metrics/evaluate.json: validation)
    select_by: str = dataclasses.field(metadata=rule(choices=SELECTION_METRICS))
    gallery: str = dataclasses.field(metadata=rule(choices=("test", "all")))
    faiss: str = dataclasses.field(metadata=rule(choices=("auto", "exact", "fastscan", "ivf", "hnsw")))
    batch_size: int = dataclasses.field(metadata=rule(low=1))
    examples: list[str]  # queries the web page offers to click


@dataclasses.dataclass(frozen=True)
class RuntimeSettings:
    """Where training and embedding run: CUDA with mixed precision when present, else the CPU in fp32."""

    device: str = dataclasses.field(metadata=rule(choices=("auto", "cpu", "cuda")))
    precision: str = dataclasses.field(metadata=rule(choices=("auto", "fp32", "bf16", "fp16")))
    processes: int = dataclasses.field(metadata=rule(low=1, high=1024))  # > 1: training under torchrun (DDP)
    compile: bool  # torch.compile both CLIP towers: pays off only where embedding outlasts compiling


SECTIONS: dict[str, type] = {
    "runtime": RuntimeSettings,
    "data": DataSettings,
    "model": ModelSettings,
    "text": TextSettings,
    "image": ImageSettings,
    "split": SplitSettings,
    "train_baseline": TrainSettings,
    "finetune": TrainSettings,
    "xattn": XattnSettings,
    "retrieval": RetrievalSettings,
    "evaluate": EvaluateSettings,
    "serve": ServeSettings,
}
TOP_LEVEL_SCALARS = {"seed": int}
MOVED = {"xattn.rerank_k": "retrieval.rerank_k"}  # keys an older params.yaml may still have
# numpy's and torch's generators take seeds in [0, 2**32): a negative seed fails deep inside them.
TOP_LEVEL_RULES = {"seed": rule(low=0, high=2**32 - 1)}

# The params.yaml keys each stage reads: the `params` of its dvc.yaml entry (a test holds them equal) and
# what its MLflow run records. A section name means every key of it; a dotted key, that key alone.
STAGE_PARAMS: dict[str, tuple[str, ...]] = {
    "download": ("seed", "data"),
    "tokenize": ("model.name", "model.tiny.vocab_size", "text"),
    "split": ("seed", "split"),
    "cache_images": ("model.name", "model.tiny.image_size", "image.fit"),
    "train_baseline": ("seed", "runtime", "model", "text.max_tokens", "image.fit", "train_baseline"),
    "finetune": ("seed", "runtime", "image.fit", "finetune"),
    "train_xattn": ("seed", "runtime", "image.fit", "xattn"),
    "evaluate": ("seed", "runtime", "image.fit", "text", "evaluate", "retrieval", "train_baseline.alt_texts",
                 "finetune.alt_texts"),
    "index": ("seed", "runtime", "image.fit", "text", "retrieval", "evaluate.shopper", "serve.model",
              "serve.select_by", "serve.gallery", "serve.faiss", "serve.batch_size", "serve.examples"),
}


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """Read params.yaml with a YAML 1.2 loader and reject unknown top-level keys."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path} not found: run from the repository root, where params.yaml lives")
    try:
        params = YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))
    except YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(params, dict):
        raise ConfigError(f"{path}: expected a mapping of sections")
    known = set(SECTIONS) | set(TOP_LEVEL_SCALARS)
    unknown = sorted(set(params) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {unknown}; known keys: {sorted(known)}")
    for name, cls in SECTIONS.items():
        _check_known_keys(cls, params.get(name), name)
    return params


def _check_known_keys(cls: type, raw: Any, key: str) -> None:
    """A misspelt key anywhere is reported by the first stage that reads params.yaml, not only by the
    stage that reads its section (serve.* is read by the last stage, after an hour of training)."""
    if not isinstance(raw, dict):
        return  # a missing or malformed section is reported, with its key, by the stage that reads it
    fields = _fields_of(cls, raw, key)
    hints = typing.get_type_hints(cls)
    for name in fields:
        if dataclasses.is_dataclass(hints[name]):
            _check_known_keys(hints[name], raw.get(name), f"{key}.{name}")


def seed(params: dict[str, Any]) -> int:
    """The global seed (42 in the report), validated."""
    value = _coerce("seed", params.get("seed", _MISSING), int)
    _check_rule("seed", value, TOP_LEVEL_RULES["seed"])
    return value


def stage_params(params: dict[str, Any], stage: str) -> dict[str, Any]:
    """The raw values of the keys `stage` reads (STAGE_PARAMS), by their dotted names, for its MLflow run."""
    values = {}
    for key in STAGE_PARAMS[stage]:
        node: Any = params
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                raise ConfigError(f"params.yaml: {key} is missing")
            node = node[part]
        values[key] = node
    return values


def section(params: dict[str, Any], name: str) -> Any:
    """The validated settings object of one params.yaml section."""
    if name not in SECTIONS:
        raise ConfigError(f"no such params section {name!r}; known: {sorted(SECTIONS)}")
    return _build(SECTIONS[name], params.get(name, _MISSING), name)


_MISSING = object()


def _build(cls: type, raw: Any, key: str) -> Any:
    if raw is _MISSING:
        raise ConfigError(f"params.yaml: section {key} is missing")
    if not isinstance(raw, dict):
        raise ConfigError(f"params.yaml: {key} must be a mapping, got {raw!r}")
    fields = _fields_of(cls, raw, key)
    hints = typing.get_type_hints(cls)
    values = {name: _value(f"{key}.{name}", raw.get(name, _default(f)), hints[name], f.metadata)
              for name, f in fields.items()}
    return cls(**values)


def _fields_of(cls: type, raw: dict[str, Any], key: str) -> dict[str, dataclasses.Field]:
    """The settings class's fields by name; a key of `raw` that is none of them is refused, naming it."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    for name in unknown:
        if f"{key}.{name}" in MOVED:
            raise ConfigError(f"params.yaml: {key}.{name} is now {MOVED[f'{key}.{name}']}; move it there")
    if unknown:
        raise ConfigError(f"params.yaml: unknown key(s) {[f'{key}.{u}' for u in unknown]}; "
                          f"known keys of {key}: {sorted(fields)}")
    return fields


def _default(field: dataclasses.Field) -> Any:
    """A key may be left out of params.yaml only where its settings class gives a default."""
    return _MISSING if field.default is dataclasses.MISSING else field.default


def _value(key: str, raw: Any, hint: Any, meta: Any) -> Any:
    if raw is _MISSING:
        raise ConfigError(f"params.yaml: {key} is missing")
    if dataclasses.is_dataclass(hint):
        return raw if isinstance(raw, hint) else _build(hint, raw, key)
    if typing.get_origin(hint) is list:
        (item_type,) = typing.get_args(hint)
        if not isinstance(raw, list) or not raw:
            raise ConfigError(f"params.yaml: {key} must be a non-empty list, got {raw!r}")
        items = [_coerce(f"{key}[{i}]", item, item_type) for i, item in enumerate(raw)]
        for i, item in enumerate(items):
            if item_type is str and not has_visible_text(item):
                raise ConfigError(f"params.yaml: {key}[{i}] is {item!r}; give a non-empty text")
        return items
    value = _coerce(key, raw, hint)
    _check_rule(key, value, meta)
    return value


def _coerce(key: str, raw: Any, kind: type) -> Any:
    """Accept the value if it is of the right kind; numbers written as strings are parsed."""
    if raw is _MISSING:
        raise ConfigError(f"params.yaml: {key} is missing")
    if isinstance(raw, bool) and kind is not bool:
        raise ConfigError(f"params.yaml: {key} must be a {kind.__name__}, got {raw!r}")
    if kind is bool:
        # Only YAML's true/false: a quoted "false" or a 0 is more likely a slip than a choice.
        if not isinstance(raw, bool):
            raise ConfigError(f"params.yaml: {key} must be true or false, got {raw!r}")
        return raw
    if kind is str:
        if not isinstance(raw, str):
            raise ConfigError(f"params.yaml: {key} must be a string, got {raw!r}")
        return raw
    if kind is int:
        if isinstance(raw, float) and raw.is_integer():
            return int(raw)
        if isinstance(raw, str):
            raw = _parse_number(key, raw, kind)
        if not isinstance(raw, int):
            raise ConfigError(f"params.yaml: {key} must be an integer, got {raw!r}")
        return raw
    if kind is float:
        if isinstance(raw, str):
            raw = _parse_number(key, raw, kind)
        if not isinstance(raw, (int, float)) or not math.isfinite(raw):
            raise ConfigError(f"params.yaml: {key} must be a finite number, got {raw!r}")
        return float(raw)
    raise TypeError(f"unsupported settings type {kind} for {key}")  # a programming error, not user input


def _parse_number(key: str, text: str, kind: type) -> int | float:
    try:
        return kind(text) if kind is int else float(text)
    except ValueError:
        raise ConfigError(f"params.yaml: {key} must be a {kind.__name__}, got {text!r}") from None


def _check_rule(key: str, value: Any, meta: Any) -> None:
    if not meta:
        return
    choices = meta["choices"]
    if choices is not None and value not in choices:
        raise ConfigError(f"params.yaml: {key} is {value!r}; allowed values: {', '.join(choices)}")
    low, high = meta["low"], meta["high"]
    if low is not None and (value <= low if meta["low_open"] else value < low):
        bound = f"> {low}" if meta["low_open"] else f">= {low}"
        raise ConfigError(f"params.yaml: {key} is {value!r}; it must be {bound}")
    if high is not None and (value >= high if meta.get("high_open") else value > high):
        bound = f"< {high}" if meta.get("high_open") else f"<= {high}"
        raise ConfigError(f"params.yaml: {key} is {value!r}; it must be {bound}")


# Unicode's Default_Ignorable_Code_Point characters that are neither format characters (Cf) nor marks (M):
# the Hangul fillers, and code points reserved as ignorable (the tag and variation-selector planes' gaps).
_IGNORABLE_RANGES = ((0x115F, 0x1160), (0x2065, 0x2065), (0x3164, 0x3164), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8),
                     (0xE0000, 0xE0FFF))
_BLANK_SYMBOLS = "\u2800"  # BRAILLE PATTERN BLANK: a symbol drawn as an empty cell


def _shows(char: str) -> bool:
    """Whether one character draws something of its own: not white space, a control or format character,
    a default-ignorable one, a blank symbol, or a combining mark (it draws only on a character before it)."""
    category = unicodedata.category(char)
    if char.isspace() or char in _BLANK_SYMBOLS or category in ("Cc", "Cf") or category.startswith("M"):
        return False
    return not any(low <= ord(char) <= high for low, high in _IGNORABLE_RANGES)


def has_visible_text(text: str) -> bool:
    """Whether a text shows something: a character besides white space, control, zero-width and other
    default-ignorable characters (U+034F, the Hangul fillers), the blank Braille cell and lone combining marks."""
    return any(_shows(char) for char in text)


def flatten(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted keys (finetune.lr) for MLflow, whose params are flat."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{dotted}."))
        else:
            flat[dotted] = value
    return flat

