"""Where scorestream keeps things: the jar cache outside git, and the data files it ships.

The Avro contracts (`schemas/`), the Maven poms (`deps/`) and the Grafana and Prometheus files
(`monitoring/`) are package data: they are read from the installed package, so a wheel
installed anywhere finds them (`importlib.resources`), not from a checkout beside it.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

PACKAGE = resources.files("scorestream")
# Installed wheels and checkouts are plain directories, so these are real paths (Maven and
# Spark are handed them as files).
SCHEMAS_DIR = Path(str(PACKAGE / "schemas"))
DEPS_DIR = Path(str(PACKAGE / "deps"))
STATE_ROOT = Path(".scorestream")  # local state (registry, checkpoints, stack) by default


def cache_dir(environ: os._Environ[str] | dict[str, str] | None = None) -> Path:
    """The download cache (jars): $SCORESTREAM_CACHE, else $XDG_CACHE_HOME/scorestream."""
    env = os.environ if environ is None else environ
    if env.get("SCORESTREAM_CACHE"):
        return Path(env["SCORESTREAM_CACHE"]).expanduser()
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "scorestream"
