"""The sink's table: created when missing, written by one upsert per batch in one transaction.

PostgreSQL (psycopg) and SQLite (the standard library) share the statement: both have
`INSERT ... ON CONFLICT (event_id) DO UPDATE`. The update applies only when the incoming score
record is not older on its partition than the row's (scores are keyed by event id, so one
event's records share a partition): replaying the topic from an earlier offset rewrites the same
values and never moves a row back to an older score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from scorestream.sink.target import Target, check_table

COLUMNS = (
    "event_id",
    "score",
    "prediction",
    "model_version",
    "event_time",
    "scored_at",
    "kafka_partition",
    "kafka_offset",
)

_TYPES = {
    "postgresql": (
        "TEXT PRIMARY KEY",
        "DOUBLE PRECISION NOT NULL",
        "DOUBLE PRECISION",
        "INTEGER",
        "TIMESTAMPTZ",
        "TIMESTAMPTZ",
        "INTEGER NOT NULL",
        "BIGINT NOT NULL",
    ),
    "sqlite": (
        "TEXT PRIMARY KEY",
        "REAL NOT NULL",
        "REAL",
        "INTEGER",
        "TEXT",
        "TEXT",
        "INTEGER NOT NULL",
        "INTEGER NOT NULL",
    ),
}


@dataclass(frozen=True)
class Row:
    """One score record as a table row, with where it was on the topic."""

    event_id: str
    score: float
    prediction: float | None
    model_version: int | None
    event_time: str | None
    scored_at: str | None
    kafka_partition: int
    kafka_offset: int

    def values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, c) for c in COLUMNS)


def _quoted(table: str) -> str:
    return ".".join(f'"{part}"' for part in check_table(table).split("."))


class Table:
    """A connection to the target and the statements of one table."""

    def __init__(self, target: Target, table: str) -> None:
        self.target = target
        self.table = check_table(table)
        self._conn: Any = None
        mark = "%s" if target.kind == "postgresql" else "?"
        name = _quoted(table)
        updates = ", ".join(f"{c} = excluded.{c}" for c in COLUMNS[1:])
        self.upsert_sql = (
            f"INSERT INTO {name} AS cur ({', '.join(COLUMNS)}) "
            f"VALUES ({', '.join([mark] * len(COLUMNS))}) "
            f"ON CONFLICT (event_id) DO UPDATE SET {updates} "
            "WHERE excluded.kafka_partition <> cur.kafka_partition "
            "OR excluded.kafka_offset >= cur.kafka_offset"
        )
        columns = ", ".join(f"{c} {t}" for c, t in zip(COLUMNS, _TYPES[target.kind], strict=True))
        self.create_sql = f"CREATE TABLE IF NOT EXISTS {name} ({columns})"

    def connect(self) -> None:
        """Open the connection and create the table when it is missing."""
        self.close()
        if self.target.kind == "postgresql":
            import psycopg

            self._conn = psycopg.connect(self.target.connect, connect_timeout=10, autocommit=True)
        else:
            import sqlite3

            # Transactions by hand: BEGIN ... COMMIT around each batch.
            self._conn = sqlite3.connect(self.target.connect, timeout=30, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")  # readers do not block the sink
        self._run([(self.create_sql, None)])

    def upsert(self, rows: Sequence[Row]) -> None:
        """All rows in one transaction: committed together or not at all."""
        self._run([(self.upsert_sql, [r.values() for r in rows])])

    def _run(self, statements: Sequence[tuple[str, list[tuple[Any, ...]] | None]]) -> None:
        conn = self._conn
        if self.target.kind == "postgresql":
            with conn.transaction(), conn.cursor() as cur:
                for sql, params in statements:
                    if params is None:
                        cur.execute(sql)
                    else:
                        cur.executemany(sql, params)
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            for sql, params in statements:
                if params is None:
                    conn.execute(sql)
                else:
                    conn.executemany(sql, params)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    @staticmethod
    def retryable(exc: BaseException) -> bool:
        """Errors a reconnect may cure (connection lost, database locked or restarting)."""
        import sqlite3

        import psycopg

        return isinstance(exc, psycopg.OperationalError | sqlite3.OperationalError)
