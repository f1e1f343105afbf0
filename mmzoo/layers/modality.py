"""Modality handling shared by the fusion layers, and `ModalityDropout`.

Every fusion layer in `mmzoo.layers` is called the same way:

```python
fused = layer(inputs, modality_mask=None, training=None)
```

* `inputs`: a list (or tuple) of per-modality tensors, or a dict of them,
  whose values are then used in **sorted key order** (so `{"text": t,
  "image": i}` is the same as `[i, t]`). Vector layers take `[B, D_i]`
  tensors (widths may differ); sequence layers take `[B, T_i, D_i]`.
* `modality_mask`: optional `[B, M]` bool or float tensor; `True` or a value
  above 0.5 means "modality present". `None` means all present.
* A masked modality contributes nothing: its features are replaced by zeros
  before any computation (so its values, even NaN, cannot leak), it is left
  out of softmaxes, maxima and means, and its weight is exactly 0. When every
  modality of an example is masked the output is finite (zeros, or a learned
  constant for `LowRankFusion`).
"""

import keras
from keras import ops


def as_modality_list(inputs, where="fusion"):
    """Returns per-modality tensors as a list.

    Args:
        inputs: list, tuple or dict of tensors. A dict's values are taken in
            sorted key order.
        where: str. Name used in error messages.

    Returns:
        A list of tensors, one per modality.
    """
    if isinstance(inputs, dict):
        return [inputs[key] for key in sorted(inputs)]
    if isinstance(inputs, (list, tuple)):
        return list(inputs)
    raise ValueError(
        f"{where}: expected a list or dict of per-modality tensors; "
        f"received {type(inputs).__name__}"
    )


def _is_shape(value):
    return isinstance(value, (list, tuple)) and all(
        dim is None or isinstance(dim, int) for dim in value
    )


def as_shape_list(input_shape, where="fusion"):
    """Returns per-modality shapes as a list of tuples.

    Accepts what Keras passes to `build()`: a list, tuple or dict of shapes,
    including shapes restored from JSON (lists of lists).

    Args:
        input_shape: list, tuple or dict of shapes.
        where: str. Name used in error messages.

    Returns:
        A list of shape tuples, one per modality.
    """
    if isinstance(input_shape, dict):
        shapes = [input_shape[key] for key in sorted(input_shape)]
    elif isinstance(input_shape, (list, tuple)) and not _is_shape(input_shape):
        shapes = list(input_shape)
    else:
        raise ValueError(
            f"{where}: expected a list or dict of per-modality tensors; "
            f"received a single input of shape {input_shape}"
        )
    if not shapes or not all(_is_shape(shape) for shape in shapes):
        raise ValueError(
            f"{where}: expected a non-empty list or dict of per-modality "
            f"tensors; received shapes {input_shape}"
        )
    return [tuple(shape) for shape in shapes]


def _batch_ones(tensor, dtype):
    """A `[B]` vector of ones with the batch size of `tensor`."""
    while len(tensor.shape) > 1:
        tensor = tensor[..., 0]
    return ops.ones_like(tensor, dtype=dtype)


def resolve_modality_mask(modality_mask, tensors, dtype, where="fusion"):
    """Returns a `[B, M]` float mask with 1.0 = present, 0.0 = missing.

    Args:
        modality_mask: `None` (all present) or a `[B, M]` bool or numeric
            tensor; values above 0.5 mean present.
        tensors: list of the `M` per-modality tensors (for the batch size).
        dtype: str. Dtype of the returned mask.
        where: str. Name used in error messages.

    Returns:
        A `[B, M]` tensor of zeros and ones of `dtype`.
    """
    num_modalities = len(tensors)
    if modality_mask is None:
        ones = _batch_ones(tensors[0], dtype)
        return ops.stack([ones] * num_modalities, axis=1)
    mask = ops.convert_to_tensor(modality_mask)
    if len(mask.shape) != 2 or mask.shape[-1] not in (None, num_modalities):
        raise ValueError(
            f"{where}: modality_mask must have shape [batch, "
            f"{num_modalities}] (one column per modality); received shape "
            f"{tuple(mask.shape)}"
        )
    if keras.backend.standardize_dtype(mask.dtype) != "bool":
        mask = ops.greater(mask, ops.cast(0.5, mask.dtype))
    return ops.cast(mask, dtype)


def zero_masked(tensor, present):
    """Replaces the rows of `tensor` whose `present` entry is 0 by zeros.

    Uses `where` rather than a product so NaN or inf in a missing modality
    cannot leak into the output or its gradient.

    Args:
        tensor: tensor of shape `[B, ...]`.
        present: tensor of shape `[B]` or a prefix of `tensor`'s shape,
            1.0 = keep.

    Returns:
        A tensor like `tensor`.
    """
    keep = ops.greater(present, ops.cast(0.5, present.dtype))
    while len(keep.shape) < len(tensor.shape):
        keep = ops.expand_dims(keep, -1)
    return ops.where(keep, tensor, ops.zeros_like(tensor))


def masked_softmax(logits, mask, axis=-1):
    """Softmax over the entries where `mask` is 1; masked entries get 0.

    Computed in float32. If every entry along `axis` is masked, all weights
    are 0 (not uniform, not NaN).

    Args:
        logits: tensor.
        mask: tensor broadcastable to `logits`, 1.0 = present.
        axis: int. Axis to normalize over.

    Returns:
        Weights like `logits`, in `logits`' dtype, summing to 1 over present
        entries (or to 0 when none is present).
    """
    dtype = logits.dtype
    mask = ops.cast(mask, "float32")
    present = ops.greater(mask, 0.5)
    logits = ops.where(present, ops.cast(logits, "float32"), -1e9)
    logits = logits - ops.max(logits, axis=axis, keepdims=True)
    exp = ops.where(present, ops.exp(logits), 0.0)
    total = ops.sum(exp, axis=axis, keepdims=True)
    return ops.cast(exp / ops.maximum(total, 1e-12), dtype)


def masked_mean(values, mask, axis=1):
    """Mean of `values` over `axis`, counting only entries where mask is 1.

    Args:
        values: tensor `[B, N, ...]`.
        mask: tensor `[B, N]`, 1.0 = present.
        axis: int. Axis to average over.

    Returns:
        The mean with `axis` removed; zeros where nothing is present.
    """
    mask = ops.cast(mask, values.dtype)
    weights = mask
    while len(weights.shape) < len(values.shape):
        weights = ops.expand_dims(weights, -1)
    values = zero_masked(values, mask)
    total = ops.sum(values * weights, axis=axis)
    count = ops.sum(weights, axis=axis)
    return total / ops.maximum(count, ops.cast(1.0, values.dtype))


class FusionLayer(keras.layers.Layer):
    """Base class for layers that fuse a list or dict of modality tensors.

    Subclasses call `self._modality_shapes(input_shape)` in `build()` and
    `self._prepare(inputs, modality_mask)` in `call()`; see the module
    docstring for the calling convention.
    """

    input_rank = 2
    num_modalities_allowed = None

    def _modality_shapes(self, input_shape):
        shapes = as_shape_list(input_shape, self.name)
        allowed = self.num_modalities_allowed
        if allowed is not None and len(shapes) != allowed:
            raise ValueError(
                f"{self.name}: expected exactly {allowed} modalities; "
                f"received {len(shapes)} with shapes {shapes}"
            )
        for index, shape in enumerate(shapes):
            if len(shape) != self.input_rank or shape[-1] is None:
                kind = "[B, D]" if self.input_rank == 2 else "[B, T, D]"
                raise ValueError(
                    f"{self.name}: modality {index} must have shape {kind} "
                    f"with a known last dimension; received {shape}"
                )
        self._num_modalities = len(shapes)
        return shapes

    def _prepare(self, inputs, modality_mask):
        tensors = as_modality_list(inputs, self.name)
        expected = getattr(self, "_num_modalities", None)
        if expected is not None and len(tensors) != expected:
            raise ValueError(
                f"{self.name}: built for {expected} modalities; received "
                f"{len(tensors)}"
            )
        mask = resolve_modality_mask(
            modality_mask, tensors, self.compute_dtype, self.name
        )
        tensors = [
            zero_masked(tensor, mask[:, index])
            for index, tensor in enumerate(tensors)
        ]
        return tensors, mask

    def compute_mask(self, inputs, previous_mask=None):
        # Fusion outputs carry no timestep mask; defining this also tells
        # Keras that incoming (token) masks are consumed, not dropped.
        return None


@keras.saving.register_keras_serializable(package="mmzoo")
class ModalityDropout(keras.layers.Layer):
    """Randomly drops whole modalities during training.

    Returns a new modality mask; pass it to a fusion layer's `modality_mask`.
    In training each present modality of each example is dropped with
    probability `rate`; if that would drop every present modality of an
    example, one of its present modalities, chosen uniformly, is kept. At
    inference the incoming mask is returned unchanged (all ones if none was
    given). Training with it teaches the fusion to cope with missing
    modalities at serving time.

    Args:
        rate: float. Probability of dropping each modality, in `[0, 1)`.
        seed: int or None. Seed of the layer's `keras.random.SeedGenerator`.
            Defaults to `None`.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`).

    Call args:
        inputs: list or dict of the `M` modality tensors (only their number
            and batch size are used).
        modality_mask: optional `[B, M]` mask, 1 = present.
        training: bool. Dropping happens only when true.

    Returns:
        A `[B, M]` float mask of zeros and ones.

    Example:
    ```python
    mask = ModalityDropout(0.3)([image_vec, text_vec], modality_mask=m)
    fused = AttentionFusion(64)([image_vec, text_vec], modality_mask=mask)
    ```

    Reference:
    - [Neverova et al., 2016. ModDrop: Adaptive Multi-Modal Gesture
      Recognition](https://arxiv.org/abs/1501.00102)
    """

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= float(rate) < 1.0:
            raise ValueError(
                f"ModalityDropout: rate must be in [0, 1); received {rate}"
            )
        self.rate = float(rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, modality_mask=None, training=None):
        tensors = as_modality_list(inputs, self.name)
        mask = resolve_modality_mask(
            modality_mask, tensors, self.compute_dtype, self.name
        )
        if not training or self.rate == 0.0:
            return mask
        num_modalities = len(tensors)
        present = ops.greater(mask, 0.5)
        draw = keras.random.uniform(
            ops.shape(mask), seed=self.seed_generator, dtype="float32"
        )
        keep = ops.logical_and(present, ops.greater_equal(draw, self.rate))
        # Rescue rows where every present modality was dropped: keep one
        # present modality chosen uniformly at random.
        draw = keras.random.uniform(
            ops.shape(mask), seed=self.seed_generator, dtype="float32"
        )
        draw = ops.where(present, draw, -1.0)
        rescue = ops.one_hot(ops.argmax(draw, axis=1), num_modalities)
        rescue = ops.logical_and(present, ops.greater(rescue, 0.5))
        any_kept = ops.any(keep, axis=1, keepdims=True)
        keep = ops.where(any_kept, keep, rescue)
        return ops.cast(keep, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        shapes = as_shape_list(input_shape, self.name)
        return (shapes[0][0], len(shapes))

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "seed": self.seed})
        return config


@keras.saving.register_keras_serializable(package="mmzoo")
class NaNMask(keras.layers.Layer):
    """Splits a float input that marks missing parts with NaN into the
    input with zeros there and a mask.

    mmzoo's float inputs mark what is missing with NaN (a missing audio is
    a row of NaN, a padding video frame a frame of NaN). The mask keeps the
    first `mask_rank` axes: an entry is present when none of the values
    under it is NaN. Zeros are put in with `where`, so no NaN reaches a
    layer or a gradient.

    Args:
        mask_rank: int. Axes of the mask (1: one flag per row `[B]`; 2: per
            row and step `[B, T]`). Defaults to 1.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`).

    Call args:
        inputs: float `[B, ...]`.

    Returns:
        `(values, mask)`: `values` like `inputs` with 0 in place of every
        missing entry, `mask` bool `[B]` or `[B, T]`, true = present.

    Example:
    ```python
    frames, frame_mask = NaNMask(mask_rank=2)(video)  # [B, T, S, S, 3]
    ```
    """

    def __init__(self, mask_rank=1, **kwargs):
        super().__init__(**kwargs)
        self.mask_rank = int(mask_rank)
        if self.mask_rank < 1:
            raise ValueError(
                f"NaNMask: mask_rank must be >= 1, got {mask_rank}"
            )

    def call(self, inputs):
        missing = ops.isnan(inputs)
        axes = tuple(range(self.mask_rank, len(inputs.shape)))
        if axes:
            missing_entry = ops.any(missing, axis=axes)
        else:
            missing_entry = missing
        present = ops.logical_not(missing_entry)
        shape = tuple(present.shape) + (1,) * len(axes)
        keep = ops.reshape(present, (-1, *shape[1:])) if axes else present
        values = ops.where(
            ops.logical_and(keep, ops.logical_not(missing)),
            inputs,
            ops.zeros_like(inputs),
        )
        return values, present

    def compute_output_spec(self, inputs):
        return (
            keras.KerasTensor(inputs.shape, dtype=inputs.dtype),
            keras.KerasTensor(inputs.shape[: self.mask_rank], dtype="bool"),
        )

    def get_config(self):
        config = super().get_config()
        config["mask_rank"] = self.mask_rank
        return config
