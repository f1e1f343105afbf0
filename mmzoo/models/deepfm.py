"""DeepFM click-through-rate model (Guo et al., IJCAI 2017)."""

import dataclasses

import keras

from mmzoo.layers.interactions import (
    CategoricalEmbedding,
    FMInteraction,
    NumericEmbedding,
    PooledEmbedding,
    StackFields,
    SumFields,
    SumLogits,
)
from mmzoo.metrics.ctr import example_logloss  # noqa: F401 (registers it)
from mmzoo.registry import TFDS_DATASET, register_model
from mmzoo.specs import FEATURE_KINDS, FeatureSpec, model_inputs  # noqa: F401
from mmzoo.training_config import TrainingConfig


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
class DeepFMConfig(TrainingConfig):
    """Hyperparameters of `build_deepfm` (and the training settings of
    `mmzoo.training_config.TrainingConfig`).

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
        min_count: int. Categorical values seen fewer times in the train
            split map to the OOV id (BARS uses 10 on Criteo). Defaults to 2.
        max_vocabulary_size: int. Most values kept per column; a column
            with too many frequent values to count is hashed into this
            many buckets (`mmzoo.data.tabular.fit_features`).
        shuffle_buffer: int. Rows shuffled together in training (memory:
            about one raw line or row each): the buffer of in-memory data;
            for Criteo files, the window of lines permuted at once, cut
            from blocks of lines drawn in random order. Defaults to
            100,000.
        cache: str. `""` (read and parse every epoch), `"memory"`, or a
            file path prefix: keep the preprocessed batches after the
            first pass (`mmzoo.tasks.ctr.CTRTask.pipeline`).
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
    min_count: int = 2
    max_vocabulary_size: int = 100_000
    shuffle_buffer: int = 100_000
    cache: str = ""

    def __post_init__(self):
        super().__post_init__()
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
    "tiny": {
        "embedding_dim": 4,
        "mlp_units": (16, 16),
        "epochs": 3,
        "batch_size": 64,
    },
    # A base step is ~5 ms on 2 CPU cores: Keras Adam's kernels were a
    # quarter of it and Keras's per-step Python another tenth; a fused
    # Adam and 16 steps per call of the train function cut both
    # (benchmarks/deepfm_profile.py).
    "base": {
        "epochs": 3,
        "batch_size": 256,
        "optimizer": "fused_adam",
        "steps_per_execution": 16,
    },
}


def feature_input(feature):
    """Returns the named `keras.Input` of one feature (from its spec)."""
    return model_inputs([feature])[feature.name]


def _embed_fields(features, inputs, dim, regularizer, prefix):
    """Embeds every field into `[B, F, dim]`.

    All categorical fields share one table (`CategoricalEmbedding`: one
    gather) and all numeric fields one layer; multi-valued, text and
    vector fields are embedded one by one. The field order (categorical,
    numeric, then the rest) does not matter to the FM term, and the deep
    tower's input is a fixed permutation of it.
    """
    by_kind = {}
    for feature in features:
        by_kind.setdefault(feature.kind, []).append(feature)
    parts = []
    categorical = by_kind.pop("categorical", [])
    if categorical:
        parts.append(
            CategoricalEmbedding(
                [f.vocabulary_size for f in categorical],
                dim,
                embeddings_regularizer=regularizer,
                name=f"{prefix}_categorical",
            )([inputs[f.name] for f in categorical])
        )
    numeric = by_kind.pop("numeric", [])
    if numeric:
        parts.append(
            NumericEmbedding(
                [f.mean for f in numeric],
                [f.std for f in numeric],
                dim,
                # Raw values are standardized in float32 under a mixed
                # policy too: bfloat16 holds 1995 as 1992.
                dtype="float32",
                name=f"{prefix}_numeric",
            )([inputs[f.name] for f in numeric])
        )
    others = [f for kind_features in by_kind.values() for f in kind_features]
    if others:
        parts.append(
            StackFields(name=f"{prefix}_others")(
                [_embed_one(f, inputs[f.name], dim, regularizer, prefix)
                 for f in others]
            )
        )  # fmt: skip
    if len(parts) == 1:
        return parts[0]
    return keras.layers.Concatenate(axis=1, name=f"{prefix}_fields")(parts)


def _embed_one(feature, inputs, dim, regularizer, prefix):
    """Embeds one multi-valued, text or vector field into `[B, dim]`."""
    name = f"{prefix}_{feature.name}"
    if feature.kind == "vector":
        return keras.layers.Dense(dim, name=name)(inputs)
    return PooledEmbedding(
        feature.vocabulary_size,
        dim,
        combiner=feature.combiner,
        embeddings_regularizer=regularizer,
        name=name,
    )(inputs)


@register_model(
    "deepfm",
    DeepFMConfig,
    variants=VARIANTS,
    problem="ctr",
    inputs=lambda config: config.features,
    datasets=("synthetic", "criteo", "movielens-100k", TFDS_DATASET),
    description=(
        "DeepFM (Guo et al., IJCAI 2017): linear + FM + deep tower over "
        "shared field embeddings of categorical, numeric, multi-valued and "
        "text columns"
    ),
)
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
    inputs = model_inputs(config.features)
    logits = []
    if config.use_linear:
        weights = _embed_fields(
            config.features, inputs, 1, regularizer, "linear"
        )
        logits.append(SumFields(name="linear")(weights))
    if config.use_fm or config.use_deep:
        fields = _embed_fields(
            config.features, inputs, config.embedding_dim, regularizer, "emb"
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
