"""Where the project lives, also when DVC runs an experiment in a temporary copy."""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """The repository root: DVC_ROOT when DVC runs the stage, else the working directory.

    `dvc exp run --queue/--temp` runs stages in a copy of the repository but sets
    DVC_ROOT to the original root, so anything that must outlive the copy (the
    MLflow store) is anchored there.
    """
    return Path(os.environ.get("DVC_ROOT") or os.getcwd()).resolve()
