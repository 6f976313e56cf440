"""Stage tokenize: pair images with captions, tokenize with the model's tokenizer, truncate to 77."""

import argparse
from pathlib import Path

from fashion_search.atomic import atomic_path, write_json
from fashion_search.config import load_params, section
from fashion_search.data.pairs import build_pairs, caption_sharing, write_pairs
from fashion_search.stage import run
from fashion_search.text import build_tokenizer
from fashion_search.tokenize import pretrained_tokenizer, tokenize_pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--raw", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tokenizer-out", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True)
    parser.add_argument("--data-metrics", type=Path, required=True)
    args = parser.parse_args()
    params = load_params()
    model, text = section(params, "model"), section(params, "text")

    tokenizer = pretrained_tokenizer(model)
    pairs, counts = build_pairs(args.raw)
    if tokenizer is None:
        tokenizer = build_tokenizer(pairs["caption"], model.tiny.vocab_size, text.max_tokens)
    pairs, summary = tokenize_pairs(pairs, tokenizer, text.max_tokens, text.long_text)

    with atomic_path(args.tokenizer_out) as tmp:
        tokenizer.save_pretrained(tmp)
    write_pairs(pairs, args.out)
    write_json(args.data_metrics, {**counts.as_dict(), **caption_sharing(pairs["caption"])})
    write_json(args.metrics, summary)


if __name__ == "__main__":
    run(main)
