"""Feature-interaction and feature-embedding layers for CTR models."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="mmzoo")
class FMInteraction(keras.layers.Layer):
    """Second-order factorization-machine term with the sum-square trick.

    `0.5 * sum_k((sum_f e_fk)^2 - sum_f e_fk^2)`, linear in the number of
    fields instead of quadratic.

    Call args:
        inputs: `[B, F, k]` field embeddings.

    Returns:
        `[B, 1]` interaction logits.

    Reference:
        Rendle, "Factorization Machines", ICDM 2010.
    """

    def call(self, inputs):
        square_of_sum = ops.square(ops.sum(inputs, axis=1))
        sum_of_square = ops.sum(ops.square(inputs), axis=1)
        return 0.5 * ops.sum(
            square_of_sum - sum_of_square, axis=1, keepdims=True
        )

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1)


@keras.saving.register_keras_serializable(package="mmzoo")
class PooledEmbedding(keras.layers.Layer):
    """Embeds a padded id sequence `[B, L]` and pools it to `[B, dim]`.

    Id 0 is padding and is masked out of the pooling; a row of only padding
    pools to zeros. Used for multi-valued categorical features
    (`"Action|Comedy"`) and bag-of-words text features.

    Args:
        vocabulary_size: int. Number of ids, padding and OOV included.
        output_dim: int. Embedding width.
        combiner: str. `"mean"` or `"sum"`. Defaults to `"mean"`.
        embeddings_regularizer: optional regularizer of the table.
    """

    def __init__(
        self,
        vocabulary_size,
        output_dim,
        combiner="mean",
        embeddings_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if combiner not in ("mean", "sum"):
            raise ValueError(
                f"PooledEmbedding: combiner must be 'mean' or 'sum', "
                f"got {combiner!r}"
            )
        self.vocabulary_size = vocabulary_size
        self.output_dim = output_dim
        self.combiner = combiner
        self.embeddings_regularizer = keras.regularizers.get(
            embeddings_regularizer
        )

    def build(self, input_shape):
        self.embeddings = self.add_weight(
            name="embeddings",
            shape=(self.vocabulary_size, self.output_dim),
            initializer="uniform",
            regularizer=self.embeddings_regularizer,
        )

    def call(self, ids):
        ids = ops.cast(ids, "int32")
        vectors = ops.take(self.embeddings, ids, axis=0)
        mask = ops.cast(ops.not_equal(ids, 0), vectors.dtype)[..., None]
        total = ops.sum(vectors * mask, axis=1)
        if self.combiner == "sum":
            return total
        count = ops.sum(mask, axis=1)
        return total / ops.maximum(count, 1.0)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_dim)

    def get_config(self):
        return {
            **super().get_config(),
            "vocabulary_size": self.vocabulary_size,
            "output_dim": self.output_dim,
            "combiner": self.combiner,
            "embeddings_regularizer": keras.regularizers.serialize(
                self.embeddings_regularizer
            ),
        }


@keras.saving.register_keras_serializable(package="mmzoo")
class NumericEmbedding(keras.layers.Layer):
    """Normalizes a numeric feature and embeds it as a field vector.

    `z = (x - mean) / std`; a non-finite `x` (NaN = missing, also inf) sets
    `z = 0` and switches on a learned "missing" vector instead, so missing
    values are handled explicitly rather than imputed silently. The field
    embedding is `z * v + missing * v_missing`, as DeepFM embeds dense
    fields.

    Args:
        mean: float. Training-split mean of the finite values.
        std: float. Training-split standard deviation (> 0).
        output_dim: int. Embedding width.
        clip: float. |z| is clipped to this, so an outlier at serving time
            cannot blow up the logit. Defaults to 10.
    """

    def __init__(self, mean, std, output_dim, clip=10.0, **kwargs):
        super().__init__(**kwargs)
        self.mean = float(mean)
        self.std = float(std) if std > 0 else 1.0
        self.output_dim = output_dim
        self.clip = float(clip)

    def build(self, input_shape):
        self.value_embedding = self.add_weight(
            name="value_embedding",
            shape=(self.output_dim,),
            initializer="uniform",
        )
        self.missing_embedding = self.add_weight(
            name="missing_embedding",
            shape=(self.output_dim,),
            initializer="zeros",
        )

    def call(self, values):
        values = ops.cast(values, self.compute_dtype)
        finite = ops.isfinite(values)
        safe = ops.where(finite, values, ops.zeros_like(values))
        z = ops.clip((safe - self.mean) / self.std, -self.clip, self.clip)
        z = ops.where(finite, z, ops.zeros_like(z))
        missing = 1.0 - ops.cast(finite, z.dtype)
        return (
            z[:, None] * self.value_embedding
            + missing[:, None] * self.missing_embedding
        )

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_dim)

    def get_config(self):
        return {
            **super().get_config(),
            "mean": self.mean,
            "std": self.std,
            "output_dim": self.output_dim,
            "clip": self.clip,
        }


@keras.saving.register_keras_serializable(package="mmzoo")
class StackFields(keras.layers.Layer):
    """Stacks per-field `[B, k]` vectors into `[B, F, k]`."""

    def call(self, inputs):
        return ops.stack(inputs, axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], len(input_shape), input_shape[0][-1])


@keras.saving.register_keras_serializable(package="mmzoo")
class SumLogits(keras.layers.Layer):
    """Adds `[B, 1]` logits and a learned bias, returning `[B]`."""

    def build(self, input_shape):
        self.bias = self.add_weight(name="bias", shape=(), initializer="zeros")

    def call(self, inputs):
        total = inputs[0]
        for logit in inputs[1:]:
            total = total + logit
        return ops.squeeze(total, axis=-1) + self.bias

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0],)
