"""What every stage script shares: clean failure messages and JSON outputs."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fashion_search.atomic import write_text
from fashion_search.config import ConfigError
from fashion_search.data.pairs import MissingInputError
from fashion_search.models.clip import ModelNotFoundError
from fashion_search.tracking import TrackingUnavailableError

USER_ERRORS = (ConfigError, MissingInputError, ModelNotFoundError, TrackingUnavailableError, ValueError)


def run(main: Callable[[], None]) -> None:
    """Run a stage; a problem the user can fix is one line on stderr and exit status 1, not a traceback."""
    try:
        main()
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None


def write_json(path: str | Path, data: Any) -> None:
    """Metrics files: sorted keys and a final newline, so reruns are byte-identical and diffs are small."""
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
