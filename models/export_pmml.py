"""PMML export through pyspark2pmml and JPMML-SparkML, which must be on Spark's classpath.

The JPMML-SparkML jars come from the pyspark2pmml wheel (PyPI), which ships the 3.3.x line
built for Spark 4.1. Maven Central, as reachable here, lacks the jpmml-sparkml parent POMs of
every version after 3.2.0, so the Maven route cannot resolve (see docs/models.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from scorestream.errors import ConfigError, ModelError

if TYPE_CHECKING:
    from pyspark.ml import PipelineModel
    from pyspark.sql import SparkSession

    from scorestream.models.registry import ModelVersion


def pmml_jars() -> list[Path]:
    """JPMML-SparkML and its dependencies, minus the artifacts pyspark already ships."""
    try:
        import pyspark2pmml
    except ImportError as exc:
        msg = "the pmml export needs pyspark2pmml: pip install 'scorestream[export]'"
        raise ConfigError(msg) from exc
    import pyspark

    from scorestream.jars import artifact_name

    shipped = {artifact_name(j) for j in (Path(pyspark.__file__).parent / "jars").glob("*.jar")}
    jars = [Path(j) for j in pyspark2pmml._jars(pyspark.__version__)]
    # the LightGBM/XGBoost converters probe for classes we never have and log stack traces
    extras = ("lightgbm", "xgboost", "ubjson")
    return sorted(
        j for j in jars if artifact_name(j) not in shipped and not any(e in j.name for e in extras)
    )


def spark_conf() -> tuple[tuple[str, str], ...]:
    """`spark.jars` with the connectors and the PMML converter, for SparkSettings.conf."""
    from scorestream.jars import spark_connector_jars

    jars = [*spark_connector_jars(), *pmml_jars()]
    return (("spark.jars", ",".join(str(j) for j in jars)),)


def export_pmml(
    spark: SparkSession, entry: ModelVersion, model: PipelineModel, output: Path
) -> Path:
    """Write the pipeline as PMML (inputs: the spec's features, typed as in training)."""
    from pyspark.sql.types import DoubleType, StringType, StructField, StructType
    from pyspark2pmml import PMMLBuilder

    spec = entry.spec
    schema = StructType(
        [StructField(n, DoubleType()) for n in spec.numeric_names]
        + [StructField(c, StringType()) for c in spec.categorical]
        + [StructField(spec.label, DoubleType())]
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        PMMLBuilder(schema, model).buildFile(str(output))
    except RuntimeError as exc:
        if "not found on classpath" not in str(exc):
            raise
        msg = (
            "JPMML-SparkML is not on this Spark session's classpath; start Spark with "
            "scorestream.models.export_pmml.spark_conf() (the CLI does)"
        )
        raise ConfigError(msg) from exc
    except Exception as exc:  # Py4J: keep the converter's first line
        first = str(exc).strip().splitlines()[0][:400] if str(exc).strip() else repr(exc)
        msg = f"JPMML-SparkML could not convert v{entry.version}: {first}"
        raise ModelError(msg) from exc
    return output


def pmml_scores(path: Path, frame: Any) -> Any:
    """Probability of the positive class per row of a pandas frame, by pypmml (PMML4S)."""
    try:
        from pypmml import Model
    except ImportError as exc:
        msg = "verifying a PMML file needs pypmml: pip install 'scorestream[export]'"
        raise ConfigError(msg) from exc
    model = Model.load(str(path))
    try:
        result = model.predict(frame[list(model.inputNames)])
    finally:
        model.close()
    return result["probability(1)"].to_numpy()
