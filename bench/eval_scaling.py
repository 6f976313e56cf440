"""Time and peak memory of the chunked ranking every measure uses, for galleries of 10k, 100k and 1M; prints JSON.

Random unit embeddings of dimension 128 (not CLIP's 512, for speed on a CPU; memory
per gallery entry scales with the dimension, the chunk's score block does not),
four entries per group (views of an item), 2,000 queries (the Marqo protocol's
count), Recall@1/@10 hits and best-relevant ranks in one pass. Each size runs in
its own process so that its peak resident memory (getrusage) is its own;
`working_mib` is the peak minus the memory held before ranking (gallery included),
i.e. what the chunked pass itself needs: it grows with chunk × gallery, while a
full query × gallery score matrix would need `full_matrix_mib`.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time

SIZES = (10_000, 100_000, 1_000_000)
DIM, QUERIES, VIEWS, CHUNK, KS = 128, 2_000, 4, 128, (1, 10)


def resident_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def one_size(size: int) -> dict[str, float]:
    import torch

    from fashion_search.evaluate.retrieval import group_ranks

    torch.set_num_threads(os.cpu_count() or 1)
    generator = torch.Generator().manual_seed(0)
    gallery = torch.nn.functional.normalize(torch.randn(size, DIM, generator=generator), dim=1)
    gallery_groups = torch.arange(size) // VIEWS
    sources = torch.randint(0, size, (QUERIES,), generator=generator)
    queries = torch.nn.functional.normalize(gallery[sources] + 0.5 * torch.randn(QUERIES, DIM, generator=generator), dim=1)
    before = resident_mib()
    start = time.perf_counter()
    ranking = group_ranks(queries, gallery, gallery_groups[sources], gallery_groups, CHUNK, KS)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"gallery": size, "seconds": round(seconds, 2), "peak_rss_mib": round(peak),
            "working_mib": round(peak - before), "gallery_mib": round(size * DIM * 4 / 2**20),
            "chunk_scores_mib": round(CHUNK * size * 4 / 2**20),
            "full_matrix_mib": round(QUERIES * size * 4 / 2**20),
            "recall_at_10": round(float((ranking.first <= 10).float().mean()), 4)}


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--size":
        print(json.dumps(one_size(int(sys.argv[2]))))
        return
    runs = [json.loads(subprocess.run([sys.executable, __file__, "--size", str(size)], check=True,
                                      capture_output=True, text=True).stdout) for size in SIZES]
    print(json.dumps({"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                  "processor": platform.processor() or platform.machine(),
                                  "python": platform.python_version()},
                      "settings": {"dim": DIM, "queries": QUERIES, "views_per_group": VIEWS, "chunk_size": CHUNK,
                                   "ks": list(KS)},
                      "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
