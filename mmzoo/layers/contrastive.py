"""Layers of dual encoders: unit-length embeddings and their scaled
similarities.

Reference:
    Radford et al., "Learning Transferable Visual Models From Natural
    Language Supervision" (CLIP), ICML 2021. https://arxiv.org/abs/2103.00020
    Zhai et al., "Sigmoid Loss for Language Image Pre-Training" (SigLIP),
    ICCV 2023. https://arxiv.org/abs/2303.15343
"""

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="mmzoo")
class L2Normalize(keras.layers.Layer):
    """Scales each row to unit Euclidean length (`x / max(‖x‖, ε)`).

    Args:
        epsilon: float. Floor of the norm, so a zero row stays finite.
            Defaults to 1e-6.

    Example:
    >>> L2Normalize()(np.array([[3.0, 4.0]]))  # [[0.6, 0.8]]
    """

    def __init__(self, epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def call(self, inputs):
        inputs = ops.cast(inputs, "float32")
        norm = ops.sqrt(ops.sum(ops.square(inputs), axis=-1, keepdims=True))
        return inputs / ops.maximum(norm, self.epsilon)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="mmzoo")
class ContrastiveLogits(keras.layers.Layer):
    """All-pairs similarity logits `s · x yᵀ + b` of two embedding batches.

    `s = exp(t)` with `t` a learned log-scale (CLIP's learnable
    temperature 1/s), clipped to `max_scale` as CLIP does so training
    cannot blow the logits up; `b` a learned bias for the sigmoid loss
    (SigLIP), absent otherwise.

    Args:
        initial_scale: float. `s` at initialisation (CLIP: 1/0.07 ≈ 14.3;
            SigLIP: 10). Defaults to 1/0.07.
        max_scale: float. Upper bound of `s`. Defaults to 100.
        use_bias: bool. Learn the bias `b`. Defaults to False.
        initial_bias: float. `b` at initialisation (SigLIP: -10, so that
            the many negatives do not dominate the first steps). Defaults
            to -10.

    Call arguments:
        inputs: list `[x, y]` of float `[B, D]` and `[C, D]` tensors
            (unit rows for cosine similarities).

    Returns:
        float32 `[B, C]`: row i, column j scores `x_i` against `y_j`.
    """

    def __init__(
        self,
        initial_scale=1 / 0.07,
        max_scale=100.0,
        use_bias=False,
        initial_bias=-10.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if initial_scale <= 0 or max_scale < initial_scale:
            raise ValueError(
                "ContrastiveLogits: need 0 < initial_scale <= max_scale, got "
                f"initial_scale={initial_scale}, max_scale={max_scale}"
            )
        self.initial_scale = float(initial_scale)
        self.max_scale = float(max_scale)
        self.use_bias = bool(use_bias)
        self.initial_bias = float(initial_bias)

    def build(self, input_shape):
        self.log_scale = self.add_weight(
            name="log_scale",
            shape=(),
            initializer=keras.initializers.Constant(
                math.log(self.initial_scale)
            ),
        )
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(),
                initializer=keras.initializers.Constant(self.initial_bias),
            )

    @property
    def scale(self):
        """The current `s`, clipped."""
        return ops.minimum(ops.exp(self.log_scale), self.max_scale)

    def call(self, inputs):
        x, y = (ops.cast(t, "float32") for t in inputs)
        logits = self.scale * ops.matmul(x, ops.transpose(y))
        if self.use_bias:
            logits = logits + self.bias
        return logits

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], input_shape[1][0])

    def get_config(self):
        return {
            **super().get_config(),
            "initial_scale": self.initial_scale,
            "max_scale": self.max_scale,
            "use_bias": self.use_bias,
            "initial_bias": self.initial_bias,
        }
