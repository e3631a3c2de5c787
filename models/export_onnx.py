"""ONNX export through onnxmltools, with the fixes its Spark converters need to match Spark.

onnxmltools 1.16's Spark ML converters, as measured here against onnxruntime 1.31:
  * the imputer's Split node carries `split` as an attribute (opset < 13) while the graph needs
    opset 13, and the default domain is imported twice ("" and "ai.onnx"): onnxruntime rejects
    the graph. We move `split` to an input and keep one default-domain import.
  * the standard scaler's scale is 1/std, which is inf for a constant column; Spark uses 0.
  * the string indexer maps unseen strings to -1 (all-zero one-hot) while Spark's "keep" uses
    index len(labels). We set LabelEncoder's default to that index.
Inputs are float32 (numerics; NaN for missing) and string (categoricals; "" for missing).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scorestream.errors import ConfigError, ModelError

if TYPE_CHECKING:
    import numpy as np
    from pyspark.ml import PipelineModel
    from pyspark.sql import SparkSession

    from scorestream.models.registry import ModelVersion

OPSET = 13


def _require() -> None:
    try:
        import onnx  # noqa: F401
        import onnxmltools  # noqa: F401
    except ImportError as exc:
        msg = "the onnx export needs onnx and onnxmltools: pip install 'scorestream[export]'"
        raise ConfigError(msg) from exc


def unsupported_stages(model: PipelineModel) -> list[str]:
    """Class names of the stages onnxmltools has no converter for."""
    import onnxmltools.convert.sparkml  # noqa: F401  (registers the converters)
    from onnxmltools.convert.common._registration import _converter_pool

    missing = []
    for stage in model.stages:
        cls = type(stage)
        if f"{cls.__module__}.{cls.__name__}" not in _converter_pool:
            missing.append(cls.__name__)
    return missing


def _fix_graph(onx: Any, keep_indexers: list[int]) -> Any:
    """Make the converter's graph valid for opset 13 and equal to Spark (see module doc)."""
    import numpy as np
    from onnx import helper, numpy_helper

    main = max(o.version for o in onx.opset_import if o.domain in ("", "ai.onnx"))
    others = [o for o in onx.opset_import if o.domain not in ("", "ai.onnx")]
    del onx.opset_import[:]
    onx.opset_import.append(helper.make_opsetid("", main))
    onx.opset_import.extend(others)
    encoders = 0
    for node in onx.graph.node:
        if node.domain == "ai.onnx":
            node.domain = ""
        if node.op_type == "Split" and node.domain == "" and main >= 13:
            attrs = [a for a in node.attribute if a.name == "split"]
            if attrs:
                sizes = np.array(list(attrs[0].ints), dtype=np.int64)
                name = f"{node.name}_sizes"
                onx.graph.initializer.append(numpy_helper.from_array(sizes, name))
                node.input.append(name)
                node.attribute.remove(attrs[0])
        elif node.op_type == "Scaler":
            for attr in node.attribute:
                if attr.name == "scale":
                    fixed = [0.0 if math.isinf(s) or math.isnan(s) else s for s in attr.floats]
                    del attr.floats[:]
                    attr.floats.extend(fixed)
        elif node.op_type == "LabelEncoder":
            if encoders in keep_indexers:
                keys = next(a for a in node.attribute if a.name == "keys_strings")
                node.attribute.append(helper.make_attribute("default_int64", len(keys.strings)))
            encoders += 1
    return onx


def export_onnx(
    spark: SparkSession, entry: ModelVersion, model: PipelineModel, output: Path
) -> Path:
    """Convert the pipeline to ONNX, check the graph, write it to `output`."""
    _require()
    import onnx
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType, StringTensorType
    from pyspark.ml.feature import StringIndexerModel

    missing = unsupported_stages(model)
    if missing:
        msg = (
            f"the onnx export of v{entry.version} is not possible: onnxmltools has no converter "
            f"for the stage(s) {', '.join(missing)}"
        )
        raise ModelError(msg)
    spec = entry.spec
    types: list[tuple[str, Any]] = [(n, FloatTensorType([None, 1])) for n in spec.numeric_names]
    types += [(c, StringTensorType([None, 1])) for c in spec.categorical]
    keep: list[int] = []
    count = 0
    for stage in model.stages:
        if isinstance(stage, StringIndexerModel):
            for _ in stage.labelsArray:
                if stage.getHandleInvalid() == "keep":
                    keep.append(count)
                count += 1
    try:
        onx = onnxmltools.convert_sparkml(
            model, f"scorestream-v{entry.version}", types, spark_session=spark, target_opset=OPSET
        )
    except Exception as exc:  # the converter raises bare RuntimeError/ValueError
        msg = f"onnxmltools could not convert v{entry.version}: {exc}"
        raise ModelError(msg) from exc
    onx = _fix_graph(onx, keep)
    onnx.checker.check_model(onx)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(onx.SerializeToString())
    return output


def onnx_inputs(
    columns: Mapping[str, Any], numeric: list[str], categorical: list[str]
) -> dict[str, np.ndarray]:
    """Feeds for onnxruntime from column arrays (None/NaN numerics -> NaN, None -> "")."""
    import numpy as np

    feeds: dict[str, np.ndarray] = {}
    for name in numeric:
        values = [np.nan if v is None else float(v) for v in columns[name]]
        feeds[name] = np.asarray(values, dtype=np.float32).reshape(-1, 1)
    for name in categorical:
        texts = ["" if v is None else str(v) for v in columns[name]]
        feeds[name] = np.asarray(texts, dtype=object).reshape(-1, 1)
    return feeds


def onnx_scores(path: Path, columns: Mapping[str, Any], numeric: list[str], cat: list[str]) -> Any:
    """Probability of the positive class for each row, from onnxruntime."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    result = session.run(["probability"], onnx_inputs(columns, numeric, cat))
    if "probability" not in names:
        msg = f"{path} has no 'probability' output (outputs: {names})"
        raise ModelError(msg)
    return result[0][:, 1]
