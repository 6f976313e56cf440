"""Errors whose message is the whole story: the user can fix the problem from the message alone.

`stage.run` prints these as one line and exits with status 1; every other exception
keeps its traceback, because it is a bug to report, not a setting to change.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with params, inputs, models or services that the message explains and says how to fix."""


class DataError(UserError, ValueError):
    """Data or a stage's output is not what the next stage needs; the message names the file and the fix."""


class UsageError(UserError, ValueError):
    """A command-line option that cannot work (a path that cannot be written, a missing file named)."""
