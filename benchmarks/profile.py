"""Profiles of a contender in its steady state: Java Flight Recorder on its JVM and py-spy on
its Python driver, each summed up as the frames that hold the most samples.

The recording starts once the contender has written `warm` records (the first batch, with its
query start, code generation and JIT warm-up, is left out) and ends after `window` more. JFR is
started and dumped with `jcmd` on the running JVM (`JFR.start settings=profile`, about 1 %
overhead); py-spy samples the driver at 100 Hz without stopping it (`--nonblocking`) and
records only threads that run (no idle ones). Read a summary as "where the CPU of that process
went": `self` is the innermost frame of each sample, `inclusive` the frames anywhere on the
stack (a sample counts once per frame).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.measure import _children

PY_SPY_RATE = 100  # samples per second
STACK_DEPTH = 24  # JFR frames kept per sample (the innermost ones)
TOP = 12


def jvm_of(root: int) -> int | None:
    """The Spark driver JVM among `root`'s descendants (not the short-lived launcher JVM)."""
    tree, stack = _children(), [root]
    while stack:
        pid = stack.pop()
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"java" in cmdline.split(b"\0", 1)[0] and b"SparkSubmit" in cmdline:
            return pid
        stack.extend(tree.get(pid, ()))
    return None


def _jcmd(pid: int, *args: str) -> str:
    done = subprocess.run(
        ["jcmd", str(pid), *args], capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        msg = f"jcmd {pid} {' '.join(args)} failed ({done.returncode}): {done.stdout[-500:]}"
        raise RuntimeError(msg)
    return done.stdout


@dataclass
class Profiler:
    """JFR on the contender's JVM (if it has one) and py-spy on its Python process."""

    pid: int
    out: Path
    jvm: int | None = None
    _spy: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    errors: list[str] = field(default_factory=list)

    def start(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        self.jvm = jvm_of(self.pid)
        if self.jvm is not None:
            try:
                _jcmd(self.jvm, "JFR.start", "name=bench", "settings=profile")
            except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
                self.errors.append(f"JFR: {exc}")
                self.jvm = None
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        cmd = [spy, "record", "--pid", str(self.pid), "--rate", str(PY_SPY_RATE)]
        cmd += ["--format", "raw", "--nonblocking", "--output", str(self.out / "py-spy.txt")]
        try:
            # The child keeps its own copy of the log's descriptor; ours closes at once.
            with open(self.out / "py-spy.log", "wb") as log:
                self._spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
        except OSError as exc:
            self.errors.append(f"py-spy: {exc}")

    def stop(self) -> dict[str, Any]:
        """Dump and summarise both recordings."""
        result: dict[str, Any] = {"errors": self.errors}
        if self.jvm is not None:
            path = self.out / "jvm.jfr"
            try:
                _jcmd(self.jvm, "JFR.dump", "name=bench", f"filename={path}")
                _jcmd(self.jvm, "JFR.stop", "name=bench")
                result["jvm"] = jfr_summary(path)
            except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
                self.errors.append(f"JFR: {exc}")
        if self._spy is not None:
            with contextlib.suppress(ProcessLookupError):
                self._spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
            try:
                self._spy.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self._spy.kill()
                self._spy.wait(timeout=30)
            raw = self.out / "py-spy.txt"
            if raw.exists():
                result["python"] = pyspy_summary(raw.read_text(encoding="utf-8", errors="replace"))
            else:
                self.errors.append("py-spy wrote no profile; see py-spy.log")
        return result


def _shares(counts: Counter[str], total: int, top: int = TOP) -> list[list[Any]]:
    return [[name, round(n / total, 4)] for name, n in counts.most_common(top)] if total else []


_JFR_FRAME = re.compile(r"^    (?P<frame>[^\s(]+)\(")  # a stack frame, 4 spaces in: Class.method(
_THREAD = re.compile(r'sampledThread = "(?P<name>[^"]*)"')


def jfr_samples(text: str) -> Iterable[tuple[str, list[str]]]:
    """(thread, frames innermost first) of each jdk.ExecutionSample in `jfr print` output."""
    thread, inside = "", False
    frames: list[str] = []
    for line in text.splitlines():
        if line.startswith("jdk.ExecutionSample"):
            thread, frames, inside = "", [], True
        elif not inside:
            continue
        elif (m := _THREAD.search(line)) is not None:
            thread = re.sub(r"\d+", "N", m.group("name"))
        elif (f := _JFR_FRAME.match(line)) is not None:
            frames.append(f.group("frame"))
        elif line.startswith("}"):
            inside = False
            if frames:
                yield thread, frames


def jfr_summary(path: Path) -> dict[str, Any]:
    cmd = ["jfr", "print", "--events", "jdk.ExecutionSample", "--stack-depth", str(STACK_DEPTH)]
    done = subprocess.run(
        [*cmd, str(path)], capture_output=True, text=True, timeout=600, check=False
    )
    if done.returncode != 0:
        msg = f"jfr print {path} failed: {done.stderr[-500:]}"
        raise RuntimeError(msg)
    return summarise(jfr_samples(done.stdout))


def pyspy_samples(text: str) -> Iterable[tuple[str, list[str]]]:
    """(thread, frames innermost first) of py-spy's raw (collapsed) output, one per sample."""
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        for _ in range(int(count)):
            yield "", frames[::-1]


def pyspy_summary(text: str) -> dict[str, Any]:
    return summarise(pyspy_samples(text))


def summarise(samples: Iterable[tuple[str, list[str]]]) -> dict[str, Any]:
    own: Counter[str] = Counter()
    anywhere: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for thread, frames in samples:
        total += 1
        own[frames[0]] += 1
        anywhere.update(set(frames))
        threads[thread or "(all)"] += 1
    return {
        "samples": total,
        "self": _shares(own, total),
        "inclusive": _shares(anywhere, total),
        "threads": _shares(threads, total, 6),
    }
