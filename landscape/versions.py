"""Which code made a number: the landscape and torch versions and, in a git checkout, the commit."""

from __future__ import annotations

import functools
import platform
import subprocess
from pathlib import Path

GIT_TIMEOUT_S = 2.0  # a slow or hung git must not hold up a run


def _git(folder: Path, *args: str) -> str | None:
    """The output of ``git -C folder ARGS``, or None if git is absent, fails or times out."""
    try:
        done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True,
                              timeout=GIT_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """HEAD of the git checkout this package lives in (its own repository, not one it was copied into), or None."""
    root = Path(__file__).resolve().parent.parent
    top = _git(root, "rev-parse", "--show-toplevel")
    if not top or Path(top).resolve() != root:
        return None
    commit = _git(root, "rev-parse", "HEAD")
    return commit if commit and len(commit) == 40 else None


def versions() -> dict:
    """{'landscape', 'torch', 'python', 'git'}: stored in config.json and in every result's provenance."""
    import torch

    from . import __version__

    return {"landscape": __version__, "torch": torch.__version__, "python": platform.python_version(),
            "git": git_commit()}
