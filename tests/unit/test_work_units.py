"""How the integration tests are cut into work units and ordered for the workers."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import work_units

ROOT = Path("tests/integration")


class FakeItem:
    """What work_units reads of a pytest.Item: node id, path, fixtures and their scopes."""

    def __init__(self, nodeid: str, fixtures: dict[str, str] | None = None) -> None:
        self.nodeid = f"tests/integration/{nodeid}"
        self.path = ROOT / nodeid.split("::")[0]
        fixtures = fixtures or {}
        self.fixturenames = list(fixtures)
        defs = {name: [SimpleNamespace(scope=scope)] for name, scope in fixtures.items()}
        self._fixtureinfo = SimpleNamespace(name2fixturedefs=defs)
        self.markers: list[Any] = []

    def get_closest_marker(self, name: str) -> Any:
        return next((m for m in self.markers if m.name == name), None)

    def add_marker(self, marker: Any) -> None:
        self.markers.append(marker.mark)

    @property
    def group(self) -> str:
        return str(self.get_closest_marker("xdist_group").args[0])


def items() -> list[FakeItem]:
    return [
        FakeItem("test_a.py::test_short", {"kafka": "session"}),
        FakeItem("test_a.py::test_long", {"kafka": "session"}),
        FakeItem("test_b.py::test_one", {"env": "module"}),
        FakeItem("test_b.py::test_two", {"env": "module"}),
        FakeItem("test_c.py::test_x", {"estimator_registry": "session"}),
        FakeItem("test_d.py::test_y", {"postgres": "session"}),
        FakeItem("test_e.py::test_new"),
        FakeItem("test_e.py::test_param[a@b]"),
    ]


def test_units_are_files_with_module_fixtures_the_shared_group_or_single_tests() -> None:
    found = items()
    work_units.order(found, recorded={})  # type: ignore[arg-type]
    groups = {i.nodeid.split("/")[-1]: i.group for i in found}
    assert groups == {
        "test_a.py::test_short": "test_a.py::test_short",
        "test_a.py::test_long": "test_a.py::test_long",
        "test_b.py::test_one": "test_b",
        "test_b.py::test_two": "test_b",
        "test_c.py::test_x": work_units.SHARED_GROUP,
        "test_d.py::test_y": work_units.SHARED_GROUP,
        "test_e.py::test_new": "test_e.py::test_new",
        "test_e.py::test_param[a@b]": "test_e.py::test_param(a_b)",
    }
    # pytest-xdist reads the group back from "<node id>@<group>": it must come out whole.
    for item in found:
        tagged = f"{item.nodeid}@{item.group}"
        assert work_units.without_group(tagged) == item.nodeid


def test_longest_unit_first_and_an_unrecorded_test_counts_as_the_median() -> None:
    recorded = {
        "test_a.py::test_short": 5.0,
        "test_a.py::test_long": 300.0,
        "test_b.py::test_one": 60.0,
        "test_b.py::test_two": 70.0,  # the file's unit: 130 s
        "test_c.py::test_x": 20.0,
        "test_d.py::test_y": 30.0,  # the shared unit: 50 s
        "test_e.py::test_param[a@b]": 1.0,
    }  # median 30 s for test_e.py::test_new
    found = items()
    work_units.order(found, recorded=recorded)  # type: ignore[arg-type]
    order = [i.nodeid.split("/")[-1] for i in found]
    assert order == [
        "test_a.py::test_long",  # 300
        "test_b.py::test_one",  # 130, in collection order within the unit
        "test_b.py::test_two",
        "test_c.py::test_x",  # 50
        "test_d.py::test_y",
        "test_e.py::test_new",  # 30
        "test_a.py::test_short",  # 5
        "test_e.py::test_param[a@b]",  # 1
    ]


def test_an_explicit_group_is_kept() -> None:
    found = items()
    mine, other = found[0], found[1]
    mine.markers.append(pytest.mark.xdist_group("mine").mark)
    work_units.order(found, recorded={})  # type: ignore[arg-type]
    assert (mine.group, other.group) == ("mine", "test_a.py::test_long")


def test_the_recorder_sums_phases_and_keeps_other_entries(tmp_path: Path) -> None:
    (tmp_path / "test_a.py").write_text("")
    path = tmp_path / "durations.json"
    path.write_text(json.dumps({"test_a.py::test_old": 9.0, "test_gone.py::test_z": 4.0}))
    recorder = work_units.DurationRecorder(path)
    for duration in (1.0, 2.5, 0.25):  # setup, call, teardown; pytest-xdist's group suffix
        nodeid = "tests/integration/test_a.py::test_long@test_a.py::test_long"
        report = SimpleNamespace(nodeid=nodeid, duration=duration)
        recorder.pytest_runtest_logreport(report)  # type: ignore[arg-type]
    recorder.pytest_sessionfinish(SimpleNamespace(config=SimpleNamespace()))  # type: ignore[arg-type]
    assert json.loads(path.read_text()) == {"test_a.py::test_long": 3.8, "test_a.py::test_old": 9.0}
    # A worker writes nothing: the controller gets every report.
    path.unlink()
    worker = SimpleNamespace(config=SimpleNamespace(workerinput={}))
    recorder.pytest_sessionfinish(worker)  # type: ignore[arg-type]
    assert not path.exists()


def test_the_group_suffix_is_taken_off_but_an_at_sign_in_a_parameter_stays() -> None:
    assert work_units.without_group("t.py::test[a@b]@shared") == "t.py::test[a@b]"
    assert work_units.without_group("t.py::test[a@b]") == "t.py::test[a@b]"
    assert work_units.without_group("t.py::test@t.py::test") == "t.py::test"
