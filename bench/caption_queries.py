"""Short shopper queries written by hand, judged by the gallery's captions; prints JSON.

The shopper protocol (evaluate/shopper.py) writes its queries from label combinations in two or three
template phrasings and judges them by the labels. This bench asks the same question from outside it:
a fixed list of short queries in a shopper's words, written without those templates, each with a
relevance rule read from the caption text alone (never the label files). Short queries are few words, so
some coincide word for word with a phrasing the templates can write ("navy trousers"); the output marks
them (`a_protocol_phrasing`: read from the labels, for this mark only) and gives the means without them.

A caption describes each garment in its own sentences (the top, then the lower garment, then an outer
layer) and the accessories in theirs. `parse_caption` groups the sentences by the garment they name;
a sentence that names none ("It has a round neckline.", "They are made of denim fabric.") belongs to
the one before it. A query's modifiers are bound to the garment its noun names: "navy trousers" holds
where the trousers' own sentences say navy, not where a navy shirt is worn over white trousers (that
image is a *binding error*, reported as its own figure, as in the protocol). A colour holds where the
garment's sentences name it, as its only colour or one of two.

Each model ranks the test gallery as the protocol's does (`shopper_scores`: the dual encoder, and for
xattn its top `retrieval.rerank_k` re-ranked by its pair scorer; xattn's dual encoder alone beside it),
precision@10 is the protocol's `query_measures` (ties against the model), and the mean over queries has
the protocol's seeded bootstrap interval (evaluate/intervals.py), the query being the unit. A query with
fewer than `evaluate.shopper.min_relevant` relevant images is reported and left out of the means, as the
protocol leaves out such combinations.

Run from the repository root after `make repro`: `python bench/caption_queries.py [--root DIR] [--out FILE]`
(`--root` names another checkout's data, models and params.yaml). Deterministic on one machine (seed 42);
another CPU may differ in the last digits.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from fashion_search.config import load_params, section, seed
from fashion_search.data.attributes import image_attributes
from fashion_search.data.pairs import read_pairs, require
from fashion_search.embedding import encode_images
from fashion_search.errors import UsageError
from fashion_search.evaluate.intervals import bootstrap_mean
from fashion_search.evaluate.pipeline import TestGallery, shopper_scores
from fashion_search.evaluate.shopper import SYNONYMS, UNSEEN, count_combinations, phrasings, query_measures, substituted
from fashion_search.models import MADE_BY, MODELS
from fashion_search.models.loader import load_model
from fashion_search.stage import run

# ---------------------------------------------------------------- reading a caption

UPPER = ("t-shirt", "polo shirt", "shirt", "top", "tank top", "blouse", "sweater", "sweatshirt", "hoodie")
ONE_PIECE = ("dress", "romper", "jumpsuit")
LOWER = ("trousers", "pants", "jeans", "shorts", "denim shorts", "leggings", "skirt")
OUTER = ("jacket", "coat", "vest", "cardigan")
ACCESSORIES = ("hat", "glasses", "sunglasses", "belt", "socks", "accessory", "ring", "bracelet", "tie", "scarf")
WOMEN, MEN = ("she", "her", "lady", "woman"), ("he", "his", "him", "gentleman", "man")


def word(text: str) -> str:
    """A regex for `text` as a whole word: "long" matches "long length", not "long-sleeve"."""
    return rf"(?<![\w-]){re.escape(text)}(?![\w-])"


def _alternatives(words: Sequence[str]) -> re.Pattern[str]:
    """Any of `words` as a whole word, the longest first ("tank top" before "top")."""
    return re.compile("|".join(word(w) for w in sorted(words, key=len, reverse=True)))


GARMENT_NOUN = _alternatives((*UPPER, *ONE_PIECE, *LOWER, *OUTER))
ACCESSORY_WORD = _alternatives(ACCESSORIES)


@dataclass(frozen=True)
class Garment:
    noun: str  # as the caption names it, lower case ("t-shirt", "denim shorts")
    text: str  # its sentences, lower case


@dataclass(frozen=True)
class Caption:
    garments: tuple[Garment, ...]
    accessories: str  # the accessory sentences, lower case
    gender: str | None  # "women" or "men" by the words for the wearer; None when they say neither or both


def sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip().lower()) if s]


def gender_of(text: str) -> str | None:
    words = set(re.findall(r"[a-z]+", text.lower()))
    women, men = bool(words & set(WOMEN)), bool(words & set(MEN))
    return "women" if women and not men else "men" if men and not women else None


def parse_caption(text: str) -> Caption:
    """Sentences grouped by the garment they name (its first garment noun); a sentence naming an
    accessory is an accessory sentence; one that names neither belongs with the sentence before it."""
    groups: dict[str, list[str]] = {}
    accessories: list[str] = []
    current: list[str] | None = None
    for sentence in sentences(text):
        noun = GARMENT_NOUN.search(sentence)
        if ACCESSORY_WORD.search(sentence):
            current = accessories
        elif noun is not None:
            current = groups.setdefault(noun.group(0), [])
        if current is not None:
            current.append(sentence)
    garments = tuple(Garment(noun, " ".join(parts)) for noun, parts in groups.items())
    return Caption(garments, " ".join(accessories), gender_of(text))


# ---------------------------------------------------------------- what a query asks for


@dataclass(frozen=True)
class Rule:
    """One way an image satisfies a query: the wearer's gender, a garment named by one of `nouns` whose own
    sentences match every `garment` pattern, and accessory sentences matching every `accessories` pattern.
    No nouns: no garment is asked for."""

    nouns: tuple[str, ...] = ()
    garment: tuple[str, ...] = ()
    accessories: tuple[str, ...] = ()
    gender: str | None = None

    def _rest_holds(self, caption: Caption) -> bool:
        return ((self.gender is None or caption.gender == self.gender)
                and all(re.search(p, caption.accessories) for p in self.accessories))

    def _worn(self, caption: Caption) -> list[Garment]:
        return [g for g in caption.garments if g.noun in self.nouns]

    def holds(self, caption: Caption) -> bool:
        if not self._rest_holds(caption):
            return False
        if not self.nouns:
            return True
        return any(all(re.search(p, g.text) for p in self.garment) for g in self._worn(caption))

    def unbound(self, caption: Caption) -> bool:
        """The named garment is worn and the caption says every garment pattern, but not all of
        them of that garment (a binding error when the rule does not hold)."""
        if not self.garment or not self._rest_holds(caption) or not self._worn(caption):
            return False
        everything = " ".join(g.text for g in caption.garments)
        return all(re.search(p, everything) for p in self.garment)


@dataclass(frozen=True)
class Query:
    text: str
    rules: tuple[Rule, ...]  # relevant where any holds

    def relevant(self, caption: Caption) -> bool:
        return any(rule.holds(caption) for rule in self.rules)

    def binding_error(self, caption: Caption) -> bool:
        return not self.relevant(caption) and any(rule.unbound(caption) for rule in self.rules)


def colour(name: str) -> str:
    return word(name)


def fabric(name: str) -> str:
    return word(f"{name} fabric")


def pattern(name: str) -> str:
    return word(f"{name} patterns")


TOPS = UPPER  # a shopper's "top": anything worn on the upper body but a dress
TROUSERS = ("trousers", "pants", "jeans")
SHORTS = ("shorts", "denim shorts")
SHIRTS = ("shirt", "polo shirt")


def wearing(nouns: Sequence[str], *patterns: str, gender: str | None = None) -> tuple[Rule, ...]:
    return (Rule(tuple(nouns), patterns, gender=gender),)


def jeans(*patterns: str) -> tuple[Rule, ...]:
    """Jeans: what the caption calls jeans, or trousers of denim."""
    return (Rule(("jeans",), patterns), Rule(("trousers", "pants"), (fabric("denim"), *patterns)))


def with_accessory(name: str, gender: str) -> tuple[Rule, ...]:
    return (Rule(accessories=(word(name),), gender=gender),)


# Written by hand in a shopper's words before any model was run on them, and kept whatever they scored.
QUERIES: tuple[Query, ...] = (
    Query("navy trousers", wearing(TROUSERS, colour("navy"))),
    Query("pink top", wearing(TOPS, colour("pink"))),
    Query("black leather pants", wearing(TROUSERS, colour("black"), fabric("leather"))),
    Query("floral dress", wearing(("dress",), pattern("floral"))),
    Query("striped shirt", wearing(SHIRTS, pattern("striped"))),
    Query("white t-shirt with short sleeves", wearing(("t-shirt",), colour("white"), word("short-sleeve"))),
    Query("long skirt", wearing(("skirt",), word("long"))),
    Query("denim shorts", (Rule(("denim shorts",)), Rule(("shorts",), (fabric("denim"),)))),
    Query("knit sweater", wearing(("sweater",), fabric("knitted"))),
    Query("woman in a sleeveless dress", wearing(("dress",), word("sleeveless"), gender="women")),
    Query("man wearing a hat", with_accessory("hat", "men")),
    Query("grey jeans", jeans(colour("grey"))),
    Query("blue jeans", jeans(colour("blue"))),
    Query("black jacket", wearing(("jacket",), colour("black"))),
    Query("denim jacket", wearing(("jacket",), fabric("denim"))),
    Query("woman with sunglasses", with_accessory("sunglasses", "women")),
    Query("man with glasses", with_accessory("glasses", "men")),
    Query("plaid skirt", wearing(("skirt",), pattern("lattice"))),
    Query("graphic tee", wearing(("t-shirt",), pattern("graphic"))),
    Query("crop top", wearing(TOPS, word("cropped"))),
    Query("chiffon blouse", wearing(("blouse",), fabric("chiffon"))),
    Query("long sleeve shirt", wearing(SHIRTS, word("long-sleeve"))),
    Query("tank top", wearing(("tank top",))),
    Query("leggings", wearing(("leggings",))),
    Query("cardigan", wearing(("cardigan",))),
    Query("white pants", wearing(TROUSERS, colour("white"))),
    Query("black shorts", wearing(SHORTS, colour("black"))),
    Query("red dress", wearing(("dress",), colour("red"))),
    Query("cotton shorts", wearing(SHORTS, fabric("cotton"))),
    Query("plain black t-shirt", wearing(("t-shirt",), colour("black"), pattern("pure color"))),
    Query("man in shorts", wearing(SHORTS, gender="men")),
    Query("knee-length skirt", wearing(("skirt",), word("medium short"))),
    Query("fur coat", wearing(("coat",), fabric("furry"))),
    Query("woman wearing a belt", with_accessory("belt", "women")),
    Query("hoodie", wearing(("hoodie",))),
    Query("color block top", wearing(TOPS, pattern("color block"))),
)


def judgements(queries: Sequence[Query], captions: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(queries, images) relevance and binding-error masks, from the captions alone."""
    parsed = [parse_caption(text) for text in captions]
    relevance = np.array([[q.relevant(c) for c in parsed] for q in queries], dtype=bool).reshape(len(queries), -1)
    binding = np.array([[q.binding_error(c) for c in parsed] for q in queries], dtype=bool).reshape(len(queries), -1)
    return relevance, binding


def protocol_phrasings(attributes: pd.DataFrame) -> set[str]:
    """Every text the protocol's templates can write for a gallery with these labels (each 1-3 attribute
    combination's phrasings and their synonym and unseen-word variants): which hand-written queries
    happen to be word for word one of them."""
    texts = set()
    for size in (1, 2, 3):
        for combination in count_combinations(attributes, size):
            texts.update(phrasings(combination))
            texts.update(t for words in (SYNONYMS, UNSEEN) if (t := substituted(phrasings(combination)[0], words)))
    return texts


# ---------------------------------------------------------------- measuring


def ranked(model: str, root: Path, gallery: TestGallery, params: dict) -> dict[str, torch.Tensor]:
    """Each way `model` ranks: {run name: (queries × gallery) scores} by the protocol's `shopper_scores`."""
    settings, text = section(params, "evaluate"), section(params, "text")
    rerank_k = section(params, "retrieval").rerank_k
    checkpoint, scorer = load_model(require(root / "models" / model, MADE_BY[model]), model)
    images = encode_images(checkpoint, gallery.pixels(checkpoint), settings.batch_size)
    texts = [query.text for query in QUERIES]
    runs = {model: shopper_scores(checkpoint, scorer, images if scorer is not None else images.pooled, settings,
                                  text, rerank_k)(texts)}
    if scorer is not None:
        runs[f"{model}_dual_encoder"] = shopper_scores(checkpoint, None, images.pooled, settings, text, rerank_k)(texts)
    return runs


def per_query(scores: torch.Tensor, relevance: np.ndarray, binding: np.ndarray) -> list[dict[str, float]]:
    """The protocol's measures of each query (ties against the model)."""
    return [query_measures(row, rel, bind) for row, rel, bind in zip(scores.float().numpy(), relevance, binding)]


def summary(values: Sequence[float], seed_value: int) -> dict[str, float]:
    return {key: round(value, 3) for key, value in bootstrap_mean(values, seed_value).items()}


def evaluate(root: Path) -> dict:
    params = load_params(root / "params.yaml")
    seed_value, min_relevant = seed(params), section(params, "evaluate").shopper.min_relevant
    pairs = read_pairs(root / "data/processed/test.parquet", "split")
    raw = root / "data/raw"
    gallery = TestGallery(pairs, raw, section(params, "image").fit, require(root / "data/cache/images", "cache_images"))
    relevance, binding = judgements(QUERIES, pairs["caption"].tolist())
    templated = protocol_phrasings(image_attributes(raw, pairs["image"].tolist()))
    items = pairs["item_id"].to_numpy()
    runs: dict[str, torch.Tensor] = {}
    for model in MODELS:
        runs.update(ranked(model, root, gallery, params))
    measured = {run_name: per_query(scores, relevance, binding) for run_name, scores in runs.items()}
    kept = [i for i in range(len(QUERIES)) if relevance[i].sum() >= min_relevant]
    untemplated = [i for i in kept if QUERIES[i].text not in templated]
    rows = []
    for i, query in enumerate(QUERIES):
        rows.append({"query": query.text, "relevant_images": int(relevance[i].sum()),
                     "relevant_products": len(set(items[relevance[i]])),
                     "base_rate": round(float(relevance[i].mean()), 4), "kept": i in kept,
                     "a_protocol_phrasing": query.text in templated,
                     **{run_name: {"precision_at_10": m[i]["precision_at_10"],
                                   "binding_errors_at_10": m[i]["binding_errors_at_10"]}
                        for run_name, m in measured.items()}})

    def means(subset: list[int]) -> dict:
        return {"queries": len(subset), "base_rate": round(float(np.mean([relevance[i].mean() for i in subset])), 4),
                **{run_name: {"precision_at_10": summary([m[i]["precision_at_10"] for i in subset], seed_value),
                              "ndcg_at_10": summary([m[i]["ndcg_at_10"] for i in subset], seed_value),
                              "binding_errors_at_10": round(float(np.mean([m[i]["binding_errors_at_10"]
                                                                           for i in subset])), 3)}
                   for run_name, m in measured.items()}}
    return {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
                        "threads": torch.get_num_threads()},
            "gallery": {"split": "test", "images": len(pairs), "products": int(pairs["item_id"].nunique())},
            "min_relevant": min_relevant, "queries": len(QUERIES),
            "means": means(kept), "means_without_protocol_phrasings": means(untemplated), "per_query": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1],
                        help="the checkout whose params.yaml, data/ and models/ are read (default: this one)")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    if args.out is not None and not args.out.parent.is_dir():
        raise UsageError(f"--out {args.out}: {args.out.parent} is not a folder; give a path in an existing folder")
    text = json.dumps(evaluate(args.root), indent=2)
    print(text)
    if args.out is not None:
        try:
            args.out.write_text(text + "\n", encoding="utf-8")
        except OSError as error:
            raise UsageError(f"--out {args.out}: cannot write it ({error.strerror or error})") from None


if __name__ == "__main__":
    run(main)
