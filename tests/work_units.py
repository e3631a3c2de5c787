"""How the integration tests are spread over the pytest workers (`--dist loadgroup`).

Two workers share two cores, so the run ends when the busier one ends. Two things keep them
even:

- **Small work units.** A test file that has module-scoped fixtures runs on one worker (the
  fixture is set up once); the files that use a costly session fixture (SHARED_SESSION_FIXTURES)
  run together on one worker, so it is set up once in the whole run. Every other test is a unit
  of its own, so two long tests of one file can run side by side.
- **Longest first.** The units are queued by their expected duration, longest first (xdist
  hands them out in queue order when it is given `--no-loadscope-reorder`), so the last ones
  handed out are short and neither worker waits long for the other at the end. The expected
  durations are the seconds each test took in a recorded run (tests/integration/durations.json);
  a test not in it counts as the median of those that are.

`pytest --record-durations` writes the seconds of the tests it ran (setup, call and teardown,
summed) into that file, keeping the other tests' entries.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

DURATIONS = Path(__file__).parent / "integration" / "durations.json"

# Session fixtures that cost a minute to set up (three estimators trained, PostgreSQL started).
# Each pytest worker has its own session, so the files that use them run on one worker.
SHARED_SESSION_FIXTURES = frozenset({"estimator_registry", "postgres", "sink_postgres"})
SHARED_GROUP = "shared-session-fixtures"
# Fixture scopes that a file's tests share, so the file stays on one worker.
FILE_SCOPES = frozenset({"module", "class", "package"})


SOLO_NAME = str.maketrans("[]@", "()_")


def test_key(item: pytest.Item) -> str:
    """The key of a test in durations.json: its node id from the integration folder."""
    return key_of(item.nodeid)


def key_of(nodeid: str) -> str:
    """A node id as durations.json keys it: from the integration folder, without a group."""
    return without_group(nodeid).split("tests/integration/", 1)[-1]


def without_group(nodeid: str) -> str:
    """A node id without the `@<group>` pytest-xdist appends under `--dist loadgroup` (an `@`
    inside the parameters, before the last `]`, stays)."""
    at = nodeid.rfind("@")
    return nodeid[:at] if at > nodeid.rfind("]") else nodeid


def _scopes(item: pytest.Item) -> set[str]:
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return set()
    return {str(defs[-1].scope) for defs in info.name2fixturedefs.values() if defs}


def group_of(item: pytest.Item, shared_files: set[Path]) -> str:
    """The work unit of a test: the shared group, its file, or the test alone."""
    if item.path in shared_files:
        return SHARED_GROUP
    if _scopes(item) & FILE_SCOPES:
        return item.path.stem
    # The test's own id, with no "[", "]" or "@": pytest-xdist finds the group after the last
    # "@" that follows the last "]" of the node id.
    return test_key(item).translate(SOLO_NAME)


def expected_seconds(keys: list[str], recorded: dict[str, float]) -> dict[str, float]:
    """Each key's recorded seconds, or the median of the recorded ones when it has none."""
    default = statistics.median(recorded.values()) if recorded else 1.0
    return {k: recorded.get(k, default) for k in keys}


def read_durations(path: Path = DURATIONS) -> dict[str, float]:
    if not path.is_file():
        return {}
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return {str(k): float(v) for k, v in data.items()}


def order(items: list[pytest.Item], recorded: dict[str, float] | None = None) -> None:
    """Mark each item's group (xdist_group) and sort the items longest group first, in place;
    within a group the collection order stays."""
    recorded = read_durations() if recorded is None else recorded
    shared = {
        item.path
        for item in items
        if SHARED_SESSION_FIXTURES & set(getattr(item, "fixturenames", ()))
    }
    seconds = expected_seconds([test_key(i) for i in items], recorded)
    groups: dict[str, str] = {}
    totals: dict[str, float] = defaultdict(float)
    for item in items:
        marker = item.get_closest_marker("xdist_group")
        if marker is None:
            group = group_of(item, shared)
            item.add_marker(pytest.mark.xdist_group(group))
        else:
            group = str(marker.args[0] if marker.args else marker.kwargs.get("name"))
        groups[item.nodeid] = group
        totals[group] += seconds[test_key(item)]
    position = {item.nodeid: i for i, item in enumerate(items)}
    items.sort(key=lambda i: (-totals[groups[i.nodeid]], groups[i.nodeid], position[i.nodeid]))


class GroupCheck:
    """Stops the run when pytest-xdist did not carry the groups into the node ids: `--dist
    loadgroup` would then spread each group's tests over the workers without a word. Every
    test has a group (`order`), so every id a worker collected must end in `@<group>`."""

    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        if node.config.getvalue("dist") != "loadgroup":
            return
        lost = [nodeid for nodeid in ids if without_group(nodeid) == nodeid]
        if lost:
            msg = (
                f"pytest-xdist did not apply the xdist_group of {len(lost)} of {len(ids)} tests "
                f"(first: {lost[0]}); with pytest {pytest.__version__}, `--dist loadgroup` does "
                "not group (pytest-xdist#1386): install the pytest pyproject.toml asks for"
            )
            raise pytest.UsageError(msg)


class DurationRecorder:
    """Sums each test's setup, call and teardown seconds; writes durations.json at the end."""

    def __init__(self, path: Path = DURATIONS) -> None:
        self.path = path
        self.seconds: dict[str, float] = defaultdict(float)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.seconds[key_of(report.nodeid)] += report.duration

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if hasattr(session.config, "workerinput"):
            return  # a worker: the controller gets every report and writes the file
        # Merged into what was recorded before, so a run of some files updates only theirs;
        # the tests of files that are gone are dropped.
        here = self.path.parent
        before = read_durations(self.path)
        merged = {k: v for k, v in before.items() if (here / k.split("::")[0]).is_file()}
        merged.update({k: round(v, 1) for k, v in self.seconds.items()})
        data = dict(sorted(merged.items()))
        self.path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
