"""What verifying a checkpoint's SHA-256 costs on load: hashing a ViT-B/32-sized weights file; prints JSON.

ViT-B/32 has 151.3 M parameters: 605 MB of float32 safetensors. The file is random bytes (SHA-256's
speed does not depend on content), written once, then hashed --repeats times with the function that
Checkpoint.save and load_checkpoint use. The first read may come from disk; the page cache serves the
rest, as it does for a model saved or loaded moments before.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from fashion_search.models.clip import file_sha256

VIT_B32_BYTES = 151_277_313 * 4  # parameters × float32


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bytes", type=int, default=VIT_B32_BYTES)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.safetensors"
        with path.open("wb") as stream:
            left = args.bytes
            while left:
                chunk = min(left, 64 << 20)
                stream.write(os.urandom(chunk))
                left -= chunk
        seconds = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            file_sha256(path)
            seconds.append(time.perf_counter() - start)
    median = statistics.median(seconds)
    print(json.dumps({"bytes": args.bytes, "seconds": [round(s, 3) for s in seconds], "median_s": round(median, 3),
                      "mb_per_s": round(args.bytes / median / 1e6, 1),
                      "cpu": platform.processor() or platform.machine(),
                      "cpus": os.cpu_count()}, indent=2))


if __name__ == "__main__":
    main()
