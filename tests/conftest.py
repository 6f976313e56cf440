"""What many test files share: the smallest CLIP worth training, and one way to edit params.yaml.

Test modules import these names (`from conftest import TINY_MODEL, write_params`): pytest puts this
folder on sys.path before it loads them. Scripts that tests run in a fresh interpreter spell their
settings out, since they cannot see this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from fashion_search.config import TinyModelSettings

REPO = Path(__file__).resolve().parents[1]
PARAMS = REPO / "params.yaml"

# One layer, 32 wide, 32-pixel images: trains and embeds in milliseconds on a CPU.
TINY_MODEL = TinyModelSettings(embed_dim=32, layers=1, heads=2, image_size=32, patch_size=8, vocab_size=300)

ParamKey = str | tuple[str, ...]  # "serve.model" or ("serve", "model")


def write_params(out: Path, changes: Mapping[ParamKey, Any] | None = None, source: Path = PARAMS) -> Path:
    """`source` (the repository's params.yaml) with `changes` applied, written to `out` (a file, or a
    folder to hold params.yaml). Round-trip YAML keeps comments and key order; a new key is added.

    Tests of how a YAML spelling parses (`1e-4`, `yes`, a quoted number) edit the text instead:
    a loaded and dumped value has lost its spelling."""
    yaml = YAML()
    params = yaml.load(source)
    for key, value in (changes or {}).items():
        keys = key.split(".") if isinstance(key, str) else key
        node = params
        for part in keys[:-1]:
            node = node[part]
        node[keys[-1]] = value
    path = out / "params.yaml" if out.is_dir() else out
    with path.open("w", encoding="utf-8") as stream:
        yaml.dump(params, stream)
    return path


def copy_project(repo: Path) -> Path:
    """The project's files as git would commit them (tracked, and untracked but not ignored), copied to `repo`."""
    import shutil
    import subprocess

    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout.split()
    for name in listed:
        if (REPO / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, repo / name)
    return repo


def commit_all(repo: Path) -> None:
    """`git init` (if needed) and one commit of everything in `repo`."""
    import subprocess

    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "project"]):
        subprocess.run([*git, *args], cwd=repo, check=True, capture_output=True)
