"""The Python API: `import scorestream` is cheap, every public name resolves, and the names
type checkers see are the names the module serves."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import scorestream

INIT = Path(scorestream.__file__)


def test_import_starts_nothing_heavy() -> None:
    code = (
        "import sys, scorestream; "
        "print(sorted(m for m in ('pyspark', 'confluent_kafka') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"


def test_every_public_name_resolves_to_its_module() -> None:
    for name, module in scorestream._API.items():
        value = getattr(scorestream, name)
        assert getattr(value, "__module__", module).startswith("scorestream"), name
    assert set(dir(scorestream)) == set(scorestream.__all__)


def test_type_checkers_see_the_names_the_module_serves() -> None:
    tree = ast.parse(INIT.read_text(encoding="utf-8"))
    (block,) = [n for n in tree.body if isinstance(n, ast.If)]  # `if TYPE_CHECKING:`
    typed = {
        (node.module, alias.asname or alias.name, alias.name)
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    served = {
        (module, name, scorestream._RENAMED.get(name, name))
        for name, module in scorestream._API.items()
    }
    assert typed == served
