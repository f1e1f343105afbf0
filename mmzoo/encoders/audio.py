"""Audio encoders (`keras.ops` only): a mono waveform → log-mel
spectrogram → a pooled vector, a sequence over time and its mask.

The log-mel is computed inside the model (`keras.layers.MelSpectrogram`),
so the training pipeline, the `serving_default` signature (WAV bytes) and
the `waveform` signature (samples) feed the same layer; each row's
features depend on that row alone (no clamp relative to the batch). A
missing audio (a row of NaN, `mmzoo.specs.AudioSpec`) is read as silence
and gets an all-false mask, so its pooled vector is zeros and fusion
layers leave its sequence out.

Kinds (`AUDIO_ENCODERS`):

- `cnn`: a small YAMNet-like network: Conv-BN-ReLU blocks over the
  `[time, mel]` image, each halving both axes; the mel axis is then
  averaged, leaving a sequence over time; `pooled` joins its mean and max
  over time (a short event shows in the max).
- `transformer`: the log-mel frames projected to `units`, learned position
  embeddings and keras-hub `TransformerEncoder` blocks; `pooled` is the
  mean.
- `mel`: the normalised log-mel frames themselves, projected to `units`
  (low-level features for early fusion); `pooled` is the mean.

Every kind adds learned position embeddings to its sequence, so a fusion
that attends across time (cross-modal attention with video frames) knows
when each step happened.

Reference:
    Hershey et al., "CNN Architectures for Large-Scale Audio
    Classification", ICASSP 2017 (VGGish; YAMNet is its MobileNet
    successor). https://arxiv.org/abs/1609.09430
    Gong et al., "AST: Audio Spectrogram Transformer", Interspeech 2021.
    https://arxiv.org/abs/2104.01778
"""

import keras
from keras import ops

from mmzoo.layers.modality import NaNMask

AUDIO_ENCODERS = ("cnn", "transformer", "mel")


@keras.saving.register_keras_serializable(package="mmzoo")
class StepMask(keras.layers.Layer):
    """Broadcasts a per-row bool mask `[B]` to every step of a sequence
    `[B, T, D]`: bool `[B, T]`."""

    def call(self, sequence, row_mask):
        steps = ops.ones_like(sequence[..., 0], dtype="bool")
        return ops.logical_and(steps, ops.expand_dims(row_mask, 1))

    def compute_output_spec(self, sequence, row_mask):
        return keras.KerasTensor(sequence.shape[:2], dtype="bool")


@keras.saving.register_keras_serializable(package="mmzoo")
class MaskedPooling(keras.layers.Layer):
    """Mean (and optionally max) of `[B, T, D]` over the steps where
    `steps` `[B, T]` (bool or 0/1) is set; zeros for a row with none.

    Args:
        with_max: bool. Concatenate the masked max to the mean (output
            `[B, 2D]`). Defaults to False.
    """

    def __init__(self, with_max=False, **kwargs):
        super().__init__(**kwargs)
        self.with_max = bool(with_max)
        # The steps to pool are `steps`; a Keras mask on the sequence (a
        # GRU's) says the same and ends here.
        self.supports_masking = True

    def compute_mask(self, sequence, previous_mask=None):
        return None

    def call(self, sequence, steps):
        weights = ops.expand_dims(ops.cast(steps, sequence.dtype), -1)
        total = ops.sum(ops.where(weights > 0, sequence, 0.0), axis=1)
        count = ops.maximum(ops.sum(weights, axis=1), 1.0)
        mean = total / count
        if not self.with_max:
            return mean
        lowest = ops.min(sequence) - 1.0
        peak = ops.max(ops.where(weights > 0, sequence, lowest), axis=1)
        any_step = ops.sum(weights, axis=1) > 0
        peak = ops.where(any_step, peak, 0.0)
        return ops.concatenate([mean, peak], axis=-1)

    def compute_output_shape(self, sequence_shape, steps_shape):
        width = sequence_shape[-1] * (2 if self.with_max else 1)
        return (sequence_shape[0], width)

    def get_config(self):
        config = super().get_config()
        config["with_max"] = self.with_max
        return config


@keras.saving.register_keras_serializable(package="mmzoo")
class Decibels(keras.layers.Layer):
    """Power → decibels, `10 log10(max(power, floor))`, row by row (no
    clamp relative to the batch).

    Args:
        floor: float. Smallest power (silence reads `10 log10(floor)` dB).
            Defaults to 1e-10 (-100 dB).
    """

    def __init__(self, floor=1e-10, **kwargs):
        super().__init__(**kwargs)
        self.floor = float(floor)

    def call(self, inputs):
        power = ops.maximum(inputs, ops.cast(self.floor, inputs.dtype))
        return ops.log(power) * (10.0 / 2.302585092994046)

    def get_config(self):
        config = super().get_config()
        config["floor"] = self.floor
        return config


@keras.saving.register_keras_serializable(package="mmzoo")
class SequencePositions(keras.layers.Layer):
    """Adds a learned embedding of each step's position to `[B, T, D]`
    (T fixed at build)."""

    def build(self, input_shape):
        self.positions = self.add_weight(
            shape=(int(input_shape[1]), int(input_shape[2])),
            initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            name="positions",
        )

    def call(self, inputs):
        return inputs + ops.cast(self.positions, inputs.dtype)[None]


def build_audio_encoder(
    num_samples,
    sample_rate,
    kind="cnn",
    num_mel_bins=64,
    fft_length=512,
    stride=160,
    filters=(32, 64, 128),
    units=128,
    num_layers=2,
    num_heads=2,
    intermediate_dim=256,
    dropout=0.0,
    name="audio_encoder",
):
    """Builds an audio encoder model.

    Args:
        num_samples: int. Samples per input row (N).
        sample_rate: int. Their rate (for the mel filter bank).
        kind: str. One of `AUDIO_ENCODERS`. Defaults to `cnn`.
        num_mel_bins: int. Mel bands. Defaults to 64.
        fft_length: int. STFT window and FFT size in samples. Defaults to
            512.
        stride: int. STFT hop in samples. Defaults to 160 (10 ms at
            16 kHz).
        filters: tuple of int. Filters of the `cnn` blocks.
        units: int. Width of the sequence (`transformer`, `mel`; the `cnn`
            sequence has `filters[-1]`).
        num_layers: int. `transformer` blocks.
        num_heads: int. Their attention heads.
        intermediate_dim: int. Their feed-forward width.
        dropout: float. Dropout inside the transformer blocks.
        name: str. Model name.

    Returns:
        A `keras.Model` from float32 `[B, N]` (NaN row = missing) to
        `[pooled [B, D], sequence [B, T, D'], mask bool [B, T]]`.
    """
    if kind not in AUDIO_ENCODERS:
        raise ValueError(
            f"unknown audio encoder {kind!r}; valid: "
            f"{', '.join(AUDIO_ENCODERS)}"
        )
    waveform = keras.Input((int(num_samples),), name="waveform")
    # The log-mel front end, up to its normalization, computes in float32
    # whatever the dtype policy (the layers after it take the policy's):
    # in 16 bits the loud bands' rounding noise buries the quiet ones (a
    # 440 Hz tone's silent mel bands read -35 dB in bfloat16, -60 dB in
    # float16, -90 dB in float32).
    front_end = {"dtype": "float32"}
    samples, present = NaNMask(1, name="missing", **front_end)(waveform)
    mel = keras.layers.MelSpectrogram(
        fft_length=int(fft_length),
        sequence_stride=int(stride),
        sampling_rate=int(sample_rate),
        num_mel_bins=int(num_mel_bins),
        # Power, not Keras's dB: its top-dB clamp is relative to the
        # batch's loudest row, which would make a row's features depend
        # on the other rows of its request.
        power_to_db=False,
        name="mel",
        **front_end,
    )(samples)  # [B, mels, frames], power
    mel = Decibels(name="log_mel", **front_end)(mel)
    x = keras.layers.Permute((2, 1), name="time_major", **front_end)(mel)
    x = keras.layers.BatchNormalization(name="mel_norm", **front_end)(x)
    if kind == "cnn":
        x = keras.layers.Reshape((*x.shape[1:], 1), name="as_image")(x)
        for index, width in enumerate(filters):
            x = keras.layers.Conv2D(
                int(width),
                3,
                padding="same",
                use_bias=False,
                name=f"conv_{index}",
            )(x)
            x = keras.layers.BatchNormalization(name=f"bn_{index}")(x)
            x = keras.layers.ReLU(name=f"relu_{index}")(x)
            x = keras.layers.MaxPooling2D(
                2, padding="same", name=f"pool_{index}"
            )(x)
        # Average the mel axis: a sequence over time.
        x = MeanOverAxis(2, name="mel_mean")(x)
    else:
        x = keras.layers.Dense(int(units), name="frame_projection")(x)
    sequence = SequencePositions(name="positions")(x)
    if kind == "transformer":
        import keras_hub

        for index in range(int(num_layers)):
            sequence = keras_hub.layers.TransformerEncoder(
                int(intermediate_dim),
                int(num_heads),
                dropout=dropout,
                name=f"transformer_{index}",
            )(sequence)
    mask = StepMask(name="step_mask")(sequence, present)
    pooled = MaskedPooling(with_max=kind == "cnn", name="pooled")(
        sequence, mask
    )
    return keras.Model(waveform, [pooled, sequence, mask], name=name)


@keras.saving.register_keras_serializable(package="mmzoo")
class MeanOverAxis(keras.layers.Layer):
    """Mean over one axis (the mel axis of a conv feature map)."""

    def __init__(self, axis, **kwargs):
        super().__init__(**kwargs)
        self.axis = int(axis)

    def call(self, inputs):
        return ops.mean(inputs, axis=self.axis)

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        del shape[self.axis]
        return tuple(shape)

    def get_config(self):
        config = super().get_config()
        config["axis"] = self.axis
        return config


def audio_encoder_from_config(config, spec, name="audio_encoder", kind=None):
    """The audio encoder a model config describes, for `spec` (an
    `AudioSpec`): fields `audio_encoder`, `mel_bins`, `mel_fft_length`,
    `mel_stride`, `audio_filters`, `audio_units`, `text_num_layers`,
    `text_num_heads`, `text_intermediate_dim` (the transformer sizes are
    shared with the text encoder's) and `text_dropout`."""
    return build_audio_encoder(
        spec.num_samples,
        spec.sample_rate,
        kind=kind or config.audio_encoder,
        num_mel_bins=config.mel_bins,
        fft_length=config.mel_fft_length,
        stride=config.mel_stride,
        filters=config.audio_filters,
        units=config.audio_units,
        num_layers=config.text_num_layers,
        num_heads=config.text_num_heads,
        intermediate_dim=config.text_intermediate_dim,
        dropout=config.text_dropout,
        name=name,
    )
