"""The shopper protocol: the short queries people type, judged by the labels.

A query names a garment (its noun stands for product categories: data/attributes.py) and 0-2 modifiers:
colour, pattern, fabric, sleeve, length, gender, hat, glasses. Each garment modifier is
bound to the garment the noun names, so "floral skirt" is relevant only where the lower
garment of a skirt product is floral; a skirt product with a floral top over a plain
skirt is a *binding error*, reported as its own figure.

Combinations come from the gallery's own attributes, only those with at least
`min_relevant` relevant images, sampled with the seed. Each is phrased two or three
ways (compact, noun first, a person wearing it); the phrasings are not the training
texts' (data/alt_text.py: a test proves the two sets disjoint). The unit of
uncertainty is the combination: its phrasings share their relevant images.

Ties count against the model: among equal scores the irrelevant images come first.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd
import torch

from fashion_search.data.attributes import (GARMENT_KINDS, IMAGE_KINDS, NOUNS, PLURAL_NOUNS, SLOT_KINDS,
                                            available_columns, column_of, noun_mask, nouns_of)
from fashion_search.data.labels import COLOUR
from fashion_search.evaluate.intervals import bootstrap_mean, bootstrap_mean_of_groups
from fashion_search.evaluate.retrieval import pessimistic_order

KIND_ORDER = ("gender", "colour", "length", "sleeve", "pattern", "fabric", "hat", "glasses")

# The words of the evaluation phrasings, per attribute value. Values without a word are not queried.
WORDS: dict[str, dict[str, str]] = {
    "colour": {colour: colour for colour in COLOUR if colour != "NA"},
    "gender": {"women": "women's", "men": "men's"},
    "pattern": {"floral": "floral", "graphic": "graphic", "striped": "striped", "pure color": "plain",
                "lattice": "lattice", "color block": "color-block"},
    "fabric": {"denim": "denim", "cotton": "cotton", "leather": "leather", "furry": "furry",
               "knitted": "knitted", "chiffon": "chiffon"},
    "sleeve": {"sleeveless": "sleeveless", "short-sleeve": "short-sleeved", "long-sleeve": "long-sleeved"},
    "length": {"three-point": "short", "medium short": "knee-length", "long": "long"},
    "hat": {"hat": "with a hat"},
    "glasses": {"eyeglasses": "with glasses", "sunglasses": "with sunglasses"},
}
# Noun-first phrasing: the words after the noun.
AFTER: dict[str, dict[str, str]] = {
    "colour": {colour: f"in {colour}" for colour in COLOUR if colour != "NA"},
    "gender": {"women": "for women", "men": "for men"},
    "pattern": {"floral": "with a floral print", "graphic": "with a graphic print", "striped": "with stripes",
                "pure color": "in one plain colour", "lattice": "with a lattice pattern",
                "color block": "in color blocks"},
    "fabric": {v: f"made of {v}" for v in ("denim", "cotton", "leather", "chiffon")} | {
        "furry": "made of fur", "knitted": "in a knit"},
    "sleeve": {"sleeveless": "that is sleeveless", "short-sleeve": "with short sleeves",
               "long-sleeve": "with long sleeves"},
    "length": {"three-point": "that is short", "medium short": "that reaches the knee", "long": "that is long"},
    "hat": WORDS["hat"],
    "glasses": WORDS["glasses"],
}
# Robustness: words a shopper uses for the same thing. Synonyms are absent from the label-generated
# training texts; unseen words are absent from every training text of the default data, captions included.
SYNONYMS = {"top": "tee", "sweater": "pullover", "trousers": "slacks", "striped": "stripy", "floral": "flowery",
            "lattice": "plaid", "plain": "solid-colour", "denim": "jean"}
UNSEEN = {"dress": "frock", "lattice": "tartan", "red": "scarlet", "jacket": "blazer", "leggings": "tights",
          "knitted": "woolly", "floral": "botanical", "sweater": "jumper"}


@dataclass(frozen=True)
class Combination:
    """A garment noun and its modifiers as (kind, value) pairs, kinds distinct, in KIND_ORDER."""

    noun: str | None  # None: any product (a query that names no garment, "a woman wearing a hat")
    modifiers: tuple[tuple[str, str], ...] = ()
    negated: tuple[str, str] | None = None  # ("colour", "red"): relevant where the garment is *not* red

    @property
    def size(self) -> int:
        return 1 + len(self.modifiers)

    def key(self) -> str:
        parts = [self.noun or "any", *(f"{kind}={value}" for kind, value in self.modifiers)]
        if self.negated:
            parts.append(f"{self.negated[0]}!={self.negated[1]}")
        return ",".join(parts)


def relevant(attributes: pd.DataFrame, combination: Combination) -> np.ndarray:
    """Images whose product is the noun's and whose bound garment has every modifier (without a noun:
    some garment has it)."""
    if combination.noun is None:
        mask = np.ones(len(attributes), dtype=bool)
        for kind, value in combination.modifiers:
            columns = [f"{g}_{kind}" for g in ("upper", "lower", "outer")] if kind in GARMENT_KINDS else [
                column_of("upper", kind)]
            mask &= np.logical_or.reduce([(attributes[c] == value).to_numpy() for c in columns])
        return mask
    slot = NOUNS[combination.noun][0]
    mask = noun_mask(attributes, combination.noun)
    for kind, value in combination.modifiers:
        mask &= (attributes[column_of(slot, kind)] == value).to_numpy()
    if combination.negated is not None:
        kind, value = combination.negated
        column = attributes[column_of(slot, kind)]
        mask &= (column.notna() & (column != value)).to_numpy()
    return mask


def binding_errors(attributes: pd.DataFrame, combination: Combination) -> np.ndarray:
    """Images of the noun's product that show every garment modifier, but not all on the bound garment."""
    if combination.noun is None:
        return np.zeros(len(attributes), dtype=bool)
    slot = NOUNS[combination.noun][0]
    mask = noun_mask(attributes, combination.noun)
    bound_ok = np.ones(len(attributes), dtype=bool)
    garment_modifiers = 0
    for kind, value in combination.modifiers:
        on_bound = (attributes[column_of(slot, kind)] == value).to_numpy()
        if kind in GARMENT_KINDS:
            garment_modifiers += 1
            anywhere = np.zeros(len(attributes), dtype=bool)
            for garment in ("upper", "lower", "outer"):
                anywhere |= (attributes[f"{garment}_{kind}"] == value).to_numpy()
            mask &= anywhere
            bound_ok &= on_bound
        else:
            mask &= on_bound
    if garment_modifiers == 0:
        return np.zeros(len(attributes), dtype=bool)
    return mask & ~bound_ok


def _words(combination: Combination, kinds: dict[str, dict[str, str]]) -> list[str]:
    return [kinds[kind][value] for kind, value in combination.modifiers]


def phrasings(combination: Combination) -> list[str]:
    """Three ways a shopper types the combination: "red floral dress", "dress in red with a floral
    print", "a woman wearing a red floral dress" (the evaluation phrasings)."""
    noun, modifiers = combination.noun, combination.modifiers
    tail = [WORDS[kind][value] for kind, value in modifiers if kind in ("hat", "glasses")]
    garment = [WORDS[kind][value] for kind, value in modifiers if kind not in ("gender", "hat", "glasses")] + [noun]
    gender = [WORDS[kind][value] for kind, value in modifiers if kind == "gender"]
    compact = " ".join([*gender, *garment, *tail])
    after = " ".join([noun, *(AFTER[kind][value] for kind, value in modifiers)])
    article = "" if noun in PLURAL_NOUNS else ("an " if garment[0][0] in "aeiou" else "a ")
    person = {"women": "a woman", "men": "a man"}.get(dict(modifiers).get("gender", ""), "someone")
    worn = " ".join([f"{person} wearing {article}{' '.join(garment)}", *tail])
    return list(dict.fromkeys([compact, after, worn]))


def negation_phrasing(combination: Combination) -> str:
    """The negation family's phrasing: "<noun> that is not <colour>", "<noun> without sleeves",
    "<noun> without any pattern" (the last two ask for sleeveless and plain garments)."""
    if combination.negated is not None:
        return f"{combination.noun} that is not {combination.negated[1]}"
    if combination.modifiers == (("sleeve", "sleeveless"),):
        return f"{combination.noun} without sleeves"
    if combination.modifiers == (("pattern", "pure color"),):
        return f"{combination.noun} without any pattern"
    raise ValueError(f"{combination.key()} has no negation phrasing")


def substituted(text: str, words: dict[str, str]) -> str | None:
    """The phrasing with one word replaced by its synonym (the first that applies), or None."""
    for word, other in words.items():
        tokens = text.split(" ")
        if word in tokens:
            return " ".join(other if token == word else token for token in tokens)
    return None


LENGTH_IN_THE_NOUN = ("shorts", "jeans", "trousers")  # the noun already says how long


def _modifier_options(row: pd.Series, slot: str, columns: set[str], noun: str) -> list[tuple[str, str]]:
    options = []
    for kind in (*SLOT_KINDS[slot], *IMAGE_KINDS):
        if kind == "length" and noun in LENGTH_IN_THE_NOUN:
            continue
        column = column_of(slot, kind)
        value = row[column] if column in columns else None
        if value is not None and value in WORDS.get(kind, {}):
            options.append((kind, value))
    return sorted(options, key=lambda option: KIND_ORDER.index(option[0]))


def count_combinations(attributes: pd.DataFrame, size: int) -> Counter:
    """Every combination of `size` attributes (noun + size-1 modifiers) shown by some image, with the
    number of images relevant to it; each relevant image adds one, so the counts are exact."""
    columns = set(available_columns(attributes))
    counts: Counter = Counter()
    if "category" not in columns:
        return counts
    for (_, row), nouns in zip(attributes.iterrows(), nouns_of(attributes)):
        for noun in nouns:
            options = _modifier_options(row, NOUNS[noun][0], columns, noun)
            for chosen in combinations(options, size - 1):
                counts[Combination(noun, tuple(chosen))] += 1
    return counts


def sample(counts: Counter, min_relevant: int, max_queries: int, seed: int) -> list[Combination]:
    """The combinations with at least `min_relevant` relevant images, at most `max_queries` of them (seeded)."""
    eligible = sorted((c for c, n in counts.items() if n >= min_relevant), key=Combination.key)
    if len(eligible) <= max_queries:
        return eligible
    chosen = np.random.default_rng(seed).choice(len(eligible), size=max_queries, replace=False)
    return [eligible[i] for i in sorted(chosen)]


@dataclass
class Family:
    """Queries of one family: each combination with its phrasings."""

    name: str
    combinations: list[Combination]
    texts: list[list[str]]  # per combination, its phrasings

    def flat(self) -> tuple[list[str], list[int]]:
        """All phrasings, and the combination each belongs to."""
        texts = [text for group in self.texts for text in group]
        owners = [i for i, group in enumerate(self.texts) for _ in group]
        return texts, owners


def build_families(attributes: pd.DataFrame, min_relevant: int, max_queries: int, seed: int) -> list[Family]:
    """The 1-, 2- and 3-attribute families and the robustness families, from the gallery's attributes."""
    families = []
    counts = {size: count_combinations(attributes, size) for size in (1, 2, 3)}
    for size in (1, 2, 3):
        chosen = sample(counts[size], min_relevant, max_queries, seed + size)
        if chosen:
            families.append(Family(f"{size}_attribute{'s' * (size > 1)}", chosen, [phrasings(c) for c in chosen]))
    for name, words in (("synonyms", SYNONYMS), ("unseen_words", UNSEEN)):
        pool = Counter({c: n for size in (1, 2) for c, n in counts[size].items()
                        if substituted(phrasings(c)[0], words) is not None})
        chosen = sample(pool, min_relevant, max_queries, seed + len(name))
        if chosen:
            families.append(Family(name, chosen, [[substituted(phrasings(c)[0], words)] for c in chosen]))
    negations = _negations(attributes)
    chosen = sample(negations, min_relevant, max_queries, seed + 7)
    if chosen:
        families.append(Family("negation", chosen, [[negation_phrasing(c)] for c in chosen]))
    return families


def _negations(attributes: pd.DataFrame) -> Counter:
    """Combinations the negation family phrases, with their relevant counts."""
    columns = set(available_columns(attributes))
    counts: Counter = Counter()
    for noun, (slot, _) in NOUNS.items():
        candidates = []
        if "sleeve" in SLOT_KINDS[slot] and "sleeve" in columns:
            candidates.append(Combination(noun, (("sleeve", "sleeveless"),)))
        if column_of(slot, "pattern") in columns:
            candidates.append(Combination(noun, (("pattern", "pure color"),)))
        if column_of(slot, "colour") in columns:
            present = attributes.loc[noun_mask(attributes, noun), column_of(slot, "colour")]
            candidates += [Combination(noun, (), ("colour", colour)) for colour in sorted(present.dropna().unique())]
        for combination in candidates:
            counts[combination] = int(relevant(attributes, combination).sum())
    return counts


# ---------------------------------------------------------------- measuring


def query_measures(scores: np.ndarray, relevance: np.ndarray, binding: np.ndarray,
                   k: int = 10, recall_depth: int = 50) -> dict[str, float]:
    """precision@k, nDCG@k (binary gain), recall@recall_depth and binding errors@k of one query."""
    order = pessimistic_order(scores, relevance)
    top = relevance[order[:k]]
    total = int(relevance.sum())
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = discounts[:min(k, total)].sum()
    return {
        f"precision_at_{k}": float(top.sum() / k),
        f"ndcg_at_{k}": float((top * discounts[:len(top)]).sum() / ideal) if ideal > 0 else 0.0,
        f"recall_at_{recall_depth}": float(relevance[order[:recall_depth]].sum() / total) if total else 0.0,
        f"binding_errors_at_{k}": float(binding[order[:k]].sum() / k),
    }


def chance_measures(relevant_count: int, gallery: int, k: int = 10, recall_depth: int = 50) -> dict[str, float]:
    """What a random order scores in expectation: each position is relevant with probability R/N."""
    p = relevant_count / gallery
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = discounts[:min(k, relevant_count)].sum()
    return {f"precision_at_{k}": p, f"ndcg_at_{k}": float(p * discounts[:min(k, gallery)].sum() / ideal),
            f"recall_at_{recall_depth}": min(recall_depth, gallery) / gallery}


ScoreFn = Callable[[list[str]], torch.Tensor]  # query texts -> (Q, N) scores over the gallery


@dataclass
class FamilyResult:
    name: str
    per_combination: dict[str, list[float]]  # measure -> one value per combination (its phrasings averaged)
    base_rate: float
    chance: dict[str, float]
    ceiling: float = 1.0  # precision@10 of a perfect ranker: min(10, relevant) / 10, over combinations


def measure_family(family: Family, attributes: pd.DataFrame, scores: torch.Tensor) -> FamilyResult:
    """Every measure of one family from the (phrasings × gallery) scores."""
    texts, owners = family.flat()
    if scores.shape != (len(texts), len(attributes)):
        raise ValueError(f"scores {tuple(scores.shape)} do not match {len(texts)} queries × {len(attributes)} images")
    values = scores.float().numpy()
    per_query: list[dict[str, float]] = []
    masks = [(relevant(attributes, c), binding_errors(attributes, c)) for c in family.combinations]
    for row, owner in zip(values, owners):
        per_query.append(query_measures(row, *masks[owner]))
    per_combination: dict[str, list[float]] = {name: [] for name in per_query[0]}
    for index in range(len(family.combinations)):
        rows = [m for m, owner in zip(per_query, owners) if owner == index]
        for name in per_combination:
            per_combination[name].append(float(np.mean([m[name] for m in rows])))
    counts = [int(mask.sum()) for mask, _ in masks]
    chances = [chance_measures(n, len(attributes)) for n in counts]
    chance = {name: float(np.mean([c[name] for c in chances])) for name in chances[0]}
    ceiling = float(np.mean([min(10, n) / 10 for n in counts]))
    return FamilyResult(family.name, per_combination, float(np.mean(counts) / len(attributes)), chance, ceiling)


def unseen_in_training(family: Family, training: pd.DataFrame | None) -> list[bool]:
    """Whether no training image shows the combination (so no training text can have said it)."""
    if training is None:
        return [False] * len(family.combinations)
    return [not relevant(training, c).any() for c in family.combinations]


def unstated_in_short_texts(family: Family, stated: pd.DataFrame | None) -> list[bool]:
    """Whether no short training text states the whole combination: each alt text's stated attributes
    (data/alt_text.py records them) read as a row of attributes, judged by the protocol's relevance rule.
    Captions state every labelled attribute of their image, so only the short texts can leave a
    combination unsaid while its attributes are each said elsewhere."""
    if stated is None or stated.empty:
        return [False] * len(family.combinations)
    return [not relevant(stated, c).any() for c in family.combinations]


def _subset_figures(result: FamilyResult, chosen: list[bool]) -> dict[str, float | int]:
    return {"combinations": int(sum(chosen)),
            **{name: float(np.mean([v for v, c in zip(result.per_combination[name], chosen) if c]))
               for name in ("precision_at_10", "ndcg_at_10")}}


def all_phrasings(families: Iterable[Family]) -> list[str]:
    return [text for family in families for text in family.flat()[0]]


HEADLINE_FAMILIES = ("2_attributes", "3_attributes")


# ---------------------------------------------------------------- one model, every family


MEASURES = ("precision_at_10", "ndcg_at_10", "recall_at_50", "binding_errors_at_10")


@dataclass
class ShopperResult:
    metrics: dict  # for metrics/evaluate.json: headline and families
    per_combination: dict[str, dict[str, list[float]]]  # family -> measure -> values (for paired differences)
    scores: torch.Tensor | None = None  # (every family's phrasings × gallery) ranking scores, for the TREC runs


def evaluate_families(families: Sequence[Family], attributes: pd.DataFrame, scores_for: ScoreFn, seed: int,
                      training: pd.DataFrame | None = None, stated: pd.DataFrame | None = None) -> ShopperResult:
    """Every family's measures with a bootstrap interval over combinations, the base rate and chance
    beside them, the combinations no training image shows, those no short training text states together
    (`stated`: one row of stated attributes per alt text) against those one does, and the headline
    (2- and 3-attribute mean)."""
    texts = all_phrasings(families)
    scores = scores_for(texts) if texts else torch.empty(0, len(attributes))
    metrics: dict = {"families": {}}
    per_combination: dict[str, dict[str, list[float]]] = {}
    start = 0
    results = []
    for family in families:
        count = len(family.flat()[0])
        result = measure_family(family, attributes, scores[start:start + count])
        start += count
        results.append(result)
        per_combination[family.name] = result.per_combination
        entry: dict = {"combinations": len(family.combinations), "queries": count, "base_rate": result.base_rate,
                       **{f"chance_{name}": value for name, value in result.chance.items()},
                       "ceiling_precision_at_10": result.ceiling}
        for name in MEASURES:
            interval = bootstrap_mean(result.per_combination[name], seed)
            entry[name] = interval["mean"]
            if name in ("precision_at_10", "ndcg_at_10"):
                entry[f"{name}_low"], entry[f"{name}_high"] = interval["low"], interval["high"]
        unseen = unseen_in_training(family, training)
        if any(unseen):
            entry["unseen_in_training"] = _subset_figures(result, unseen)
        unstated = unstated_in_short_texts(family, stated)
        if any(unstated):
            entry["unstated_in_short_texts"] = _subset_figures(result, unstated)
            if not all(unstated):
                entry["stated_in_short_texts"] = _subset_figures(result, [not u for u in unstated])
        metrics["families"][family.name] = entry
    headline = [r for r in results if r.name in HEADLINE_FAMILIES]
    if headline:
        metrics["headline"] = {"base_rate": float(np.mean([r.base_rate for r in headline])),
                               "chance_precision_at_10": float(np.mean([r.chance["precision_at_10"] for r in headline])),
                               "ceiling_precision_at_10": float(np.mean([r.ceiling for r in headline]))}
        for name in MEASURES:
            interval = bootstrap_mean_of_groups([r.per_combination[name] for r in headline], seed)
            metrics["headline"][name] = interval["mean"]
            if name in ("precision_at_10", "ndcg_at_10"):
                metrics["headline"][f"{name}_low"] = interval["low"]
                metrics["headline"][f"{name}_high"] = interval["high"]
    return ShopperResult(metrics, per_combination, scores)


def parse_query(text: str) -> Combination | None:
    """The combination a free-text query names, when every attribute word it uses is known:
    "denim shorts" -> shorts + denim; "a woman wearing a hat" -> women + hat. For marking grid results."""
    words = " " + " ".join(text.lower().replace(",", " ").split()) + " "
    noun = next((n for n in sorted(NOUNS, key=len, reverse=True) if f" {n} " in words or f" {n}s " in words), None)
    if noun is None and " shirt " in words:
        noun = "top"
    modifiers = []
    for kind in KIND_ORDER:
        if kind == "gender":
            value = "women" if re.search(r"\b(woman|women|women's|lady)\b", words) else (
                "men" if re.search(r"\b(man|men|men's|gentleman)\b", words) else None)
        else:
            value = next((v for v, w in WORDS.get(kind, {}).items()
                          if f" {w.replace('with a ', '').replace('with ', '')} " in words), None)
        if value is not None and (noun is None or kind in (*SLOT_KINDS[NOUNS[noun][0]], *IMAGE_KINDS)):
            modifiers.append((kind, value))
    if noun is None and not modifiers:
        return None
    return Combination(noun, tuple(modifiers))
