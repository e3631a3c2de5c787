"""Fetch the pinned jars (Kafka broker, Spark connectors, test HDFS) with Maven into the cache."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

from scorestream.errors import StackError
from scorestream.paths import DEPS_DIR, cache_dir

BUNDLES = {
    "kafka-broker": "the Apache Kafka broker and its runtime dependencies",
    "spark-connectors": "Spark's Kafka and Avro connectors",
    "sqlite-jdbc": "the SQLite JDBC driver (batch-score --jdbc-url jdbc:sqlite:...)",
    "hadoop-minicluster": "a single-node HDFS (MiniDFSCluster) for the integration tests",
    "schema-registry": "the Apicurio Schema Registry server (the test suite's registry)",
}
# Bundles that are an archive to unpack (a server's distribution), not jars to copy.
UNPACKED = {"schema-registry"}
# Fetched by the tests that need them, not by `make jars` (158 MB the demo does not use).
TEST_ONLY = {"schema-registry", "hadoop-minicluster"}
_VERSIONED = re.compile(r"^(?P<name>.+?)-\d[\w.\-]*\.jar$")


def _pom(bundle: str) -> Path:
    if bundle not in BUNDLES:
        msg = f"unknown jar bundle {bundle!r}; expected one of {sorted(BUNDLES)}"
        raise StackError(msg)
    return DEPS_DIR / bundle / "pom.xml"


def bundle_dir(bundle: str, cache: Path | None = None) -> Path:
    """The cache folder for a bundle, named by the hash of its pom so a new pin refetches."""
    digest = hashlib.sha256(_pom(bundle).read_bytes()).hexdigest()[:12]
    return (cache or cache_dir()) / "jars" / f"{bundle}-{digest}"


def require_tool(tool: str, what: str) -> str:
    """The path of `tool`, or a StackError saying what it is needed for."""
    path = shutil.which(tool)
    if path is None:
        msg = f"{tool} is not on PATH; it is needed {what}"
        raise StackError(msg)
    return path


def ensure(bundle: str, cache: Path | None = None, quiet: bool = False) -> Path:
    """Resolve the bundle with Maven once; return the folder holding its jars."""
    target = bundle_dir(bundle, cache)
    stamp = target / ".complete"
    if stamp.exists():
        return target
    mvn = require_tool("mvn", f"to fetch {BUNDLES[bundle]} from Maven Central")
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    if not quiet:
        print(f"fetching {BUNDLES[bundle]} with Maven into {target} ...", file=sys.stderr)
    cmd = [
        mvn,
        "-B",
        "-q",
        "-f",
        str(_pom(bundle)),
        "dependency:unpack-dependencies" if bundle in UNPACKED else "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={partial}",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        msg = f"Maven could not fetch {BUNDLES[bundle]} (exit {result.returncode}):\n{tail}"
        raise StackError(msg)
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    stamp.write_text("ok\n", encoding="utf-8")
    return target


def artifact_name(jar: Path) -> str:
    """`kafka-clients-3.9.1.jar` -> `kafka-clients`."""
    match = _VERSIONED.match(jar.name)
    return match.group("name") if match else jar.stem


def spark_connector_jars(cache: Path | None = None) -> list[Path]:
    """Connector jars to add to Spark, minus artifacts pyspark already ships (no duplicates)."""
    import pyspark

    shipped = {artifact_name(j) for j in (Path(pyspark.__file__).parent / "jars").glob("*.jar")}
    folder = ensure("spark-connectors", cache)
    return sorted(j for j in folder.glob("*.jar") if artifact_name(j) not in shipped)


def main() -> None:
    """`python -m scorestream.jars`: fetch every bundle a user needs (used by `make jars`)."""
    for bundle in BUNDLES:
        if bundle not in TEST_ONLY:
            print(ensure(bundle))


if __name__ == "__main__":
    main()
