"""What every stage script and command shares: a user error is one line, not a traceback; a stage that DVC
runs records its wall time in metrics/timing.json."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from fashion_search.atomic import write_json
from fashion_search.errors import UserError

# Each stage's seconds from its last successful run, and their sum: what a full `dvc repro` costs. It changes
# at every run, so it lives apart from the metrics that reruns reproduce byte for byte.
TIMING_FILE = Path("metrics/timing.json")
_IMPORTED_AT = time.perf_counter()


def seconds_since_start() -> float:
    """Wall seconds since this process started (Linux: its start time in /proc against the boot clock, imports
    included), else, or where a container's clocks disagree, since this module was imported."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        seconds = time.clock_gettime(time.CLOCK_BOOTTIME) - int(fields[19]) / os.sysconf("SC_CLK_TCK")
        if seconds > 0:
            return seconds
    except (OSError, ValueError, IndexError, AttributeError):
        pass
    return time.perf_counter() - _IMPORTED_AT


def record_time(stage: str, seconds: float, path: Path = TIMING_FILE) -> None:
    """Put `stage`'s seconds into the timing file, keeping the other stages' latest, and the total."""
    try:
        previous = json.loads(path.read_text(encoding="utf-8"))["stages"]
        stages = {str(name): float(value) for name, value in previous.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        stages = {}  # none yet, or not ours to trust: start again
    stages[stage] = round(seconds, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {"pipeline_seconds": round(sum(stages.values()), 1), "stages": stages})


def run(main: Callable[[], None]) -> None:
    """Run a stage; a problem the user can fix is one line on stderr and exit status 1, not a traceback.

    Anything that is not a `UserError` is a bug and keeps its traceback. Under DVC (which names the stage in
    `DVC_STAGE`) a successful run records its time, once per stage: by rank 0 when torchrun started copies."""
    try:
        main()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    stage = os.environ.get("DVC_STAGE")
    if stage and os.environ.get("RANK", "0") == "0":
        record_time(stage, seconds_since_start())
