"""The drift report for people: reference against live distributions as a PNG and an HTML page."""

from __future__ import annotations

import base64
import html
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scorestream.monitoring.drift import EPSILON, PREDICTION, FeatureDrift
from scorestream.monitoring.reference import SCORE_KEY, ReferenceProfile
from scorestream.monitoring.window import WindowTotals

WATCH, ACT = 0.1, 0.25  # the usual PSI bands


@dataclass(frozen=True)
class ReportFiles:
    png: Path
    html: Path


def band(psi: float) -> str:
    """stable, watch or act by the usual PSI bands; n/a when there is nothing to compare."""
    if math.isnan(psi):
        return "n/a"
    return "act" if psi > ACT else "watch" if psi > WATCH else "stable"


def _fmt(edge: float) -> str:
    return f"{edge:.4g}"


def bin_labels(profile: ReferenceProfile, name: str) -> list[str]:
    """Human labels of a feature's bins (SCORE_KEY or PREDICTION for the score)."""
    if name in profile.categorical:
        return [*profile.categorical[name].categories, "unseen"]
    ref = profile.score if name in (SCORE_KEY, PREDICTION) else profile.numeric[name]
    edges = ref.edges
    if not edges:
        return ["all"]
    labels = [f"≤{_fmt(edges[0])}"]
    labels += [f"({_fmt(a)}, {_fmt(b)}]" for a, b in itertools.pairwise(edges)]
    labels.append(f">{_fmt(edges[-1])}")
    return labels


def _proportions(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total else np.zeros(counts.shape, dtype=np.float64)


def _pairs(
    profile: ReferenceProfile, totals: WindowTotals, report: Sequence[FeatureDrift]
) -> list[tuple[FeatureDrift, np.ndarray, np.ndarray]]:
    out = []
    for d in report:
        key = SCORE_KEY if d.kind == "prediction" else d.feature
        if d.kind == "prediction":
            ref = profile.score.counts
        elif d.kind == "categorical":
            ref = profile.categorical[d.feature].counts
        else:
            ref = profile.numeric[d.feature].counts
        live = totals.counts.get(key, np.zeros_like(ref))
        out.append((d, _proportions(ref), _proportions(live)))
    return out


def render_png(
    profile: ReferenceProfile,
    totals: WindowTotals,
    report: Sequence[FeatureDrift],
    path: Path,
    title: str,
) -> Path:
    """One bar chart per feature and one for the score: reference vs live share of each bin."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a display
    import matplotlib.pyplot as plt

    pairs = _pairs(profile, totals, report)
    cols = 3
    rows = max(1, math.ceil(len(pairs) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 3.6 * rows), squeeze=False)
    colours = {"act": "#c0392b", "watch": "#d68910", "stable": "#1e8449", "n/a": "#555555"}
    for ax, (d, ref, live) in zip(axes.flat, pairs, strict=False):
        x = np.arange(ref.size)
        ax.bar(x - 0.2, ref, width=0.4, label="reference (training)", color="#7f8c8d")
        ax.bar(x + 0.2, live, width=0.4, label="live", color="#2e86c1")
        labels = bin_labels(profile, PREDICTION if d.kind == "prediction" else d.feature)
        ax.set_xticks(x, labels, rotation=45, ha="right", fontsize=7)
        ax.set_ylabel("share of rows")
        name = "score (prediction)" if d.kind == "prediction" else d.feature
        ax.set_title(
            f"{name}: PSI {d.psi:.3f}, JS {d.js:.3f} ({band(d.psi)})",
            color=colours[band(d.psi)],
            fontsize=10,
        )
    for ax in list(axes.flat)[len(pairs) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def render_html(
    profile: ReferenceProfile,
    totals: WindowTotals,
    report: Sequence[FeatureDrift],
    png: Path,
    path: Path,
    title: str,
) -> Path:
    """A self-contained page: the table of drift values and the PNG embedded."""
    image = base64.b64encode(png.read_bytes()).decode("ascii")

    def ref_missing(d: FeatureDrift) -> float:
        if d.kind == "prediction":
            return profile.score.missing_rate
        if d.kind == "categorical":
            return profile.categorical[d.feature].missing_rate
        return profile.numeric[d.feature].missing_rate

    rows = "\n".join(
        "<tr class='{cls}'><td>{name}</td><td>{kind}</td><td>{psi:.4f}</td><td>{js:.4f}</td>"
        "<td>{miss:.2%}</td><td>{ref:.2%}</td><td>{band}</td></tr>".format(
            cls=band(d.psi).replace("/", ""),
            name=html.escape("score" if d.kind == "prediction" else d.feature),
            kind=d.kind,
            psi=d.psi,
            js=d.js,
            miss=d.missing_rate,
            ref=ref_missing(d),
            band=band(d.psi),
        )
        for d in report
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }}
td, th {{ padding: 4px 10px; border-bottom: 1px solid #ddd; }}
tr.act td {{ color: #c0392b; font-weight: bold; }} tr.watch td {{ color: #d68910; }}
img {{ max-width: 100%; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{totals.rows} live rows against {profile.rows} reference (training) rows.
PSI = &Sigma; (c &minus; r) &middot; ln(c / r) over the reference decile bins (categories plus an
"unseen" bucket for categorical features), with every empty-bin proportion replaced by
&epsilon; = {EPSILON:g}; Jensen-Shannon distance with log base 2, on exact proportions, in [0, 1].
Bands: PSI &lt; {WATCH} stable, {WATCH}&ndash;{ACT} watch, &gt; {ACT} act. Below about 1,000 rows
PSI is mostly noise.</p>
<table><tr><th>feature</th><th>kind</th><th>PSI</th><th>JS distance</th><th>missing (live)</th>
<th>missing (reference)</th><th>band</th></tr>
{rows}
</table>
<p><img alt="reference vs live distribution per feature" src="data:image/png;base64,{image}"></p>
</body></html>
"""
    path.write_text(page, encoding="utf-8")
    return path


def write_report(
    profile: ReferenceProfile,
    totals: WindowTotals,
    report: Sequence[FeatureDrift],
    out_dir: Path,
    title: str = "scorestream drift report",
) -> ReportFiles:
    """drift-report.png and drift-report.html in out_dir."""
    png = render_png(profile, totals, report, out_dir / "drift-report.png", title)
    page = render_html(profile, totals, report, png, out_dir / "drift-report.html", title)
    return ReportFiles(png, page)
