"""A small expression tree for compiled models, rendered as SQL text in Spark, PostgreSQL or SQLite.

Only what a compiled pipeline needs: double literals, feature columns, sums, products, a
quotient, `exp`, comparisons and `CASE`. Every node is parenthesised when rendered, so no
dialect's operator precedence matters, and sums stay left-associative in the order written,
which is the order Spark adds in (floating-point addition is not associative).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scorestream.errors import ConfigError, ModelError

DIALECTS = ("postgres", "sqlite", "spark")


class Expr:
    """A double-valued expression."""


class Cond:
    """A boolean expression (never null: missing inputs make it false)."""


@dataclass(frozen=True)
class Lit(Expr):
    value: float


@dataclass(frozen=True)
class Imputed(Expr):
    """A numeric column with its missing values (null, NaN) replaced by `surrogate`."""

    column: str
    surrogate: float


@dataclass(frozen=True)
class Sum(Expr):
    terms: tuple[Expr, ...]


@dataclass(frozen=True)
class Mul(Expr):
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Div(Expr):
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Sigmoid(Expr):
    """1 / (1 + exp(-factor * margin)), Spark's arithmetic for the positive class."""

    margin: Expr
    factor: float = 1.0


@dataclass(frozen=True)
class Case(Expr):
    whens: tuple[tuple[Cond, Expr], ...]
    otherwise: Expr


@dataclass(frozen=True)
class Le(Cond):
    left: Expr
    threshold: float


@dataclass(frozen=True)
class Gt(Cond):
    left: Expr
    threshold: float


@dataclass(frozen=True)
class InLabels(Cond):
    """A string column holds one of `labels` (false when it is null)."""

    column: str
    labels: tuple[str, ...]


@dataclass(frozen=True)
class Not(Cond):
    inner: Cond


def case(cond: Cond | bool, then: Expr, otherwise: Expr) -> Expr:
    """CASE WHEN cond THEN then ELSE otherwise, folded when cond is a constant."""
    if cond is True:
        return then
    if cond is False:
        return otherwise
    assert isinstance(cond, Cond)
    return Case(((cond, then),), otherwise)


def total(terms: Sequence[Expr]) -> Expr:
    """The left-to-right sum of `terms` (0.0 for none)."""
    if not terms:
        return Lit(0.0)
    if len(terms) == 1:
        return terms[0]
    return Sum(tuple(terms))


# -- rendering -------------------------------------------------------------------------------
# Postgres and SQLite overflow differently in exp (Postgres raises "value out of range"), so the
# margin is clamped there: beyond +-700 the probability differs from Spark's by < 1e-300.
EXP_CLAMP = 700.0


def check_dialect(dialect: str) -> None:
    if dialect not in DIALECTS:
        msg = f"unknown SQL dialect {dialect!r}; expected one of {', '.join(DIALECTS)}"
        raise ConfigError(msg)


def quote_name(name: str, dialect: str) -> str:
    if dialect == "spark":
        return "`" + name.replace("`", "``") + "`"
    return '"' + name.replace('"', '""') + '"'


def _string(value: str, dialect: str) -> str:
    if dialect == "spark":  # Spark's parser reads backslash escapes in string literals
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return "'" + value.replace("'", "''") + "'"


def _number(value: float, dialect: str) -> str:
    if not math.isfinite(value):
        msg = f"the compiled model needs the non-finite constant {value!r}, which SQL cannot hold"
        raise ModelError(msg)
    text = repr(float(value))  # shortest text that reads back as the same double
    if dialect == "spark":
        return f"{text}D"  # a DOUBLE literal; without the suffix Spark reads a DECIMAL
    if dialect == "postgres":
        return f"'{text}'::float8"  # a bare literal is NUMERIC, whose sums round differently
    return text  # SQLite: a literal with '.' or an exponent is REAL


def render(node: Expr | Cond, dialect: str) -> str:
    """SQL text of `node` in `dialect`."""
    check_dialect(dialect)
    return _render(node, dialect)


def _render(node: Expr | Cond, d: str) -> str:
    if isinstance(node, Lit):
        return _number(node.value, d)
    if isinstance(node, Imputed):
        col = quote_name(node.column, d)
        missing = {
            "spark": f"{col} IS NULL OR isnan({col})",
            "postgres": f"{col} IS NULL OR {col} = 'NaN'::float8",
            "sqlite": f"{col} IS NULL",  # SQLite stores NaN as NULL
        }[d]
        return f"(CASE WHEN {missing} THEN {_number(node.surrogate, d)} ELSE {col} END)"
    if isinstance(node, Sum):
        return "(" + " + ".join(_render(t, d) for t in node.terms) + ")"
    if isinstance(node, Mul):
        return f"({_render(node.left, d)} * {_render(node.right, d)})"
    if isinstance(node, Div):
        return f"({_render(node.left, d)} / {_render(node.right, d)})"
    if isinstance(node, Sigmoid):
        margin = _render(node.margin, d)
        if node.factor != 1.0:
            margin = f"({_number(node.factor, d)} * {margin})"
        hi, lo = _number(EXP_CLAMP, d), _number(-EXP_CLAMP, d)
        if d == "postgres":
            margin = f"LEAST(GREATEST({margin}, {lo}), {hi})"
        elif d == "sqlite":
            margin = f"min(max({margin}, {lo}), {hi})"
        one = _number(1.0, d)
        return f"({one} / ({one} + exp(-({margin}))))"
    if isinstance(node, Case):
        whens = " ".join(f"WHEN {_render(c, d)} THEN {_render(v, d)}" for c, v in node.whens)
        return f"(CASE {whens} ELSE {_render(node.otherwise, d)} END)"
    if isinstance(node, Le):
        return f"({_render(node.left, d)} <= {_number(node.threshold, d)})"
    if isinstance(node, Gt):
        return f"({_render(node.left, d)} > {_number(node.threshold, d)})"
    if isinstance(node, InLabels):
        col = quote_name(node.column, d)
        if not node.labels:
            return "(1 = 0)"
        labels = ", ".join(_string(v, d) for v in node.labels)
        return f"({col} IS NOT NULL AND {col} IN ({labels}))"
    if isinstance(node, Not):
        return f"(NOT {_render(node.inner, d)})"
    msg = f"cannot render expression node {type(node).__name__}"
    raise ModelError(msg)
