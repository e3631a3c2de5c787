"""Database URLs of the sink: PostgreSQL and SQLite, JDBC or native spelling, never shown
with their credentials."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from scorestream.errors import ConfigError

KINDS = ("postgresql", "sqlite")
_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
SPELLINGS = (
    "jdbc:postgresql://HOST:PORT/DB?user=U&password=P, postgresql://U:P@HOST:PORT/DB, "
    "jdbc:sqlite:/PATH or sqlite:///PATH"
)


@dataclass(frozen=True)
class Target:
    """A database to write to: its kind and what its driver connects with."""

    kind: str
    connect: str  # libpq URI (PostgreSQL) or a file path (SQLite); may hold a password
    password: str = ""

    def __repr__(self) -> str:
        return f"Target(kind={self.kind!r}, where={self.describe()!r})"

    __str__ = __repr__

    def describe(self) -> str:
        """Where the database is, without user or password (for logs and messages)."""
        if self.kind == "sqlite":
            return f"sqlite file {self.connect}"
        parts = urlsplit(self.connect)
        host = parts.hostname or "local socket"
        port = f":{parts.port}" if parts.port else ""
        return f"postgresql at {host}{port}{parts.path or '/'}"

    def scrub(self, text: str) -> str:
        """`text` (a driver's error message) with the password and the URL taken out."""
        text = text.replace(self.connect, "<database url>")
        return text.replace(self.password, "***") if self.password else text


def parse_url(url: str) -> Target:
    """The target of a database URL (see SPELLINGS); the message never repeats the URL."""
    text = url.strip()
    native = text.removeprefix("jdbc:")
    if native.startswith("sqlite:"):
        path = native.removeprefix("sqlite:")
        if path.startswith("//"):
            path = path[2:]  # sqlite:///abs/path -> /abs/path, sqlite://rel -> rel
        if not path:
            msg = f"a SQLite URL needs a file path; expected {SPELLINGS}"
            raise ConfigError(msg)
        return Target("sqlite", path)
    if native.startswith(("postgresql://", "postgres://")):
        parts = urlsplit(native)
        query = dict(parse_qsl(parts.query))
        password = parts.password or query.get("password", "")
        return Target("postgresql", native, password)
    scheme = native.split(":", 1)[0] if ":" in native else "(none)"
    msg = f"unsupported database URL scheme {scheme!r}; expected {SPELLINGS}"
    raise ConfigError(msg)


def check_table(name: str) -> str:
    """A table name we can quote safely: `name` or `schema.name`, letters, digits and _."""
    if not _TABLE.match(name):
        msg = (
            f"table name {name!r} is not usable; expected letters, digits and _ "
            "(optionally schema.table), starting with a letter or _"
        )
        raise ConfigError(msg)
    return name
