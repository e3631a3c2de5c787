"""The built wheel is all a user needs (with Java and Maven): installed into a fresh venv outside
the checkout, it runs `--help` and the demo (which trains a model and scores a stream), reading
its data files from the package. A separate `train` run would start one more JVM for the same
training path the demo takes.

The fresh venv takes its third-party packages (pyspark & co.) from this test's environment
through a path entry, so the test needs no network; `pip check` then proves the wheel's declared
dependencies are what is installed. scorestream itself comes only from the wheel: the test
asserts every module and data file it loads lives in the new venv.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from scorestream.stack import free_port_block

ROOT = Path(__file__).resolve().parents[2]
PIP = (sys.executable, "-m", "pip")
NOT_SOURCES = (".git", ".venv", "build", ".scorestream", "*_cache", "__pycache__", "*.egg-info")


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(python of a fresh venv with the wheel installed, a work dir outside the checkout)."""
    base = tmp_path_factory.mktemp("wheel")
    # A copy of the sources (symlinks kept), so the build neither writes into the checkout nor
    # picks up a stale build/ there.
    source = base / "source"
    shutil.copytree(ROOT, source, symlinks=True, ignore=shutil.ignore_patterns(*NOT_SOURCES))
    dist = base / "dist"
    subprocess.run(
        [*PIP, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(source)],
        check=True,
        timeout=300,
    )
    (wheel,) = dist.glob("scorestream-*.whl")
    env_dir = base / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout.strip()
    )
    # The test environment's packages, after the venv's own (where the wheel goes).
    (site / "zz-test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [*PIP, "--python", str(python), "install", "-q", "--no-deps", str(wheel)],
        check=True,
        timeout=300,
    )
    work = base / "work"
    work.mkdir()
    return python, work


def _run(python: Path, work: Path, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{python.parent}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        [str(python), *args], cwd=work, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_wheel_installs_the_package_and_its_data_files(wheel_env: tuple[Path, Path]) -> None:
    python, work = wheel_env
    venv_root = python.parent.parent
    probe = _run(
        python,
        work,
        "-c",
        "import scorestream, scorestream.streaming.job, scorestream.monitoring.dashboard as d\n"
        "from scorestream.paths import SCHEMAS_DIR, DEPS_DIR\n"
        "print(scorestream.__file__); print(scorestream.streaming.job.__file__)\n"
        "print(sorted(p.name for p in SCHEMAS_DIR.glob('*.avsc')))\n"
        "print(sorted(p.parent.name for p in DEPS_DIR.glob('*/pom.xml')))\n"
        "print(d.HERE)",
        timeout=120,
    )
    assert probe.returncode == 0, probe.stderr
    package, job, schemas, poms, dashboards = probe.stdout.splitlines()
    for path in (package, job, dashboards):
        assert Path(path).is_relative_to(venv_root), path
    assert schemas == "['event.avsc', 'score.avsc']"
    assert {"kafka-broker", "spark-connectors"} <= set(ast.literal_eval(poms))
    assert (Path(dashboards) / "grafana" / "dashboards" / "scorestream.json").is_file()
    assert (Path(dashboards) / "prometheus" / "rules.yml").is_file()
    # The venv has no pip of its own: this environment's pip checks it.
    check = subprocess.run(
        [*PIP, "--python", str(python), "check"], capture_output=True, text=True, timeout=120
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "scorestream" not in check.stdout.replace("No broken requirements found.", "")


@pytest.mark.timeout(1200)  # a whole demo (broker, training, scorer) in fresh processes
def test_wheel_help_and_demo_run_outside_the_checkout(wheel_env: tuple[Path, Path]) -> None:
    python, work = wheel_env
    help_ = _run(python, work, "-m", "scorestream", "--help", timeout=60)
    assert help_.returncode == 0, help_.stderr
    for command in ("train", "score", "produce", "demo"):
        assert command in help_.stdout

    port = free_port_block(2)
    demo = _run(
        python,
        work,
        "-m",
        "scorestream",
        "demo",
        "--events",
        "1000",
        "--port",
        str(port),
        "--metrics-port",
        "0",
        timeout=900,
    )
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-3000:]
    summary = demo.stdout.strip().splitlines()[-1]
    assert summary.startswith("scored 1000/1000 events"), summary
    # The demo trained from the package's own data, and its state went to the work dir.
    registry = work / ".scorestream" / "registry"
    assert (registry / "versions" / "v1" / "metadata.json").is_file(), demo.stdout[-2000:]
