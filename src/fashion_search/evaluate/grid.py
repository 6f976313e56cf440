"""The report's Table 1 as a picture: the top images for fixed queries, one row per model."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and in CI
import matplotlib.pyplot as plt  # noqa: E402

from fashion_search.images import open_image  # noqa: E402

# One row: (model name, query, [(image path, score, matches), ...]); matches is True/False when the labels
# say whether the result shows what the query names (drawn as ✓/✗), None when they cannot tell.
GridRow = tuple[str, str, list[tuple[Path, float, bool | None]]]
MARKS = {True: "✓", False: "✗", None: ""}


def draw_grid(rows: list[GridRow], out: Path, columns: int = 5) -> None:
    """Write a PNG with one row per (query, model): label on the left, results with scores and, where the
    labels can tell, whether each matches the query."""
    figure, axes = plt.subplots(len(rows), columns + 1, figsize=(2.0 * (columns + 1), 2.6 * len(rows)),
                                squeeze=False)
    for (model, query, results), row_axes in zip(rows, axes):
        row_axes[0].axis("off")
        row_axes[0].text(0.0, 0.5, f"{model}\n\n" + textwrap.fill(f'"{query}"', 28), fontsize=8, va="center")
        for ax, slot in zip(row_axes[1:], range(columns)):
            ax.axis("off")
            if slot < len(results):
                path, score, matches = results[slot]
                ax.imshow(open_image(path).convert("RGB"))
                ax.set_title(f"#{slot + 1}  {score:.3f}  {MARKS[matches]}".rstrip(), fontsize=8,
                             color={True: "darkgreen", False: "firebrick"}.get(matches, "black"))
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    # No version stamp in the file: reruns stay byte-identical.
    figure.savefig(out, format="png", dpi=80, metadata={"Software": None})
    plt.close(figure)
