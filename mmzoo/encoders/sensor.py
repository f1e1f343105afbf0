"""Sensor encoder (`keras.ops` only): a vector of readings → standardized
values and missing flags → an MLP → a pooled vector, a one-step sequence
and its mask.

Readings are standardized with the train split's statistics of the
fitted `mmzoo.specs.SensorSpec` (clipped to ±10 standard deviations); a
missing reading (NaN) becomes 0 and sets its flag, so the MLP learns what
a missing reading means. A row of missing readings is a missing modality
(all-false mask).
"""

import keras
from keras import ops

from mmzoo.layers.modality import NaNMask


@keras.saving.register_keras_serializable(package="mmzoo")
class Standardize(keras.layers.Layer):
    """`(x - mean) / std`, clipped to ±`clip`, with fixed statistics.

    Args:
        mean: sequence of float (one per reading).
        std: sequence of float > 0.
        clip: float. Defaults to 10.
    """

    def __init__(self, mean, std, clip=10.0, **kwargs):
        super().__init__(**kwargs)
        self.mean = [float(v) for v in mean]
        self.std = [float(v) for v in std]
        self.clip = float(clip)

    def call(self, inputs):
        mean = ops.convert_to_tensor(self.mean, dtype=inputs.dtype)
        std = ops.convert_to_tensor(self.std, dtype=inputs.dtype)
        return ops.clip((inputs - mean) / std, -self.clip, self.clip)

    def get_config(self):
        config = super().get_config()
        config.update(mean=self.mean, std=self.std, clip=self.clip)
        return config


@keras.saving.register_keras_serializable(package="mmzoo")
class ZeroMissingRows(keras.layers.Layer):
    """Zeros the rows of `[B, D]` whose `[B, 1]` bool mask is false (a
    missing modality pools to zeros, as every encoder's does)."""

    def call(self, values, row):
        return ops.where(row, values, ops.zeros_like(values))


@keras.saving.register_keras_serializable(package="mmzoo")
class PresentRow(keras.layers.Layer):
    """Per-reading mask `[B, D]` → (its float copy, a `[B, 1]` step mask
    true when any reading is present)."""

    def call(self, present):
        flags = ops.cast(present, self.compute_dtype)
        return flags, ops.any(present, axis=1, keepdims=True)

    def compute_output_spec(self, present):
        return (
            keras.KerasTensor(present.shape, dtype=self.compute_dtype),
            keras.KerasTensor((present.shape[0], 1), dtype="bool"),
        )


def build_sensor_encoder(spec, units=64, name="sensor_encoder"):
    """Builds the encoder of a `SensorSpec`.

    Returns:
        A `keras.Model` from float32 `[B, D]` (NaN = missing reading) to
        `[pooled [B, units], sequence [B, 1, units], mask bool [B, 1]]`.
    """
    dimension = int(spec.dimension)
    readings = keras.Input((dimension,), name="readings")
    # Raw readings are standardized in float32 whatever the dtype policy
    # (bfloat16 would round a reading of 1000.3 to 1000).
    values, present = NaNMask(2, dtype="float32", name="missing")(readings)
    mean = spec.mean or (0.0,) * dimension
    std = spec.std or (1.0,) * dimension
    scaled = Standardize(mean, std, dtype="float32", name="standardize")(values)
    flags, row = PresentRow(name="present")(present)
    # A missing reading: 0 after standardizing, and its flag 0.
    scaled = keras.layers.Multiply(name="zero_missing")([scaled, flags])
    x = keras.layers.Concatenate(name="with_flags")([scaled, flags])
    for index in range(2):
        x = keras.layers.Dense(
            int(units), activation="relu", name=f"dense_{index}"
        )(x)
    x = ZeroMissingRows(name="zero_missing_rows")(x, row)
    sequence = keras.layers.Reshape((1, int(units)), name="as_step")(x)
    return keras.Model(readings, [x, sequence, row], name=name)


def sensor_encoder_from_config(config, spec, name="sensor_encoder", kind=None):
    """The sensor encoder of a model config (`sensor_units`) for `spec`
    (`kind` is accepted for a common signature; there is one kind)."""
    del kind
    return build_sensor_encoder(
        spec, units=getattr(config, "sensor_units", 64), name=name
    )
