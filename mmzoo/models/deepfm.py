"""DeepFM click-through-rate model (Guo et al., IJCAI 2017)."""

import dataclasses

import keras

from mmzoo.layers.interactions import (
    FMInteraction,
    NumericEmbedding,
    PooledEmbedding,
    StackFields,
    SumLogits,
)
from mmzoo.registry import register_model

FEATURE_KINDS = ("categorical", "numeric", "multi_value", "text", "vector")


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """One raw column and how the model embeds it.

    Feature names become model input names, `tf.data` keys and serving
    signature keys.

    Attributes:
        name: str. Column name.
        kind: str. One of `categorical` (one value; model input int32 `[B]`
            ids), `numeric` (float32 `[B]`, NaN = missing), `multi_value`
            (`"a|b|c"`; int32 `[B, max_length]` ids, 0 = padding), `text`
            (words; int32 `[B, max_length]` ids) or `vector` (a precomputed
            embedding, e.g. of an image; float32 `[B, dimension]`).
        vocabulary_size: int. Number of ids (0 = missing/padding, 1 = OOV),
            for the id kinds. With `hash_buckets`, `hash_buckets + 2`.
        hash_buckets: int. If > 0, ids come from hashing the value into this
            many buckets instead of a vocabulary.
        max_length: int. Tokens kept for `multi_value` and `text`.
        combiner: str. Pooling of `multi_value`/`text` embeddings: `mean` or
            `sum`.
        mean: float. Training-split mean of a `numeric` feature.
        std: float. Training-split standard deviation of a `numeric` feature.
        dimension: int. Width of a `vector` feature.
    """

    name: str
    kind: str
    vocabulary_size: int = 0
    hash_buckets: int = 0
    max_length: int = 1
    combiner: str = "mean"
    mean: float = 0.0
    std: float = 1.0
    dimension: int = 0

    def __post_init__(self):
        if self.kind not in FEATURE_KINDS:
            raise ValueError(
                f"feature '{self.name}': unknown kind '{self.kind}'; valid: "
                f"{', '.join(FEATURE_KINDS)}"
            )
        if self.hash_buckets and not self.vocabulary_size:
            object.__setattr__(self, "vocabulary_size", self.hash_buckets + 2)
        if self.kind in ("categorical", "multi_value", "text") and (
            self.vocabulary_size < 2
        ):
            raise ValueError(
                f"feature '{self.name}': vocabulary_size must be >= 2 "
                f"(padding + OOV), got {self.vocabulary_size}"
            )
        if self.kind == "vector" and self.dimension < 1:
            raise ValueError(
                f"feature '{self.name}': a vector feature needs dimension "
                f">= 1, got {self.dimension}"
            )


def _default_features():
    # The schema of the `synthetic` CTR dataset, so `build("deepfm")` works
    # before any data is seen. Data pipelines replace it.
    return (
        FeatureSpec("user_id", "categorical", vocabulary_size=502),
        FeatureSpec("item_id", "categorical", vocabulary_size=302),
        FeatureSpec("user_segment", "categorical", vocabulary_size=7),
        FeatureSpec("item_category", "categorical", vocabulary_size=12),
        FeatureSpec("device", "categorical", vocabulary_size=5),
        FeatureSpec("price", "numeric", mean=3.0, std=1.0),
        FeatureSpec("user_age", "numeric", mean=35.0, std=10.0),
        FeatureSpec("tags", "multi_value", vocabulary_size=22, max_length=4),
        FeatureSpec("title", "text", vocabulary_size=64, max_length=8),
    )


@dataclasses.dataclass(frozen=True)
class DeepFMConfig:
    """Hyperparameters of `build_deepfm`.

    Attributes:
        features: tuple of `FeatureSpec` (dicts are converted). One model
            input per feature. Defaults to the `synthetic` dataset schema.
        embedding_dim: int. Width of every field embedding, shared by the
            FM and deep parts. Defaults to 10.
        mlp_units: tuple of int. Hidden sizes of the deep tower. Defaults to
            `(400, 400, 400)` (BARS benchmark setting).
        dropout: float. Dropout after each hidden layer. Defaults to 0.
        batch_norm: bool. Batch normalization in the deep tower.
        l2_embedding: float. L2 penalty on embedding tables.
        use_linear: bool. Include the first-order (linear) part.
        use_fm: bool. Include the second-order FM part.
        use_deep: bool. Include the deep part. `use_fm=False,
            use_deep=False` is logistic regression; `use_deep=False` is an
            FM.
        task: str. `binary` (sigmoid output `probability`) or `regression`
            (linear output `prediction`).
    """

    features: tuple = dataclasses.field(default_factory=_default_features)
    embedding_dim: int = 10
    mlp_units: tuple = (400, 400, 400)
    dropout: float = 0.0
    batch_norm: bool = False
    l2_embedding: float = 0.0
    use_linear: bool = True
    use_fm: bool = True
    use_deep: bool = True
    task: str = "binary"

    def __post_init__(self):
        features = tuple(
            f if isinstance(f, FeatureSpec) else FeatureSpec(**f)
            for f in self.features
        )
        object.__setattr__(self, "features", features)
        object.__setattr__(self, "mlp_units", tuple(self.mlp_units))
        if not features:
            raise ValueError("deepfm: features must not be empty")
        names = [f.name for f in features]
        if len(set(names)) != len(names):
            raise ValueError(f"deepfm: duplicate feature names in {names}")
        if self.task not in ("binary", "regression"):
            raise ValueError(
                f"deepfm: unknown task '{self.task}'; valid: binary, regression"
            )
        if not (self.use_linear or self.use_fm or self.use_deep):
            raise ValueError(
                "deepfm: at least one of use_linear, use_fm, use_deep"
            )


VARIANTS = {
    "tiny": {"embedding_dim": 4, "mlp_units": (16, 16)},
    "base": {},
}


@keras.saving.register_keras_serializable(package="mmzoo")
def example_logloss(y_true, y_pred):
    """Per-example binary cross-entropy of `[B]` labels and probabilities.

    The `logloss` metric of the DeepFM task; registered here, beside the
    layers, so that every process that can load a DeepFM `.keras` file can
    also restore its compiled metrics.

    `keras.metrics.BinaryCrossentropy` averages over the last axis, which
    for DeepFM's `[B]` output is the whole batch: the metric then becomes a
    mean of batch means, and the empty last step Keras runs on a dataset of
    unknown length (a filtered split) counts as a batch of zero loss.
    Returning one value per example makes `logloss` the true mean.
    """
    y_true = keras.ops.expand_dims(keras.ops.cast(y_true, y_pred.dtype), -1)
    return keras.losses.binary_crossentropy(
        y_true, keras.ops.expand_dims(y_pred, -1)
    )


def feature_input(feature):
    """Returns the named `keras.Input` of one feature."""
    if feature.kind in ("categorical",):
        return keras.Input(shape=(), dtype="int32", name=feature.name)
    if feature.kind == "numeric":
        return keras.Input(shape=(), dtype="float32", name=feature.name)
    if feature.kind == "vector":
        return keras.Input(
            shape=(feature.dimension,), dtype="float32", name=feature.name
        )
    return keras.Input(
        shape=(feature.max_length,), dtype="int32", name=feature.name
    )


def _embed(feature, inputs, dim, regularizer, prefix):
    """Embeds one field into `[B, dim]`."""
    name = f"{prefix}_{feature.name}"
    if feature.kind == "categorical":
        return keras.layers.Embedding(
            feature.vocabulary_size,
            dim,
            embeddings_regularizer=regularizer,
            name=name,
        )(inputs)
    if feature.kind == "numeric":
        return NumericEmbedding(feature.mean, feature.std, dim, name=name)(
            inputs
        )
    if feature.kind == "vector":
        return keras.layers.Dense(dim, name=name)(inputs)
    return PooledEmbedding(
        feature.vocabulary_size,
        dim,
        combiner=feature.combiner,
        embeddings_regularizer=regularizer,
        name=name,
    )(inputs)


@register_model("deepfm", DeepFMConfig, variants=VARIANTS)
def build_deepfm(config: DeepFMConfig) -> keras.Model:
    """Builds an uncompiled DeepFM with one named input per feature.

    The linear part, the FM part and the deep part share the field
    embeddings (the FM and deep parts) and their logits are summed.

    Example:
    >>> model = mmzoo.build("deepfm", variant="tiny")
    >>> model.output_names
    ['probability']

    Reference:
        Guo et al., "DeepFM: A Factorization-Machine based Neural Network
        for CTR Prediction", IJCAI 2017.
    """
    regularizer = (
        keras.regularizers.L2(config.l2_embedding)
        if config.l2_embedding
        else None
    )
    inputs = {f.name: feature_input(f) for f in config.features}
    logits = []
    if config.use_linear:
        weights = [
            _embed(f, inputs[f.name], 1, regularizer, "linear")
            for f in config.features
        ]
        logits.append(keras.layers.Add(name="linear")(weights))
    if config.use_fm or config.use_deep:
        fields = StackFields(name="fields")(
            [
                _embed(
                    f, inputs[f.name], config.embedding_dim, regularizer, "emb"
                )
                for f in config.features
            ]
        )
    if config.use_fm:
        logits.append(FMInteraction(name="fm")(fields))
    if config.use_deep:
        x = keras.layers.Flatten(name="deep_input")(fields)
        for i, units in enumerate(config.mlp_units):
            x = keras.layers.Dense(units, name=f"deep_dense_{i}")(x)
            if config.batch_norm:
                x = keras.layers.BatchNormalization(name=f"deep_bn_{i}")(x)
            x = keras.layers.Activation("relu", name=f"deep_relu_{i}")(x)
            if config.dropout:
                x = keras.layers.Dropout(
                    config.dropout, name=f"deep_dropout_{i}"
                )(x)
        logits.append(keras.layers.Dense(1, name="deep_logit")(x))
    logit = SumLogits(name="logit")(logits)
    if config.task == "binary":
        output = keras.layers.Activation(
            "sigmoid", dtype="float32", name="probability"
        )(logit)
    else:
        output = keras.layers.Identity(dtype="float32", name="prediction")(
            logit
        )
    return keras.Model(inputs, output, name="deepfm")
