"""Where scorestream keeps things outside git: the jar cache, the local state, the schemas."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SCHEMAS_DIR = REPO_ROOT / "schemas"
DEPS_DIR = REPO_ROOT / "deps"


def cache_dir(environ: os._Environ[str] | dict[str, str] | None = None) -> Path:
    """The download cache (jars): $SCORESTREAM_CACHE, else $XDG_CACHE_HOME/scorestream."""
    env = os.environ if environ is None else environ
    if env.get("SCORESTREAM_CACHE"):
        return Path(env["SCORESTREAM_CACHE"]).expanduser()
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "scorestream"
