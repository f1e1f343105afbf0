"""Text encoders that return a pooled vector, the token sequence and its mask.

`build_text_encoder(kind, vocabulary_size, max_length, ...)` returns a
Functional `keras.Model` mapping token ids, int32 `[B, T]` with 0 =
padding, to `[pooled [B, D], sequence [B, T, D], token_mask [B, T]]`.

Kinds, each registered with `register_text_encoder` in `TEXT_ENCODERS`:

- `lstm`: `Embedding(mask_zero=True)` + LSTM; `pooled` is the last hidden
  state (of the last real token), `sequence` the per-token outputs.
- `bilstm`: the same with a bidirectional LSTM; `pooled` joins the last
  forward and the last backward state, `D = 2 * units`.
- `bag`: the token embeddings alone (the low-level features of early
  fusion); `pooled` is their mean over real tokens.
- `transformer`: keras-hub `TokenAndPositionEmbedding` and `num_layers`
  `TransformerEncoder` blocks masked by `ids != 0`; `pooled` is the mean
  over real tokens, `D = embedding_dim`.
- `bert`: a keras-hub `BertBackbone` built from `embedding_dim`,
  `num_layers`, `num_heads` and `intermediate_dim`, or any BERT-like
  keras-hub text backbone `preset` (e.g. `bert_base_en_uncased` or a
  local folder, see `mmzoo.encoders.presets`); the encoder feeds it
  `padding_mask = ids != 0` and zero `segment_ids`, so it still takes
  token ids alone. `pooled` is the backbone's `pooled_output` (its first
  token when it has none), `sequence` its `sequence_output`. A preset's
  ids must be the ones its tokenizer gives (with `[PAD]` = 0, as in BERT).

A row of only padding (a missing report) gives finite outputs and an
all-false mask: `pooled` is zeros for every kind, and `sequence` is zeros
for `lstm`, `bilstm`, `transformer` and `bert`. `transformer` and `bert`
also zero the `sequence` at every padded position (`ZeroMissing`).
"""

import inspect

import keras
import keras_hub
from keras import ops

from mmzoo.encoders.image import ClassTokenSplit
from mmzoo.encoders.registry import TEXT_ENCODERS, register_text_encoder

PRESET_TEXT_KINDS = ("bert",)
"""Text kinds that can start from a keras-hub preset."""

_BACKBONE_INPUTS = ("token_ids", "padding_mask", "segment_ids")


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


@keras.saving.register_keras_serializable(package="mmzoo")
class ZeroMissing(keras.layers.Layer):
    """Zeros padded tokens of `[B, T, D]`, or rows `[B, D]` without tokens.

    Transformers give padded positions (and rows of only padding) finite
    but arbitrary values; zeroing them makes a missing text look the same
    to every fusion whatever the encoder.

    Args:
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`).

    Call args:
        inputs: float `[B, T, D]` (a sequence) or `[B, D]` (pooled).
        token_mask: bool `[B, T]`, true on real tokens.

    Returns:
        A tensor like `inputs`.

    Example:
    ```python
    pooled = ZeroMissing()(pooled, token_mask=mask)
    ```
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, token_mask):
        keep = ops.cast(token_mask, "bool")
        if len(inputs.shape) == 2:
            keep = ops.any(keep, axis=1, keepdims=True)
        else:
            keep = ops.expand_dims(keep, -1)
        return ops.where(keep, inputs, ops.zeros_like(inputs))

    def compute_mask(self, inputs, mask=None):
        # A sequence keeps its Keras mask; a pooled vector has none.
        return mask if len(inputs.shape) == 3 else None

    def compute_output_shape(self, inputs_shape, token_mask_shape):
        return inputs_shape


@keras.saving.register_keras_serializable(package="mmzoo")
class BackboneTextInputs(keras.layers.Layer):
    """Token ids `[B, T]` → the input dict of a keras-hub text backbone.

    `padding_mask` is `ids != 0` and `segment_ids` are zeros (one
    segment), both int32 like the ids.

    Args:
        input_names: list of str. The backbone inputs to produce, among
            `token_ids`, `padding_mask`, `segment_ids`. Defaults to all.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`).

    Example:
    ```python
    sequence = bert_backbone(BackboneTextInputs()(token_ids))[
        "sequence_output"
    ]
    ```
    """

    def __init__(self, input_names=_BACKBONE_INPUTS, **kwargs):
        super().__init__(**kwargs)
        unknown = sorted(set(input_names) - set(_BACKBONE_INPUTS))
        if unknown:
            raise ValueError(
                f"{self.name}: unknown backbone inputs {', '.join(unknown)}; "
                f"valid: {', '.join(_BACKBONE_INPUTS)}"
            )
        self.input_names = list(input_names)

    def call(self, inputs):
        ids = ops.cast(inputs, "int32")
        values = {
            "token_ids": ids,
            "padding_mask": ops.cast(ops.not_equal(ids, 0), "int32"),
            "segment_ids": ops.zeros_like(ids),
        }
        return {name: values[name] for name in self.input_names}

    def compute_output_spec(self, inputs):
        return {
            name: keras.KerasTensor(inputs.shape, dtype="int32")
            for name in self.input_names
        }

    def get_config(self):
        return {**super().get_config(), "input_names": self.input_names}


def _no_preset(kind, preset="", trainable=True):
    """Raises when a kind without a backbone is given pretrained options."""
    given = [f"preset={preset!r}"] if preset else []
    if not trainable:
        given.append(f"trainable={trainable!r}")
    if given:
        raise ValueError(
            f"build_text_encoder: {kind} has no pretrained backbone; "
            f"received {', '.join(given)}. preset and trainable apply to "
            f"{', '.join(PRESET_TEXT_KINDS)}"
        )


def _check_heads(kind, embedding_dim, num_heads):
    if int(num_heads) < 1 or int(embedding_dim) % int(num_heads):
        raise ValueError(
            f"build_text_encoder: {kind} needs embedding_dim divisible by "
            f"num_heads; received embedding_dim={embedding_dim}, "
            f"num_heads={num_heads}"
        )


def _embed(token_ids, vocabulary_size, embedding_dim, dropout):
    x = keras.layers.Embedding(
        int(vocabulary_size),
        int(embedding_dim),
        mask_zero=True,
        name="token_embedding",
    )(token_ids)
    if dropout:
        x = keras.layers.Dropout(dropout, name="embedding_dropout")(x)
    return x


@register_text_encoder("lstm")
def lstm_text_encoder(
    token_ids,
    token_mask,
    vocabulary_size=20000,
    embedding_dim=128,
    units=128,
    dropout=0.0,
    preset="",
    trainable=True,
    **options,
):
    """Word embeddings + LSTM; pooled = the last real token's state."""
    _no_preset("lstm", preset, trainable)
    x = _embed(token_ids, vocabulary_size, embedding_dim, dropout)
    sequence, pooled, _ = keras.layers.LSTM(
        int(units), return_sequences=True, return_state=True, name="lstm"
    )(x)
    return pooled, sequence


@register_text_encoder("bilstm")
def bilstm_text_encoder(
    token_ids,
    token_mask,
    vocabulary_size=20000,
    embedding_dim=128,
    units=128,
    dropout=0.0,
    preset="",
    trainable=True,
    **options,
):
    """Word embeddings + bidirectional LSTM; pooled = both last states."""
    _no_preset("bilstm", preset, trainable)
    x = _embed(token_ids, vocabulary_size, embedding_dim, dropout)
    sequence, forward, _, backward, _ = keras.layers.Bidirectional(
        keras.layers.LSTM(int(units), return_sequences=True, return_state=True),
        name="bilstm",
    )(x)
    pooled = keras.layers.Concatenate(name="last_states")([forward, backward])
    return pooled, sequence


@register_text_encoder("bag")
def bag_text_encoder(
    token_ids,
    token_mask,
    vocabulary_size=20000,
    embedding_dim=128,
    dropout=0.0,
    preset="",
    trainable=True,
    **options,
):
    """Word embeddings alone; pooled = their mean over real tokens."""
    _no_preset("bag", preset, trainable)
    x = _embed(token_ids, vocabulary_size, embedding_dim, dropout)
    return MaskedMean(name="mean_pool")(x), x


@register_text_encoder("transformer")
def transformer_text_encoder(
    token_ids,
    token_mask,
    vocabulary_size=20000,
    max_length=128,
    embedding_dim=128,
    dropout=0.0,
    num_layers=2,
    num_heads=2,
    intermediate_dim=256,
    preset="",
    trainable=True,
    **options,
):
    """Token + position embeddings and a Transformer encoder stack."""
    _no_preset("transformer", preset, trainable)
    _check_heads("transformer", embedding_dim, num_heads)
    x = keras_hub.layers.TokenAndPositionEmbedding(
        int(vocabulary_size),
        int(max_length),
        int(embedding_dim),
        name="token_embedding",
    )(token_ids)
    if dropout:
        x = keras.layers.Dropout(dropout, name="embedding_dropout")(x)
    for index in range(int(num_layers)):
        x = keras_hub.layers.TransformerEncoder(
            int(intermediate_dim),
            int(num_heads),
            dropout=dropout,
            name=f"transformer_layer_{index}",
        )(x, padding_mask=token_mask)
    pooled = MaskedMean(name="mean_pool")(x, mask=token_mask)
    sequence = ZeroMissing(name="zero_padding")(x, token_mask=token_mask)
    return pooled, sequence


def backbone_text_outputs(token_ids, token_mask, backbone, preset=""):
    """Runs a keras-hub text backbone on token ids alone.

    Args:
        token_ids: KerasTensor. int32 `[B, T]`, 0 = padding.
        token_mask: KerasTensor. bool `[B, T]`, `ids != 0`.
        backbone: a keras-hub text backbone taking `token_ids` and
            optionally `padding_mask` / `segment_ids`, returning
            `sequence_output` (and `pooled_output`) or a sequence.
        preset: str. The preset it came from, for error messages.

    Returns:
        `(pooled [B, D], sequence [B, T, D])`, both zero where the mask is
        false (padding, or a row without tokens).

    Raises:
        ValueError: for a backbone that is not a token-id text backbone,
            or that takes fewer than `T` tokens.
    """
    source = f"preset {preset!r}" if preset else backbone.name
    names = list(backbone.input) if isinstance(backbone.input, dict) else []
    if "token_ids" not in names or set(names) - set(_BACKBONE_INPUTS):
        raise ValueError(
            f"build_text_encoder: {source} is not a token-id text backbone; "
            f"its inputs are {names or backbone.input}, expected token_ids "
            f"and optionally {', '.join(_BACKBONE_INPUTS[1:])}"
        )
    length = token_ids.shape[1]
    limit = getattr(backbone, "max_sequence_length", None)
    if limit is not None and length > limit:
        raise ValueError(
            f"build_text_encoder: {source} takes at most {limit} tokens; "
            f"received max_length={length}"
        )
    inputs = BackboneTextInputs(
        [name for name in _BACKBONE_INPUTS if name in names],
        name="backbone_inputs",
    )(token_ids)
    outputs = backbone(inputs)
    pooled = None
    if isinstance(outputs, dict):
        sequence = outputs.get("sequence_output")
        pooled = outputs.get("pooled_output")
    else:
        sequence = outputs
    if sequence is None or len(sequence.shape) != 3:
        raise ValueError(
            f"build_text_encoder: {source} returns {outputs}; expected "
            "sequence_output [B, T, D]"
        )
    if pooled is None:
        pooled, _ = ClassTokenSplit(name="first_token")(sequence)
    pooled = ZeroMissing(name="zero_missing")(pooled, token_mask=token_mask)
    sequence = ZeroMissing(name="zero_padding")(sequence, token_mask=token_mask)
    return pooled, sequence


@register_text_encoder("bert")
def bert_text_encoder(
    token_ids,
    token_mask,
    vocabulary_size=20000,
    max_length=128,
    embedding_dim=128,
    dropout=0.0,
    num_layers=2,
    num_heads=2,
    intermediate_dim=256,
    preset="",
    trainable=True,
    **options,
):
    """A keras-hub `BertBackbone`, from scratch or from a preset."""
    if preset:
        backbone = keras_hub.models.Backbone.from_preset(preset)
    else:
        _check_heads("bert", embedding_dim, num_heads)
        backbone = keras_hub.models.BertBackbone(
            vocabulary_size=int(vocabulary_size),
            num_layers=int(num_layers),
            num_heads=int(num_heads),
            hidden_dim=int(embedding_dim),
            intermediate_dim=int(intermediate_dim),
            dropout=dropout,
            max_sequence_length=int(max_length),
            name="bert_backbone",
        )
    backbone.trainable = bool(trainable)
    return backbone_text_outputs(token_ids, token_mask, backbone, preset)


def build_text_encoder(
    kind="bilstm",
    vocabulary_size=20000,
    max_length=128,
    embedding_dim=128,
    units=128,
    dropout=0.0,
    num_layers=2,
    num_heads=2,
    intermediate_dim=256,
    preset="",
    trainable=True,
    name="text_encoder",
):
    """Builds a token-sequence encoder returning `[pooled, sequence, mask]`.

    Args:
        kind: str. One of `TEXT_ENCODERS` (see the module docstring).
            Defaults to `"bilstm"`.
        vocabulary_size: int. Number of token ids, padding (0) and OOV (1)
            included; a `preset` has its own. Defaults to `20000`.
        max_length: int. Tokens per row (`T`). Defaults to `128`.
        embedding_dim: int. Width of the token embedding (the model width
            of `transformer` and `bert`). Defaults to `128`.
        units: int. LSTM units (per direction). Defaults to `128`.
        dropout: float. Dropout on the token embeddings (and inside the
            transformer blocks). Defaults to `0.0`.
        num_layers: int. Transformer blocks of `transformer` / `bert`.
            Defaults to `2`.
        num_heads: int. Attention heads; divides `embedding_dim`. Defaults
            to `2`.
        intermediate_dim: int. Feed-forward width of the transformer
            blocks. Defaults to `256`.
        preset: str. A BERT-like keras-hub text backbone preset (Kaggle
            handle such as `"bert_base_en_uncased"`, or a local folder) to
            start `bert` from; the size arguments are then the preset's.
            `""` = none. Defaults to `""`.
        trainable: bool. False freezes the `bert` backbone. Defaults to
            True.
        name: str. Name of the returned model. Defaults to
            `"text_encoder"`.

    Returns:
        A Functional `keras.Model` from `token_ids` int32 `[B, T]` to
        `[pooled [B, D], sequence [B, T, D], token_mask bool [B, T]]`.

    Raises:
        ValueError: for an unknown `kind`, a vocabulary smaller than 2,
            sizes a kind cannot take or pretrained options it has no use
            for.

    Example:
    ```python
    encoder = build_text_encoder("lstm", vocabulary_size=500, max_length=40)
    pooled, sequence, mask = encoder(report_ids)
    bert = build_text_encoder(
        "bert", max_length=128, preset="bert_base_en_uncased"
    )
    ```

    Reference:
    - LSTNet report branch (design documents of this project): word
      embeddings and an LSTM over the report.
    - [Hochreiter & Schmidhuber, 1997. Long Short-Term
      Memory](https://doi.org/10.1162/neco.1997.9.8.1735)
    - [Schuster & Paliwal, 1997. Bidirectional Recurrent Neural
      Networks](https://doi.org/10.1109/78.650093)
    - [Vaswani et al., 2017. Attention Is All You
      Need](https://arxiv.org/abs/1706.03762)
    - [Devlin et al., 2019. BERT: Pre-training of Deep Bidirectional
      Transformers for Language
      Understanding](https://arxiv.org/abs/1810.04805)
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
    if int(max_length) < 1:
        raise ValueError(
            f"build_text_encoder: max_length must be >= 1; received "
            f"{max_length}"
        )
    token_ids = keras.Input((int(max_length),), dtype="int32", name="token_ids")
    mask = TokenMask(name="token_mask")(token_ids)
    pooled, sequence = TEXT_ENCODERS[kind](
        token_ids,
        mask,
        vocabulary_size=int(vocabulary_size),
        max_length=int(max_length),
        embedding_dim=int(embedding_dim),
        units=int(units),
        dropout=dropout,
        num_layers=int(num_layers),
        num_heads=int(num_heads),
        intermediate_dim=int(intermediate_dim),
        preset=preset or "",
        trainable=trainable,
    )
    return keras.Model(token_ids, [pooled, sequence, mask], name=name)


# Standard config field -> `build_text_encoder` argument.
_CONFIG_FIELDS = {
    "vocabulary_size": "vocabulary_size",
    "max_text_length": "max_length",
    "embedding_dim": "embedding_dim",
    "text_units": "units",
    "text_dropout": "dropout",
    "text_num_layers": "num_layers",
    "text_num_heads": "num_heads",
    "text_intermediate_dim": "intermediate_dim",
    "text_preset": "preset",
    "text_trainable": "trainable",
}


def text_encoder_from_config(config, spec=None, name="text_encoder", kind=None):
    """Builds the text encoder a model config describes.

    Reads the standard field names (`text_encoder`, `text_preset`,
    `text_trainable`, `vocabulary_size`, `max_text_length`,
    `embedding_dim`, `text_units`, `text_num_layers`, `text_num_heads`,
    `text_intermediate_dim`, `text_dropout`); a missing field takes
    `build_text_encoder`'s default.

    Args:
        config: any object with (some of) those attributes, e.g. a model's
            frozen config dataclass.
        spec: `mmzoo.specs.TextSpec`. The fitted text input; its
            `vocabulary_size` and `max_length` override the config's.
            Defaults to None.
        name: str. Name of the returned model. Defaults to
            `"text_encoder"`.
        kind: str. Overrides `config.text_encoder` (e.g. `"bag"` for early
            fusion); a different kind ignores the config's pretrained
            options (`text_preset`, `text_trainable`), which describe the
            configured backbone. Defaults to None.

    Returns:
        The `keras.Model` of `build_text_encoder`.

    Example:
    ```python
    encoder = text_encoder_from_config(config, spec=text_spec)
    ```
    """
    defaults = inspect.signature(build_text_encoder).parameters
    kwargs = {
        argument: getattr(config, field, defaults[argument].default)
        for field, argument in _CONFIG_FIELDS.items()
    }
    if spec is not None:
        kwargs["vocabulary_size"] = spec.vocabulary_size
        kwargs["max_length"] = spec.max_length
    configured = getattr(config, "text_encoder", "bilstm")
    if kind and kind != configured:
        # The pretrained options describe the configured backbone.
        kwargs.update(preset="", trainable=True)
    return build_text_encoder(kind or configured, name=name, **kwargs)
