"""The drift report's PNG and HTML, rendered from numpy counts (no JVM)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scorestream.monitoring.drift import DriftWindow, build_profile_numpy, drift_report
from scorestream.monitoring.report import band, bin_labels, write_report

pytestmark = pytest.mark.unit


def _profile_and_window(shift: float):
    rng = np.random.default_rng(1)
    cols = {"amount": rng.lognormal(3, 1, 5000), "country": rng.choice(["DE", "FR"], 5000)}
    profile = build_profile_numpy(cols, ["amount"], ["country"], rng.random(5000))
    window = DriftWindow(max_rows=3000, sizes=profile.sizes())
    live = {
        "amount": rng.lognormal(3, 1, 3000) * shift,
        "country": rng.choice(["DE", "FR", "XX"], 3000),
    }
    window.add_batch(0.0, *profile.count_batch(live, rng.random(3000)))
    return profile, window


def test_bands_and_labels() -> None:
    assert [band(x) for x in (0.05, 0.1, 0.2, 0.3, float("nan"))] == [
        "stable",
        "stable",
        "watch",
        "act",
        "n/a",
    ]
    profile, _ = _profile_and_window(1.0)
    labels = bin_labels(profile, "amount")
    assert len(labels) == len(profile.numeric["amount"].counts) == 10
    assert labels[0].startswith("≤") and labels[-1].startswith(">")
    assert sorted(bin_labels(profile, "country")[:2]) == ["DE", "FR"]
    assert bin_labels(profile, "country")[2] == "unseen"


def test_report_files(tmp_path: Path) -> None:
    profile, window = _profile_and_window(3.0)
    report = drift_report(profile, window)
    files = write_report(profile, window.totals(), report, tmp_path / "out", "test report")
    png = files.png.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    page = files.html.read_text()
    assert "data:image/png;base64," in page and "test report" in page
    amount = next(d for d in report if d.feature == "amount")
    assert amount.psi > 0.25
    assert f"<td>amount</td><td>numeric</td><td>{amount.psi:.4f}</td>" in page
    assert "<tr class='act'><td>amount</td>" in page
    assert "ε" in page or "&epsilon; = 0.0001" in page
