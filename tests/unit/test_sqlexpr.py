"""The compiled-model expression tree renders to SQL that SQLite evaluates like Python's math."""

from __future__ import annotations

import math
import sqlite3

import pytest

from scorestream.errors import ConfigError, ModelError
from scorestream.models.sqlexpr import (
    Case,
    Gt,
    Imputed,
    InLabels,
    Le,
    Lit,
    Mul,
    Not,
    Sigmoid,
    Sum,
    case,
    quote_name,
    render,
)

MARGIN = Sum(
    (
        Mul(Mul(Imputed("amount", 50.0), Lit(0.01)), Lit(0.7)),
        Case(((InLabels("cat", ("a", "it's")), Lit(-1.25)),), Lit(0.0)),
        Lit(0.1),
    )
)


def _python(amount: float | None, cat: str | None) -> float:
    x = 50.0 if amount is None else amount
    margin = x * 0.01 * 0.7 + (-1.25 if cat in ("a", "it's") else 0.0) + 0.1
    if -margin > 709.0:  # Java's exp overflows to infinity there, and Spark's score is 0
        return 0.0
    return 1.0 / (1.0 + math.exp(-margin))


@pytest.mark.parametrize(
    ("amount", "cat"),
    [(12.5, "a"), (None, "it's"), (3.0, None), (1e6, "b"), (-1e6, "a")],
)
def test_sqlite_evaluates_the_rendered_sigmoid_like_python(
    amount: float | None, cat: str | None
) -> None:
    db = sqlite3.connect(":memory:")
    db.execute('CREATE TABLE t (amount REAL, "cat" TEXT)')
    db.execute("INSERT INTO t VALUES (?, ?)", (amount, cat))
    (got,) = db.execute(f"SELECT {render(Sigmoid(MARGIN), 'sqlite')} FROM t").fetchone()
    assert got == pytest.approx(_python(amount, cat), abs=1e-15)


def test_unseen_slot_is_true_for_null_and_unknown_labels() -> None:
    db = sqlite3.connect(":memory:")
    unseen = case(Not(InLabels("c", ("x", "y"))), Lit(1.0), Lit(0.0))
    sql = f"SELECT {render(unseen, 'sqlite')} FROM (SELECT ? AS c)"
    assert [db.execute(sql, (v,)).fetchone()[0] for v in ("x", "z", None)] == [0.0, 1.0, 1.0]


def test_literals_keep_every_bit_and_their_type_per_dialect() -> None:
    value = 0.1 + 0.2
    assert render(Lit(value), "spark") == "0.30000000000000004D"
    assert render(Lit(value), "postgres") == "'0.30000000000000004'::float8"
    assert float(render(Lit(value), "sqlite")) == value
    assert render(Le(Imputed("a", 1.0), 2.0), "spark").count("isnan(`a`)") == 1
    assert "'NaN'::float8" in render(Gt(Imputed("a", 1.0), 2.0), "postgres")


def test_names_and_strings_are_quoted_per_dialect() -> None:
    assert quote_name('we"ird', "postgres") == '"we""ird"'
    assert quote_name("we`ird", "spark") == "`we``ird`"
    assert "'it\\'s'" in render(InLabels("c", ("it's",)), "spark")
    assert "'it''s'" in render(InLabels("c", ("it's",)), "sqlite")


def test_bad_dialect_and_non_finite_constants_are_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="'oracle'; expected one of postgres, sqlite, spark"):
        render(Lit(1.0), "oracle")
    with pytest.raises(ModelError, match="non-finite constant inf"):
        render(Lit(math.inf), "postgres")
