"""Adam in fewer operations on TensorFlow, and row-sparse for embeddings.

Keras 3's `keras.optimizers.Adam` writes its update in `keras.ops`: on
TensorFlow about a dozen small kernels per variable (moments, powers,
square root, division, three assignments), and for an embedding table's
sparse gradient (`tf.IndexedSlices`) the variable's own update is computed
over the whole table every step (and a row repeated in a batch has its
squared gradients summed, not its gradients squared). On the CTR
benchmark's model (19 variables) the optimizer's kernels were a quarter of
a training step (`benchmarks/`, the step profile).

`Adam` here is `keras.optimizers.Adam` (same arguments, same
serialization, same arithmetic) whose TensorFlow update is one fused
kernel per dense variable (`ResourceApplyAdam`, TensorFlow's own Adam
kernel, which tf.keras used). With `lazy=True`, a sparse gradient updates
only the rows it touches, their moments included (TF Addons' LazyAdam,
the usual optimizer for large embedding tables): rows absent from a batch
keep their moments instead of decaying them, so the result differs from
Adam's, slightly, and a step costs what the batch touches instead of the
table's size. Other backends, AMSGrad, and sparse gradients without
`lazy` take Keras's own update.

This module is TensorFlow-specific training code, beside the export: the
models themselves stay backend-agnostic.
"""

import keras


@keras.saving.register_keras_serializable(package="mmzoo")
class Adam(keras.optimizers.Adam):
    """`keras.optimizers.Adam` with fused (and, with `lazy`, row-sparse)
    TensorFlow updates; see the module docstring.

    Args:
        lazy: bool. Update only the rows of a sparse (embedding) gradient.
            Defaults to False (Adam's arithmetic exactly).
        **kwargs: `keras.optimizers.Adam` arguments.
    """

    def __init__(self, *args, lazy=False, name="adam", **kwargs):
        super().__init__(*args, name=name, **kwargs)
        self.lazy = bool(lazy)

    def update_step(self, gradient, variable, learning_rate):
        if keras.backend.backend() != "tensorflow" or self.amsgrad:
            return super().update_step(gradient, variable, learning_rate)
        import tensorflow as tf

        sparse = isinstance(gradient, tf.IndexedSlices)
        if sparse and not self.lazy:
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        index = self._get_variable_index(variable)
        m = _tf_variable(self._momentums[index])
        v = _tf_variable(self._velocities[index])
        variable = _tf_variable(variable)
        lr = tf.cast(learning_rate, dtype)
        step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        epsilon = tf.cast(self.epsilon, dtype)
        beta_1_power = tf.pow(beta_1, step)
        beta_2_power = tf.pow(beta_2, step)
        if not sparse:
            return tf.raw_ops.ResourceApplyAdam(
                var=variable.handle,
                m=m.handle,
                v=v.handle,
                beta1_power=beta_1_power,
                beta2_power=beta_2_power,
                lr=lr,
                beta1=beta_1,
                beta2=beta_2,
                epsilon=epsilon,
                grad=tf.cast(gradient, dtype),
                use_locking=False,
            )
        # Rows seen several times in the batch: their gradients summed.
        rows, position = tf.unique(gradient.indices)
        values = tf.math.unsorted_segment_sum(
            tf.cast(gradient.values, dtype), position, tf.shape(rows)[0]
        )
        m_rows = beta_1 * tf.gather(m, rows) + (1 - beta_1) * values
        v_rows = beta_2 * tf.gather(v, rows) + (1 - beta_2) * tf.square(values)
        alpha = lr * tf.sqrt(1 - beta_2_power) / (1 - beta_1_power)
        m.scatter_update(tf.IndexedSlices(m_rows, rows))
        v.scatter_update(tf.IndexedSlices(v_rows, rows))
        variable.scatter_sub(
            tf.IndexedSlices(alpha * m_rows / (tf.sqrt(v_rows) + epsilon), rows)
        )

    def get_config(self):
        return {**super().get_config(), "lazy": self.lazy}


def _tf_variable(variable):
    """The `tf.Variable` of a Keras variable (or the variable itself)."""
    return (
        getattr(variable, "value", variable)
        if isinstance(variable, keras.Variable)
        else variable
    )
