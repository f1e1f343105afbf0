"""Text encoders that return a pooled vector, the token sequence and its mask.

`build_text_encoder(kind, vocabulary_size, max_length, ...)` returns a
Functional `keras.Model` mapping token ids, int32 `[B, T]` with 0 =
padding, to `[pooled [B, D], sequence [B, T, D], token_mask [B, T]]`:

- `lstm`: `Embedding(mask_zero=True)` + LSTM; `pooled` is the last hidden
  state (of the last real token), `sequence` the per-token outputs.
- `bilstm`: the same with a bidirectional LSTM; `pooled` joins the last
  forward and the last backward state, `D = 2 * units`.
- `bag`: the token embeddings alone (the low-level features of early
  fusion); `pooled` is their mean over real tokens.

A row of only padding (a missing report) gives finite outputs: `pooled`
and `sequence` are zeros for `lstm`/`bilstm`/`bag` alike, and its mask is
all false.
"""

import keras
from keras import ops

TEXT_ENCODERS = ("lstm", "bilstm", "bag")
"""Kinds accepted by `build_text_encoder`."""


@keras.saving.register_keras_serializable(package="mmzoo")
class TokenMask(keras.layers.Layer):
    """Token ids `[B, T]` → bool mask `[B, T]`, true where the id is not 0.

    Args:
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`).

    Example:
    ```python
    mask = TokenMask()(token_ids)
    ```
    """

    def call(self, inputs):
        return ops.not_equal(inputs, ops.cast(0, inputs.dtype))

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs.shape, dtype="bool")


@keras.saving.register_keras_serializable(package="mmzoo")
class MaskedMean(keras.layers.Layer):
    """Mean of `[B, T, D]` over the tokens where `mask` is true.

    Unlike `keras.layers.GlobalAveragePooling1D`, an all-masked row gives
    zeros, not NaN (whose gradient would poison training even when the
    row is masked out later).

    Args:
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`).

    Call args:
        inputs: float `[B, T, D]`.
        mask: bool `[B, T]`; filled in by Keras from `mask_zero` embeddings.

    Returns:
        A `[B, D]` tensor.

    Example:
    ```python
    pooled = MaskedMean()(Embedding(1000, 32, mask_zero=True)(ids))
    ```
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        if mask is None:
            return ops.mean(inputs, axis=1)
        weights = ops.expand_dims(ops.cast(mask, inputs.dtype), -1)
        total = ops.sum(ops.where(weights > 0, inputs, 0.0), axis=1)
        count = ops.sum(weights, axis=1)
        return total / ops.maximum(count, ops.cast(1.0, inputs.dtype))

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])


def build_text_encoder(
    kind="bilstm",
    vocabulary_size=20000,
    max_length=128,
    embedding_dim=128,
    units=128,
    dropout=0.0,
    name="report_encoder",
):
    """Builds a token-sequence encoder returning `[pooled, sequence, mask]`.

    Args:
        kind: str. One of `TEXT_ENCODERS` (see the module docstring).
            Defaults to `"bilstm"`.
        vocabulary_size: int. Number of token ids, padding (0) and OOV (1)
            included. Defaults to `20000`.
        max_length: int. Tokens per row (`T`). Defaults to `128`.
        embedding_dim: int. Width of the token embedding. Defaults to `128`.
        units: int. LSTM units (per direction). Defaults to `128`.
        dropout: float. Dropout on the token embeddings. Defaults to `0.0`.
        name: str. Name of the returned model. Defaults to
            `"report_encoder"`.

    Returns:
        A Functional `keras.Model` from `token_ids` int32 `[B, T]` to
        `[pooled [B, D], sequence [B, T, D], token_mask bool [B, T]]`.

    Raises:
        ValueError: for an unknown `kind` or a vocabulary smaller than 2.

    Example:
    ```python
    encoder = build_text_encoder("lstm", vocabulary_size=500, max_length=40)
    pooled, sequence, mask = encoder(report_ids)
    ```

    Reference:
    - LSTNet report branch (design documents of this project): word
      embeddings and an LSTM over the report.
    - [Hochreiter & Schmidhuber, 1997. Long Short-Term
      Memory](https://doi.org/10.1162/neco.1997.9.8.1735)
    - [Schuster & Paliwal, 1997. Bidirectional Recurrent Neural
      Networks](https://doi.org/10.1109/78.650093)
    """
    if kind not in TEXT_ENCODERS:
        raise ValueError(
            f"build_text_encoder: unknown kind {kind!r}; valid: "
            f"{', '.join(TEXT_ENCODERS)}"
        )
    if int(vocabulary_size) < 2:
        raise ValueError(
            "build_text_encoder: vocabulary_size must be >= 2 (padding + "
            f"OOV); received {vocabulary_size}"
        )
    token_ids = keras.Input((int(max_length),), dtype="int32", name="token_ids")
    mask = TokenMask(name="token_mask")(token_ids)
    x = keras.layers.Embedding(
        int(vocabulary_size),
        int(embedding_dim),
        mask_zero=True,
        name="token_embedding",
    )(token_ids)
    if dropout:
        x = keras.layers.Dropout(dropout, name="embedding_dropout")(x)
    if kind == "bag":
        sequence = x
        pooled = MaskedMean(name="mean_pool")(x)
    elif kind == "lstm":
        sequence, pooled, _ = keras.layers.LSTM(
            int(units), return_sequences=True, return_state=True, name="lstm"
        )(x)
    else:
        sequence, forward, _, backward, _ = keras.layers.Bidirectional(
            keras.layers.LSTM(
                int(units), return_sequences=True, return_state=True
            ),
            name="bilstm",
        )(x)
        pooled = keras.layers.Concatenate(name="last_states")(
            [forward, backward]
        )
    return keras.Model(token_ids, [pooled, sequence, mask], name=name)
