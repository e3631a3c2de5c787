"""`postgres`: a DSN of the session's one real PostgreSQL server (see fixtures_sink_db.py).

The SQL export's parity tests and the score sink share the server: one cluster per session,
started and stopped by `sink_postgres`, password authentication on 127.0.0.1.
"""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(scope="session")
def postgres(sink_postgres: Any) -> str:
    return str(sink_postgres.url)
