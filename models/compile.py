"""A fitted PipelineModel compiled to plain expressions over the raw feature columns.

No vectors and no ML functions: the imputer becomes a CASE per numeric, the string indexer
with its "keep" slot and the one-hot encoder become label tests, the scaler folds into the
constants, and the estimator becomes a sum (logistic regression) or nested CASEs (random
forest, GBT). The same tree renders as Spark Columns (the streaming scorer) and as SQL text
(`models export --format sql`). Each stage follows Spark's own arithmetic, operation by
operation, so the probability matches `PipelineModel.transform` to rounding.

A stage outside that set raises `NotCompilable`, whose message names the stage and why.

One module (about 410 lines) because it is one compiler over one intermediate form: the
feature stages turn columns into slots and the estimators read exactly those slots, and
matching `transform` to rounding means following Spark stage by stage in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from scorestream.contract.spec import FeatureSpec
from scorestream.errors import ModelError
from scorestream.models.coefficients import _stage_card
from scorestream.models.scorer import _one_hot
from scorestream.models.sqlexpr import Case as CaseExpr
from scorestream.models.sqlexpr import (
    Cond,
    Expr,
    Gt,
    Imputed,
    InLabels,
    Le,
    Lit,
    Mul,
    Not,
    Sigmoid,
    Sum,
    case,
    render,
    total,
)
from scorestream.models.sqlexpr import Div as DivExpr

if TYPE_CHECKING:
    from pyspark.ml import PipelineModel
    from pyspark.sql import Column


class NotCompilable(ModelError):
    """The pipeline holds a stage or setting the compiler does not translate."""


@dataclass(frozen=True)
class Indicator:
    """A one-hot slot: `on` when `cond` holds, else `off`."""

    cond: Cond
    on: float
    off: float
    source: str


Slot = Expr | Indicator


@dataclass(frozen=True)
class Index:
    """A string indexer output: position in `labels`, len(labels) for unseen or null."""

    column: str
    labels: tuple[str, ...]


@dataclass(frozen=True)
class CompiledModel:
    """The positive-class probability and the prediction as expressions of the features."""

    estimator: str
    score: Expr
    prediction: Expr
    spec: FeatureSpec
    # values worth probing per numeric column (surrogates, split points), for parity checks
    probes: dict[str, tuple[float, ...]] = field(default_factory=dict)
    labels: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def sql(self, dialect: str) -> tuple[str, str]:
        """(score, prediction) as SQL expressions in `dialect`."""
        return render(self.score, dialect), render(self.prediction, dialect)

    def columns(self) -> tuple[Column, Column]:
        """(score, prediction) as Spark Columns: plain Catalyst expressions, no UDFs."""
        from pyspark.sql import functions as F

        score, prediction = self.sql("spark")
        return F.expr(score).cast("double"), F.expr(prediction).cast("double")


def _stage_name(stage: Any) -> str:
    return type(stage).__name__


class _Compiler:
    def __init__(self, spec: FeatureSpec) -> None:
        self.spec = spec
        self.values: dict[str, Expr | Index | tuple[Slot, ...]] = {}
        self.probes: dict[str, list[float]] = {n: [] for n in spec.numeric_names}
        self.labels: dict[str, tuple[str, ...]] = {}
        self.features: tuple[Slot, ...] = ()

    def value(self, column: str, stage: Any) -> Expr | Index | tuple[Slot, ...]:
        if column not in self.values:
            msg = (
                f"{_stage_name(stage)} reads column {column!r}, which no compiled stage "
                "produces and which is not a numeric feature to impute"
            )
            raise NotCompilable(msg)
        return self.values[column]

    def feature_stage(self, stage: Any) -> None:
        try:
            card = _stage_card(stage)
        except ModelError as exc:
            msg = f"stage {_stage_name(stage)} is not compiled"
            raise NotCompilable(msg) from exc
        kind = card["type"]
        if kind == "imputer":
            import math

            if not math.isnan(card["missing_value"]):
                msg = f"Imputer with missingValue {card['missing_value']} is not compiled (NaN is)"
                raise NotCompilable(msg)
            for src, dst, surrogate in zip(
                card["input_cols"], card["output_cols"], card["surrogates"], strict=True
            ):
                if src not in self.probes:
                    msg = f"Imputer input {src!r} is not a numeric feature of the spec"
                    raise NotCompilable(msg)
                self.values[dst] = Imputed(src, surrogate)
                self.probes[src].append(surrogate)
        elif kind == "string_indexer":
            if card["handle_invalid"] != "keep":
                msg = (
                    f"StringIndexer with handleInvalid={card['handle_invalid']!r} is not compiled "
                    "(only 'keep', which scorestream trains)"
                )
                raise NotCompilable(msg)
            for src, dst, labels in zip(
                card["input_cols"], card["output_cols"], card["labels"], strict=True
            ):
                if src not in self.spec.categorical:
                    msg = f"StringIndexer input {src!r} is not a categorical feature of the spec"
                    raise NotCompilable(msg)
                self.values[dst] = Index(src, tuple(labels))
                self.labels[src] = tuple(labels)
        elif kind == "one_hot":
            for src, dst, size in zip(
                card["input_cols"], card["output_cols"], card["category_sizes"], strict=True
            ):
                index = self.value(src, stage)
                if not isinstance(index, Index):
                    msg = f"OneHotEncoder input {src!r} is not a string indexer output"
                    raise NotCompilable(msg)
                self.values[dst] = _one_hot_slots(
                    index, size, card["drop_last"], card["handle_invalid"]
                )
        elif kind == "assembler":
            slots: list[Slot] = []
            for src in card["input_cols"]:
                part = self.value(src, stage)
                if isinstance(part, Index):
                    msg = f"VectorAssembler input {src!r} is a raw category index"
                    raise NotCompilable(msg)
                slots.extend(part if isinstance(part, tuple) else (part,))
            self.values[card["output_col"]] = tuple(slots)
        elif kind == "standard_scaler":
            vector = self.value(card["input_col"], stage)
            if not isinstance(vector, tuple):
                msg = f"StandardScaler input {card['input_col']!r} is not an assembled vector"
                raise NotCompilable(msg)
            if card["with_mean"]:
                msg = "StandardScaler with withMean=true is not compiled (scorestream trains false)"
                raise NotCompilable(msg)
            if card["with_std"]:
                # Spark: values(i) *= (std(i) == 0 ? 0 : 1 / std(i))
                scale = [1.0 / s if s != 0.0 else 0.0 for s in card["std"]]
                vector = tuple(_scaled(slot, f) for slot, f in zip(vector, scale, strict=True))
            self.values[card["output_col"]] = vector
        else:  # logistic_regression: handled by the estimator step
            msg = f"stage {_stage_name(stage)} is not a feature stage"
            raise NotCompilable(msg)

    def vector(self, column: str, stage: Any) -> tuple[Slot, ...]:
        vector = self.value(column, stage)
        if not isinstance(vector, tuple):
            msg = f"{_stage_name(stage)} features column {column!r} is not a vector"
            raise NotCompilable(msg)
        return vector


def _one_hot_slots(index: Index, size: int, drop_last: bool, invalid: str) -> tuple[Slot, ...]:
    """The slots of Spark's OneHotEncoderModel for an indexer output (unseen = len(labels))."""
    labels = index.labels
    unseen = len(labels)
    members: dict[int, set[int]] = {}
    width = 0
    for k in range(unseen + 1):
        vector = _one_hot(k, size, drop_last, invalid)
        width = len(vector)
        for slot, bit in enumerate(vector):
            if bit:
                members.setdefault(slot, set()).add(k)
    slots: list[Slot] = []
    for slot in range(width):
        ks = members.get(slot, set())
        if unseen in ks:
            others = tuple(labels[k] for k in range(unseen) if k not in ks)
            cond: Cond = Not(InLabels(index.column, others))
        else:
            cond = InLabels(index.column, tuple(labels[k] for k in sorted(ks)))
        slots.append(Indicator(cond, 1.0, 0.0, index.column))
    return tuple(slots)


def _scaled(slot: Slot, factor: float) -> Slot:
    if isinstance(slot, Indicator):
        return Indicator(slot.cond, slot.on * factor, slot.off * factor, slot.source)
    return Mul(slot, Lit(factor))


def _logistic(card: dict[str, Any], features: tuple[Slot, ...]) -> tuple[Expr, Expr]:
    coefficients = card["coefficients"]
    if len(coefficients) != len(features):
        msg = f"LogisticRegression has {len(coefficients)} coefficients for {len(features)} slots"
        raise NotCompilable(msg)
    terms: list[Expr] = []
    i = 0
    while i < len(features):
        slot = features[i]
        if not isinstance(slot, Indicator):
            terms.append(Mul(slot, Lit(coefficients[i])))
            i += 1
            continue
        # One one-hot block: its conditions exclude each other, so one CASE carries the block.
        whens: list[tuple[Cond, Expr]] = []
        while (
            i < len(features)
            and isinstance(features[i], Indicator)
            and features[i].source == slot.source  # type: ignore[union-attr]
        ):
            ind = features[i]
            assert isinstance(ind, Indicator)
            if ind.off != 0.0:
                msg = "a one-hot slot with a non-zero off value is not compiled"
                raise NotCompilable(msg)
            whens.append((ind.cond, Lit(ind.on * coefficients[i])))
            i += 1
        terms.append(CaseExpr(tuple(whens), Lit(0.0)))
    margin = total([*terms, Lit(card["intercept"])])
    threshold = card["threshold"]
    if not 0.0 < threshold < 1.0:
        msg = f"LogisticRegression threshold {threshold} is not compiled (0 < t < 1 is)"
        raise NotCompilable(msg)
    import math

    # Spark's raw2prediction: margin > log(t / (1 - t))
    raw_threshold = math.log(threshold / (1.0 - threshold))
    return Sigmoid(margin), case(Gt(margin, raw_threshold), Lit(1.0), Lit(0.0))


class _TreeWalker:
    """Turns Spark tree nodes (through py4j) into CASE expressions over the feature slots."""

    def __init__(self, features: tuple[Slot, ...], probes: dict[str, list[float]]) -> None:
        self.features = features
        self.probes = probes

    def split(self, feature: int, threshold: float) -> Cond | bool:
        """The condition to go left (`feature <= threshold`), folded for one-hot slots."""
        if not 0 <= feature < len(self.features):
            msg = f"a tree splits on feature {feature}, outside the {len(self.features)} slots"
            raise NotCompilable(msg)
        slot = self.features[feature]
        if isinstance(slot, Indicator):
            on, off = slot.on <= threshold, slot.off <= threshold
            if on == off:
                return on
            return slot.cond if on else Not(slot.cond)
        self._probe(slot, threshold)
        return Le(slot, threshold)

    def _probe(self, slot: Expr, threshold: float) -> None:
        # the raw value that lands on the split point, so parity checks test both sides
        if not (isinstance(slot, Mul) and isinstance(slot.left, Imputed)):
            return
        if isinstance(slot.right, Lit) and slot.right.value != 0.0:
            self.probes[slot.left.column].append(threshold / slot.right.value)

    def shape(self, node: Any, leaf: Callable[[Any], tuple[float, ...]]) -> Any:
        """The tree as nested (cond, left, right) tuples with leaf values, read once by py4j."""
        if node.getClass().getSimpleName() == "LeafNode":
            return leaf(node)
        split = node.split()
        if split.getClass().getSimpleName() != "ContinuousSplit":
            msg = "a tree with a categorical split is not compiled"
            raise NotCompilable(msg)
        go_left = self.split(int(split.featureIndex()), float(split.threshold()))
        if go_left is True:
            return self.shape(node.leftChild(), leaf)
        if go_left is False:
            return self.shape(node.rightChild(), leaf)
        return (go_left, self.shape(node.leftChild(), leaf), self.shape(node.rightChild(), leaf))


def _tree_expr(shape: Any, pick: int) -> Expr:
    """CASE expression of a tree shape, with leaf value number `pick`."""
    if isinstance(shape[0], Cond):
        cond, left, right = shape
        return case(cond, _tree_expr(left, pick), _tree_expr(right, pick))
    return Lit(shape[pick])


def _forest(stage: Any, walker: _TreeWalker) -> tuple[Expr, Expr]:
    if int(stage.numClasses) != 2:
        msg = f"RandomForestClassifier with {stage.numClasses} classes is not compiled"
        raise NotCompilable(msg)
    votes: tuple[list[Expr], list[Expr]] = ([], [])

    def leaf(node: Any) -> tuple[float, ...]:
        # Spark: votes(c) += stats(c) / stats.sum per tree (trees with no count add nothing)
        stats = [float(v) for v in node.impurityStats().stats()]
        count = sum(stats)
        return tuple(s / count if count != 0 else 0.0 for s in stats)

    for tree in stage._java_obj.trees():
        shape = walker.shape(tree.rootNode(), leaf)
        for c in (0, 1):
            votes[c].append(_tree_expr(shape, c))
    zero, one = total(votes[0]), total(votes[1])
    probability = DivExpr(one, Sum((zero, one)))
    # argmax of the raw votes; a tie goes to class 0
    prediction = case(Gt(Sum((one, Mul(zero, Lit(-1.0)))), 0.0), Lit(1.0), Lit(0.0))
    return probability, prediction


def _boosted(stage: Any, walker: _TreeWalker) -> tuple[Expr, Expr]:
    weights = [float(w) for w in stage.treeWeights]
    terms: list[Expr] = []
    for tree, weight in zip(stage._java_obj.trees(), weights, strict=True):
        # Spark: margin = dot(tree predictions, tree weights); the product folds into the leaf

        def leaf(node: Any, w: float = weight) -> tuple[float, ...]:
            return (w * float(node.prediction()),)

        shape = walker.shape(tree.rootNode(), leaf)
        terms.append(_tree_expr(shape, 0))
    margin = total(terms)
    # Spark's LogLoss: 1 / (1 + exp(-2 m)); prediction = argmax(-m, m)
    return Sigmoid(margin, factor=2.0), case(Gt(margin, 0.0), Lit(1.0), Lit(0.0))


ESTIMATOR_KINDS = {
    "LogisticRegressionModel": "logistic",
    "RandomForestClassificationModel": "random_forest",
    "GBTClassificationModel": "gbt",
}


def compile_pipeline(model: PipelineModel, spec: FeatureSpec) -> CompiledModel:
    """The compiled form of a fitted pipeline; raises NotCompilable naming the first stage it
    cannot translate."""
    stages = list(model.stages)
    if not stages:
        msg = "the pipeline has no stages"
        raise NotCompilable(msg)
    compiler = _Compiler(spec)
    *features, last = stages
    estimator: Any = last
    for stage in features:
        compiler.feature_stage(stage)
    name = _stage_name(estimator)
    if name not in ESTIMATOR_KINDS:
        msg = (
            f"the pipeline's last stage {name} is not a compiled estimator "
            f"(compiled: {', '.join(ESTIMATOR_KINDS)})"
        )
        raise NotCompilable(msg)
    vector = compiler.vector(estimator.getFeaturesCol(), estimator)
    if name == "LogisticRegressionModel":
        try:
            card = _stage_card(estimator)
        except ModelError as exc:
            msg = f"{name} is not compiled: {exc}"
            raise NotCompilable(msg) from exc
        score, prediction = _logistic(card, vector)
    else:
        if estimator.isSet("thresholds"):
            msg = f"{name} with thresholds set is not compiled"
            raise NotCompilable(msg)
        walker = _TreeWalker(vector, compiler.probes)
        if name == "RandomForestClassificationModel":
            score, prediction = _forest(estimator, walker)
        else:
            score, prediction = _boosted(estimator, walker)
    return CompiledModel(
        estimator=ESTIMATOR_KINDS[name],
        score=score,
        prediction=prediction,
        spec=spec,
        probes={n: tuple(sorted(set(v))) for n, v in compiler.probes.items()},
        labels=dict(compiler.labels),
    )
