"""What every stage script and command shares: a user error is one line, not a traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable

from fashion_search.errors import UserError


def run(main: Callable[[], None]) -> None:
    """Run a stage; a problem the user can fix is one line on stderr and exit status 1, not a traceback.

    Anything that is not a `UserError` is a bug and keeps its traceback."""
    try:
        main()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
