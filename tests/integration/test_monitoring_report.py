"""`scorestream drift-report` on files of events (JSON lines, CSV, Parquet) against the registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from scorestream.cli import main
from scorestream.contract.synthetic import SPEC, Drift, iter_events
from scorestream.models.registry import Registry


def _rows(out: str) -> dict[str, tuple[str, float, float, str]]:
    table = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 6 and parts[1] in ("numeric", "categorical", "prediction"):
            table[parts[0]] = (parts[1], float(parts[2]), float(parts[3]), parts[5])
    return table


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_drift_report_from_a_file(
    fmt: str,
    spark: Any,
    trained_registry: Registry,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    events = list(iter_events(3_000, seed=31, drift=Drift(0, "amount", 3.0)))
    path = tmp_path / f"events.{fmt}"
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(e) + "\n" for e in events))
    elif fmt == "csv":
        pd.DataFrame(events).to_csv(path, index=False)
    else:
        pd.DataFrame(events).to_parquet(path)
    out_dir = tmp_path / "report"
    code = main(
        [
            "drift-report",
            str(path),
            "--registry",
            str(trained_registry.root),
            "--output",
            str(out_dir),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    table = _rows(out)
    assert set(table) == {*SPEC.feature_names, "score"}
    assert table["amount"][1] > 0.25 and table["amount"][3] == "act"
    for name in SPEC.feature_names:
        if name != "amount":
            assert table[name][1] < 0.1, (name, table[name])
    assert "3000 events vs " in out
    assert (out_dir / "drift-report.png").read_bytes().startswith(b"\x89PNG")
    assert "data:image/png;base64," in (out_dir / "drift-report.html").read_text()


def test_drift_report_errors_name_the_problem(
    spark: Any, trained_registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = str(trained_registry.root)
    assert main(["drift-report", str(tmp_path / "nope.jsonl"), "--registry", root]) == 2
    assert "nope.jsonl does not exist" in capsys.readouterr().err
    partial = tmp_path / "partial.jsonl"
    partial.write_text(json.dumps({"amount": 3.0}) + "\n")
    assert main(["drift-report", str(partial), "--registry", root]) == 2
    err = capsys.readouterr().err
    assert "lacks the feature columns" in err and "'country'" in err
    odd = tmp_path / "events.txt"
    odd.write_text("x\n")
    assert main(["drift-report", str(odd), "--registry", root]) == 2
    assert "cannot tell the format" in capsys.readouterr().err
