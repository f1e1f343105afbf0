"""Video encoders (`keras.ops` only): T frames → any registered image
encoder applied to each frame → a temporal model → a pooled vector, a
sequence over frames and its mask.

The frame encoder is `mmzoo.encoders.build_image_encoder` (any kind:
`cnn`, `resnet50`, `vit`, ... and their presets or Keras weights), shared
by every frame (`keras.layers.TimeDistributed`). Padding frames (NaN,
`mmzoo.specs.VideoSpec`) are zeroed before it and masked after it. Every
temporal kind adds learned position embeddings, so attention across time
(cross-modal attention with audio) knows each frame's place.

Temporal kinds (`VIDEO_TEMPORAL`):

- `mean`: the frame features; `pooled` is their mean over real frames
  (temporal average pooling, as in TSN).
- `gru`: a GRU over the real frames; the sequence is its outputs.
- `transformer`: keras-hub `TransformerEncoder` blocks over the frames,
  padding masked.

Reference:
    Wang et al., "Temporal Segment Networks", ECCV 2016.
    https://arxiv.org/abs/1608.00859
    Donahue et al., "Long-term Recurrent Convolutional Networks", CVPR
    2015 (CNN + LSTM over frames). https://arxiv.org/abs/1411.4389
"""

import keras

from mmzoo.encoders.audio import MaskedPooling, SequencePositions
from mmzoo.encoders.image import image_encoder_from_config
from mmzoo.layers.modality import NaNMask

VIDEO_TEMPORAL = ("mean", "gru", "transformer")


def build_video_encoder(
    frame_encoder,
    num_frames,
    size,
    temporal="gru",
    units=128,
    num_layers=1,
    num_heads=2,
    intermediate_dim=256,
    dropout=0.0,
    name="video_encoder",
):
    """Builds a video encoder model around a per-frame image encoder.

    Args:
        frame_encoder: `keras.Model` from float32 `[B, S, S, 3]` pixels
            (0..255) to a pooled `[B, D]` vector.
        num_frames: int. Frames per clip (T).
        size: int. Frame height and width (S).
        temporal: str. One of `VIDEO_TEMPORAL`. Defaults to `gru`.
        units: int. Width of the frame features after a linear projection
            (the sequence width). Defaults to 128.
        num_layers: int. `transformer` blocks. Defaults to 1.
        num_heads: int. Their heads. Defaults to 2.
        intermediate_dim: int. Their feed-forward width. Defaults to 256.
        dropout: float. Dropout of the temporal model. Defaults to 0.
        name: str. Model name.

    Returns:
        A `keras.Model` from float32 `[B, T, S, S, 3]` (NaN frame =
        padding) to `[pooled [B, units], sequence [B, T, units], mask
        bool [B, T]]`.
    """
    if temporal not in VIDEO_TEMPORAL:
        raise ValueError(
            f"unknown video temporal model {temporal!r}; valid: "
            f"{', '.join(VIDEO_TEMPORAL)}"
        )
    clip = keras.Input((int(num_frames), int(size), int(size), 3), name="clip")
    frames, mask = NaNMask(2, name="padding")(clip)
    features = keras.layers.TimeDistributed(frame_encoder, name="frames")(
        frames
    )
    x = keras.layers.Dense(int(units), name="frame_projection")(features)
    x = SequencePositions(name="positions")(x)
    if temporal == "gru":
        x = keras.layers.GRU(
            int(units), return_sequences=True, dropout=dropout, name="gru"
        )(x, mask=mask)
    elif temporal == "transformer":
        import keras_hub

        for index in range(int(num_layers)):
            x = keras_hub.layers.TransformerEncoder(
                int(intermediate_dim),
                int(num_heads),
                dropout=dropout,
                name=f"transformer_{index}",
            )(x, padding_mask=mask)
    pooled = MaskedPooling(name="pooled")(x, mask)
    return keras.Model(clip, [pooled, x, mask], name=name)


def video_encoder_from_config(config, spec, name="video_encoder", kind=None):
    """The video encoder a model config describes, for `spec` (a
    `VideoSpec`): the image encoder fields (`image_encoder`,
    `cnn_filters`, presets, ...; `kind` overrides the image kind) for the
    frames at `spec.size`, and `video_temporal`, `temporal_units`,
    `text_num_layers`, `text_num_heads`, `text_intermediate_dim`,
    `text_dropout` for the temporal model."""
    import dataclasses

    frame_config = dataclasses.replace(config, image_size=spec.size)
    frame_encoder = image_encoder_from_config(
        frame_config, name=f"{name}_frame", return_regions=False, kind=kind
    )
    return build_video_encoder(
        frame_encoder,
        spec.num_frames,
        spec.size,
        temporal=config.video_temporal,
        units=config.temporal_units,
        num_layers=config.text_num_layers,
        num_heads=config.text_num_heads,
        intermediate_dim=config.text_intermediate_dim,
        dropout=config.text_dropout,
        name=name,
    )
