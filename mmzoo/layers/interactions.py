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
class CategoricalEmbedding(keras.layers.Layer):
    """Embeds F categorical fields with one table: `[B]` ids each -> `[B, F,
    dim]`.

    The fields' id ranges are laid end to end in one `[sum(V_f), dim]`
    table, so one gather (and one variable for the optimizer) replaces F
    lookups, as in DeepCTR-Torch and TorchRec. The same values as F
    `Embedding` tables (an L2 penalty on the table is their sum), but
    far fewer ops: on Criteo's 26 categorical fields, the first `fit` of the
    tiny DeepFM (mostly tracing the train step) took half the time. An id
    outside `[0, V_f)` is clipped into its field's range, so it can never
    read another field's rows.

    Args:
        vocabulary_sizes: sequence of int. Ids per field, OOV included.
        output_dim: int. Embedding width.
        embeddings_regularizer: optional regularizer of the table.
    """

    def __init__(
        self,
        vocabulary_sizes,
        output_dim,
        embeddings_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.vocabulary_sizes = tuple(int(v) for v in vocabulary_sizes)
        if not self.vocabulary_sizes or min(self.vocabulary_sizes) < 1:
            raise ValueError(
                f"CategoricalEmbedding: vocabulary_sizes must be positive, "
                f"got {self.vocabulary_sizes}"
            )
        self.output_dim = output_dim
        self.embeddings_regularizer = keras.regularizers.get(
            embeddings_regularizer
        )
        self._offsets = [0]
        for size in self.vocabulary_sizes[:-1]:
            self._offsets.append(self._offsets[-1] + size)

    def build(self, input_shape):
        self.embeddings = self.add_weight(
            name="embeddings",
            shape=(sum(self.vocabulary_sizes), self.output_dim),
            initializer="uniform",
            regularizer=self.embeddings_regularizer,
        )

    def call(self, inputs):
        ids = ops.stack([ops.cast(x, "int32") for x in inputs], axis=1)
        upper = ops.convert_to_tensor(
            [v - 1 for v in self.vocabulary_sizes], "int32"
        )
        ids = ops.minimum(ops.maximum(ids, 0), upper)
        ids = ids + ops.convert_to_tensor(self._offsets, "int32")
        return ops.take(self.embeddings, ids, axis=0)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], len(input_shape), self.output_dim)

    def get_config(self):
        return {
            **super().get_config(),
            "vocabulary_sizes": self.vocabulary_sizes,
            "output_dim": self.output_dim,
            "embeddings_regularizer": keras.regularizers.serialize(
                self.embeddings_regularizer
            ),
        }


@keras.saving.register_keras_serializable(package="mmzoo")
class NumericEmbedding(keras.layers.Layer):
    """Normalizes F numeric fields and embeds each as a field vector: `[B]`
    values each -> `[B, F, dim]`.

    `z = (x - mean) / std`; a non-finite `x` (NaN = missing, also inf) sets
    `z = 0` and switches on a learned "missing" vector instead, so missing
    values are handled explicitly rather than imputed silently. The field
    embedding is `z * v + missing * v_missing`, as DeepFM embeds dense
    fields. One layer for all the numeric fields (one `[F, dim]` weight
    each for `v` and `v_missing`), for the reason of `CategoricalEmbedding`.

    Args:
        means: sequence of float. Training-split mean of each field's
            finite values.
        stds: sequence of float. Training-split standard deviations (a
            non-positive one counts as 1).
        output_dim: int. Embedding width.
        clip: float. |z| is clipped to this, so an outlier at serving time
            cannot blow up the logit. Defaults to 10.
    """

    def __init__(self, means, stds, output_dim, clip=10.0, **kwargs):
        super().__init__(**kwargs)
        self.means = tuple(float(m) for m in means)
        self.stds = tuple(float(s) if s > 0 else 1.0 for s in stds)
        if not self.means or len(self.means) != len(self.stds):
            raise ValueError(
                f"NumericEmbedding: need one mean and one std per field, got "
                f"{len(self.means)} means and {len(self.stds)} stds"
            )
        self.output_dim = output_dim
        self.clip = float(clip)

    def build(self, input_shape):
        fields = len(self.means)
        self.value_embedding = self.add_weight(
            name="value_embedding",
            shape=(fields, self.output_dim),
            initializer="uniform",
        )
        self.missing_embedding = self.add_weight(
            name="missing_embedding",
            shape=(fields, self.output_dim),
            initializer="zeros",
        )

    def call(self, inputs):
        values = ops.stack(
            [ops.cast(x, self.compute_dtype) for x in inputs], axis=1
        )
        finite = ops.isfinite(values)
        safe = ops.where(finite, values, ops.zeros_like(values))
        means = ops.convert_to_tensor(self.means, self.compute_dtype)
        stds = ops.convert_to_tensor(self.stds, self.compute_dtype)
        z = ops.clip((safe - means) / stds, -self.clip, self.clip)
        z = ops.where(finite, z, ops.zeros_like(z))
        missing = 1.0 - ops.cast(finite, z.dtype)
        return (
            z[..., None] * self.value_embedding
            + missing[..., None] * self.missing_embedding
        )

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], len(input_shape), self.output_dim)

    def get_config(self):
        return {
            **super().get_config(),
            "means": self.means,
            "stds": self.stds,
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
class SumFields(keras.layers.Layer):
    """Sums `[B, F, k]` field vectors over the fields: `[B, k]`."""

    def call(self, inputs):
        return ops.sum(inputs, axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])


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
