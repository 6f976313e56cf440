"""Published figures to put ours beside (kept free of heavy imports: the README table reads them)."""

# Zero-shot text-to-image figures on the full 42,537-image DeepFashion-MultiModal set, as published
# with Marqo-FashionCLIP (github.com/marqo-ai/marqo-FashionCLIP, results table; marqo.ai/blog/search-model-for-fashion,
# 2024-08-13). The leaderboard has no ViT-B/32 row: `fashion-search benchmark` gives it.
PUBLISHED_MARQO = {
    "FashionCLIP 2.0": {"recall_at_1": 0.003, "recall_at_10": 0.026, "mrr_at_10": 0.008},
    "Marqo-FashionCLIP": {"recall_at_1": 0.004, "recall_at_10": 0.024, "mrr_at_10": 0.009},
    "Marqo-FashionSigLIP": {"recall_at_1": 0.007, "recall_at_10": 0.031, "mrr_at_10": 0.015},
    "ViT-B-16 laion2b": {"recall_at_1": 0.005, "recall_at_10": 0.019, "mrr_at_10": 0.008},
    "ViT-B-16-SigLIP webli": {"recall_at_1": 0.007, "recall_at_10": 0.033, "mrr_at_10": 0.013},
}
PUBLISHED_GALLERY_SIZE = 42_537
