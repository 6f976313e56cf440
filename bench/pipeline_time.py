"""Wall time of the default `dvc repro`, per stage, from scratch; prints JSON.

Each stage is forced in pipeline order (`dvc repro -f -s <stage>`), so the
numbers add up to a full run from nothing, including each stage's start-up.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from ruamel.yaml import YAML



def stages_in_order(root: Path) -> list[str]:
    """dvc.yaml lists its stages in pipeline order."""
    return list(YAML(typ="safe").load((root / "dvc.yaml").read_text())["stages"])


def main() -> None:
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    seconds = {}
    for stage in stages_in_order(root):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "dvc", "repro", "-f", "-s", stage], cwd=root, env=env, check=True,
                       stdout=subprocess.DEVNULL)
        seconds[stage] = round(time.perf_counter() - start, 1)
    print(json.dumps({"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                  "python": platform.python_version()},
                      "seconds": seconds, "total_seconds": round(sum(seconds.values()), 1)}, indent=2))


if __name__ == "__main__":
    main()
