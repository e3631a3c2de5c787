"""A failure of Spark's code generator during the parity probe means "not compiled"; any
other failure is raised as it is."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from scorestream.models.compile import NotCompilable
from scorestream.models.parity import Parity, _generated

pytestmark = pytest.mark.unit

COMPILED: Any = SimpleNamespace(estimator="random_forest")


def _raise(exc: Exception) -> Parity:
    raise exc


@pytest.mark.parametrize(
    "text",
    [
        "org.codehaus.commons.compiler.CompileException: File 'generated.java', Line 16731",
        "ERROR CodeGenerator: Failed to compile the generated Java code.",
    ],
)
def test_a_code_generator_failure_is_not_compilable(text: str) -> None:
    with pytest.raises(NotCompilable, match="cannot generate code for the compiled random_forest"):
        _generated(lambda: _raise(RuntimeError(text)), COMPILED)


def test_another_failure_is_raised_as_it_is() -> None:
    with pytest.raises(RuntimeError, match="broker gone"):
        _generated(lambda: _raise(RuntimeError("broker gone")), COMPILED)


def test_a_passing_check_is_returned() -> None:
    parity = Parity(rows=1000, max_abs_diff=0.0, prediction_mismatches=0)
    assert _generated(lambda: parity, COMPILED) is parity
