"""The generic multimodal classifier: encoders, fusion and heads.

A configuration declares its modalities, `inputs = ((name, kind), ...)`
with kinds of `mmzoo.specs.MODALITY_KINDS`, and `build_multimodal_classifier`
assembles the model: one encoder per modality (`<name>_encoder`, from
`mmzoo.encoders`), a projection head per modality, any fusion layer of
`mmzoo.layers.FUSION_METHODS` at one of three levels, an MLP and the heads
of `mmzoo.heads.classification` (sigmoid or softmax probabilities, an
optional linear regression `score` in target units), plus an optional
decoder that reconstructs the first image modality. Reference
architectures such as `lstnet_diagnosis` are configurations of it: a
config subclass with other defaults and a registered builder that calls
this one.

Model inputs are `mmzoo.specs.model_inputs(modality_specs(config))`: images
float32 `[B, S, S, 3]` (raw pixels, 0..255), texts int32 `[B, T]` token
ids (0 = padding), audio float32 `[B, N]` waveforms (a NaN row = missing),
video float32 `[B, T, S, S, 3]` frames (NaN frames = padding) and sensor
readings float32 `[B, D]` (NaN = missing); their encoders are
`mmzoo.encoders.audio`, `.video` (the image encoder per frame plus a
temporal model) and `.sensor`. A modality left out of `modalities` (an
ablation) is not an input.

Fusion levels:

- `early` fuses low-level features: linear patch embeddings of each image
  and the word embeddings of each text (each linearly projected to
  `representation_dim`; the token embeddings averaged for vector fusions),
  then learns the joint representation after fusion with a shared MLP.
  The configured `image_encoder` and `text_encoder` are not used.
- `intermediate` fuses representations: each encoder's pooled vector goes
  through its own projection head (LayerNorm, `Dense(representation_dim)`
  and the activation), the fusion layer joins them, and the classifier MLP
  reads the result. Sequence fusions (`cross_attention`, exactly two
  modalities) read the encoders' region and token sequences instead.
- `late` fuses decisions: each modality has its own classifier and head;
  the fusion layer combines the per-modality probability vectors (and
  scores) and linear layers map them to the final logits (and score).
  `fusion="stack_logits"` (decision-level stacking, not a layer of
  `mmzoo.layers`; implies `late`) concatenates each modality's own
  classifier logits (and standardized scores) and a linear layer maps
  them to the final logits (and score).

Heads and losses (`output_losses`): `probabilities` with the head's
cross-entropy, or with `text_loss="matching"` the in-batch label matching
loss (`MatchingLoss`, bias-free logits: the logits layer's kernel holds one
embedding per label); `score` predicts standardized targets and
`TargetScale` returns `z * target_std + target_mean`, trained by
`MaskedMeanSquaredError` on standardized values with NaN targets ignored;
`reconstruction` with MSE (weight alpha).

Missing modality: a text is missing when its token ids are all 0 (an empty
string); an image is always present. The mask goes to the fusion layer, so
a missing modality contributes nothing (weight 0). `modality_dropout` drops
whole modalities in training only.

Reference:
    Liang et al., "MultiBench: Multiscale Benchmarks for Multimodal
    Representation Learning", NeurIPS 2021 datasets and benchmarks.
    https://arxiv.org/abs/2107.07502 (encoders + fusion + head).
    Baltrusaitis et al., "Multimodal Machine Learning: A Survey and
    Taxonomy", TPAMI 2019. https://arxiv.org/abs/1705.09406 (early,
    intermediate and late fusion).
    Neverova et al., "ModDrop: Adaptive Multi-Modal Gesture Recognition",
    TPAMI 2016. https://arxiv.org/abs/1501.00102 (modality dropout).
"""

import dataclasses
import math
from typing import ClassVar

import keras
from keras import ops

from mmzoo import encoders
from mmzoo.encoders.audio import AUDIO_ENCODERS, audio_encoder_from_config
from mmzoo.encoders.sensor import sensor_encoder_from_config
from mmzoo.encoders.video import VIDEO_TEMPORAL, video_encoder_from_config
from mmzoo.heads.classification import (  # noqa: F401 (re-exported)
    HEADS,
    MODALITY_WEIGHTS,
    PROBABILITIES,
    RECONSTRUCTION,
    SCORE,
    TEXT_LOSSES,
    MaskedMeanSquaredError,
    MatchingLoss,
    TargetScale,
    classification_head,
    has_modality_weights,
    has_reconstruction,
    output_losses,
    output_names,
    probabilities_layer,
    reconstructed_modality,
    regression_head,
)
from mmzoo.layers import (
    FUSION_METHODS,
    SEQUENCE_FUSIONS,
    ModalityDropout,
    get_fusion,
)
from mmzoo.specs import (
    MODALITY_KINDS,
    TEXT_TOKENIZERS,
    AudioSpec,
    ImageSpec,
    SensorSpec,
    TextSpec,
    VideoSpec,
    model_inputs,
    spec_from_dict,
)
from mmzoo.training_config import TrainingConfig

FUSION_LEVELS = ("early", "intermediate", "late")

DECISION_FUSIONS = ("stack_logits",)
"""Fusions of this builder that are not `mmzoo.layers` fusion layers:
`stack_logits` stacks the per-modality classifiers' logits (`late`)."""

FUSIONS = (*FUSION_METHODS, *DECISION_FUSIONS)
"""Valid `fusion` values of `MultimodalClassifierConfig`."""

TINY = {
    "image_size": 48,
    "cnn_filters": (8, 16, 32),
    "patch_size": 8,
    "patch_dim": 16,
    "vit_num_layers": 1,
    "vit_num_heads": 2,
    "vit_hidden_dim": 16,
    "vit_mlp_dim": 32,
    "vocabulary_size": 2000,
    "max_text_length": 64,
    "text_encoder": "lstm",
    "embedding_dim": 16,
    "text_units": 16,
    "text_num_layers": 1,
    "text_num_heads": 2,
    "text_intermediate_dim": 32,
    "representation_dim": 32,
    "fusion_units": 32,
    "fusion_heads": 2,
    "hidden_units": (32,),
    "dropout": 0.1,
    "decoder_filters": (16, 8, 8),
    "learning_rate": 3e-3,
}
"""Small sizes for CPU tests: the `tiny` variant of configurations."""


@dataclasses.dataclass(frozen=True)
class MultimodalClassifierConfig(TrainingConfig):
    """Hyperparameters of `build_multimodal_classifier` (and the training
    settings of `mmzoo.training_config.TrainingConfig`).

    Attributes:
        inputs: tuple of `(name, kind)` pairs. The modalities the model can
            read, in order; `kind` is one of `mmzoo.specs.MODALITY_KINDS`
            (`image`, `text`, `audio`, `video`, `sensor`). Names are the
            model's input names, `tf.data` keys and serving keys. Defaults
            to `(("image", "image"), ("text", "text"))`.
        modalities: tuple of str. The subset of `inputs` names the model
            uses (ablations); a comma string such as `"image"` or
            `"image,text"` is accepted, `()` means all of them. Normalized
            to the used names in `inputs` order. Defaults to `()`.
        specs: tuple of `mmzoo.specs` modality specs (dicts accepted), as
            fitted on the training split by the task; they override the
            sizes derived from the fields below (see `modality_specs`).
            When given, every used modality needs one. Defaults to `()`.
        num_labels: int. Labels predicted. Set from the data by the task.
            Defaults to 3.
        label_names: tuple of str. Name of each label, in output order
            (informational; set from the data). Defaults to `()`.
        head: str. `sigmoid` (multi-label: one independent probability per
            label, binary cross-entropy) or `softmax` (single-label:
            probabilities sum to 1, categorical cross-entropy). Defaults to
            `sigmoid`.
        head_from_data: bool. True lets the task set `head` from the data
            (`sigmoid` for multi-label data, else `softmax`). Defaults to
            False.
        text_loss: str. Loss of `probabilities`: `crossentropy` (the
            head's) or `matching` (the in-batch label matching loss
            −log softmax_j(embed(y_j)ᵀ embed(x_i)) of
            `mmzoo.heads.classification.MatchingLoss`; bias-free logits,
            needs head `softmax`). Defaults to `crossentropy`.
        num_targets: int. Width of the linear regression head (output
            `score`, in target units); 0 leaves it out. Set from the data
            by the task. Defaults to 0.
        target_mean: tuple of float. Training-split mean of each target
            (`num_targets` values, or `()` for 0): `score = z * target_std
            + target_mean` with `z` the head's standardized prediction, and
            the `score` loss standardizes target and prediction alike, so
            `regression_weight` does not depend on the targets' units. Set
            by the task. Ignored when `num_targets` is 0. Defaults to `()`.
        target_std: tuple of float. Training-split standard deviation of
            each target (> 0), or `()` for 1. Defaults to `()`.
        vocabulary_size: int. Token ids of derived text specs, padding (0)
            and OOV (1) included (the cap when fitting). Defaults to 20000.
        max_text_length: int. Tokens kept per text of derived text specs.
            Defaults to 128.
        text_tokenizer: str. Tokenizer of derived text specs, one of
            `mmzoo.specs.TEXT_TOKENIZERS`. Defaults to `word`.
        text_preset: str. keras-hub preset of the text encoder and
            tokenizer; `""` = none. Defaults to `""`.
        text_trainable: bool. False freezes a preset text backbone.
            Defaults to True.
        image_size: int. Height and width of derived image specs. Defaults
            to 224.
        image_encoder: str. One of `mmzoo.encoders.IMAGE_ENCODERS`: `cnn`
            (the LSTNet CNN), `patches`, `resnet50`, `efficientnetb0` or
            `vit`. Defaults to `cnn`.
        image_preset: str. keras-hub preset of the image backbone; `""` =
            none. Defaults to `""`.
        image_weights: str. `imagenet` or a local weights file for the
            `keras.applications` backbones; `""` = random. Defaults to `""`.
        image_trainable: bool. False freezes a preset/weights backbone.
            Defaults to True.
        cnn_filters: tuple of int. Filters of the CNN's Conv-BN-ReLU-Pool
            blocks. Defaults to `(32, 64, 128, 128, 256)`.
        patch_size: int. Patch side of `vit` and of early fusion's patch
            embedding; must divide the image size. Defaults to 16.
        patch_dim: int. Width of early fusion's patch embedding. Defaults
            to 64.
        vit_num_layers: int. ViT blocks. Defaults to 12 (ViT-B/16).
        vit_num_heads: int. ViT heads. Defaults to 12.
        vit_hidden_dim: int. ViT width. Defaults to 768.
        vit_mlp_dim: int. ViT feed-forward width. Defaults to 3072.
        text_encoder: str. One of `mmzoo.encoders.TEXT_ENCODERS`: `lstm`,
            `bilstm`, `bag` (mean of word embeddings), `transformer` or
            `bert` (from `text_preset` or from scratch). Defaults to
            `bilstm`.
        embedding_dim: int. Word embedding width. Defaults to 128.
        text_units: int. LSTM units per direction. Defaults to 128.
        text_num_layers: int. Layers of a transformer text encoder built
            from scratch. Defaults to 2.
        text_num_heads: int. Its attention heads. Defaults to 2.
        text_intermediate_dim: int. Its feed-forward width. Defaults to 256.
        representation_dim: int. Width of each modality's projection head.
            Defaults to 256.
        fusion: str. One of `mmzoo.layers.FUSION_METHODS`, or
            `stack_logits` (decision-level: each modality's own classifier
            logits, concatenated, and a linear layer to the final logits;
            sets `fusion_level` to `late`). Defaults to `concat`.
        fusion_level: str. `early`, `intermediate` or `late` (see the module
            docstring). Sequence fusions (`cross_attention`) need `early` or
            `intermediate` and exactly two modalities. Defaults to
            `intermediate`.
        fusion_units: int. Width of the fusion layer (`units` of the layers
            that take it; total attention width of `cross_attention`).
            Defaults to 256.
        fusion_heads: int. Attention heads of `cross_attention`. Defaults
            to 4.
        lmf_rank: int. Rank of `lmf`. Defaults to 4.
        adversarial_loss_weight: float. Weight of the modality
            discriminator's loss of `adversarial_alignment`. Defaults to
            0.05.
        modality_dropout: float. Probability of dropping each modality of
            each training example (never all of them); 0 turns it off.
            Defaults to 0.
        hidden_units: tuple of int. Hidden layers of the classifier MLP.
            Defaults to `(256,)`.
        activation: str. Activation of the projection heads and hidden
            layers (any `keras.activations` name). Defaults to `relu`.
        dropout: float. Dropout after projections and hidden layers, and
            inside the ViT image encoder. Defaults to 0.3.
        text_dropout: float. Dropout inside the text encoder (on token
            embeddings; transformer/BERT layers). Defaults to 0.
        classification_weight: float. Beta: weight of the classification
            loss. Defaults to 1.
        regression_weight: float. Lambda: weight of the `score` loss
            (`MaskedMeanSquaredError` on standardized values). Defaults to
            1.
        reconstruction_weight: float. Alpha: weight of the auxiliary MSE
            loss of an image decoder (output `reconstruction`, target the
            first image modality rescaled to 0..1); 0 leaves the decoder
            out unless `serve_reconstruction`. Needs an image modality.
            Defaults to 0.
        serve_reconstruction: bool. The model outputs `reconstruction`
            (the decoder is built even with `reconstruction_weight` 0,
            then untrained) whenever an image modality is used, and the
            task serves it. Defaults to False.
        decoder_filters: tuple of int. Filters of the reconstruction
            decoder's upsampling blocks (each doubles the resolution).
            Defaults to `(128, 64, 32)`.
        audio_sample_rate: int. Sample rate of derived audio specs (WAVs
            at other rates are resampled). Defaults to 16000.
        audio_seconds: float. Clip length of derived audio specs (longer
            audio cropped, shorter padded). Defaults to 1.0.
        audio_encoder: str. One of `mmzoo.encoders.audio.AUDIO_ENCODERS`:
            `cnn` (YAMNet-like convolutions over the log-mel),
            `transformer` or `mel`. Defaults to `cnn`.
        mel_bins: int. Mel bands of the log-mel spectrogram. Defaults to
            64.
        mel_fft_length: int. Its STFT window in samples. Defaults to 512.
        mel_stride: int. Its hop in samples. Defaults to 160.
        audio_filters: tuple of int. Filters of the `cnn` audio blocks.
            Defaults to `(32, 64, 128, 256)`.
        audio_units: int. Width of the `transformer`/`mel` audio sequence.
            Defaults to 128.
        num_frames: int. Frames per clip of derived video specs (T).
            Defaults to 8.
        video_temporal: str. Temporal model over the frame features, one
            of `mmzoo.encoders.video.VIDEO_TEMPORAL`: `mean`, `gru` or
            `transformer`. Frames use the image encoder fields at
            `image_size`. Defaults to `gru`.
        temporal_units: int. Width of the video sequence. Defaults to 128.
        sensor_dimension: int. Readings of derived sensor specs (the data
            decides when fitted). Defaults to 8.
        sensor_units: int. Width of the sensor MLP. Defaults to 64.
        The transformer audio encoder and temporal model take their depth,
        heads, feed-forward width and dropout from `text_num_layers`,
        `text_num_heads`, `text_intermediate_dim` and `text_dropout`.
    """

    model_name: ClassVar[str] = "multimodal_classifier"
    """Name of the built model and prefix of config errors."""

    inputs: tuple = (("image", "image"), ("text", "text"))
    modalities: tuple = ()
    specs: tuple = ()
    num_labels: int = 3
    label_names: tuple = ()
    head: str = "sigmoid"
    head_from_data: bool = False
    text_loss: str = "crossentropy"
    num_targets: int = 0
    target_mean: tuple = ()
    target_std: tuple = ()
    vocabulary_size: int = 20000
    max_text_length: int = 128
    text_tokenizer: str = "word"
    text_preset: str = ""
    text_trainable: bool = True
    image_size: int = 224
    image_encoder: str = "cnn"
    image_preset: str = ""
    image_weights: str = ""
    image_trainable: bool = True
    cnn_filters: tuple = (32, 64, 128, 128, 256)
    patch_size: int = 16
    patch_dim: int = 64
    vit_num_layers: int = 12
    vit_num_heads: int = 12
    vit_hidden_dim: int = 768
    vit_mlp_dim: int = 3072
    text_encoder: str = "bilstm"
    embedding_dim: int = 128
    text_units: int = 128
    text_num_layers: int = 2
    text_num_heads: int = 2
    text_intermediate_dim: int = 256
    representation_dim: int = 256
    fusion: str = "concat"
    fusion_level: str = "intermediate"
    fusion_units: int = 256
    fusion_heads: int = 4
    lmf_rank: int = 4
    adversarial_loss_weight: float = 0.05
    modality_dropout: float = 0.0
    hidden_units: tuple = (256,)
    activation: str = "relu"
    dropout: float = 0.3
    text_dropout: float = 0.0
    classification_weight: float = 1.0
    regression_weight: float = 1.0
    reconstruction_weight: float = 0.0
    serve_reconstruction: bool = False
    decoder_filters: tuple = (128, 64, 32)
    audio_sample_rate: int = 16000
    audio_seconds: float = 1.0
    audio_encoder: str = "cnn"
    mel_bins: int = 64
    mel_fft_length: int = 512
    mel_stride: int = 160
    audio_filters: tuple = (32, 64, 128, 256)
    audio_units: int = 128
    num_frames: int = 8
    video_temporal: str = "gru"
    temporal_units: int = 128
    sensor_dimension: int = 8
    sensor_units: int = 64

    def __post_init__(self):
        super().__post_init__()
        self._normalize_modalities()
        for field in (
            "label_names",
            "cnn_filters",
            "hidden_units",
            "decoder_filters",
            "audio_filters",
        ):
            object.__setattr__(self, field, tuple(getattr(self, field)))
        for field in ("target_mean", "target_std"):
            value = getattr(self, field)
            if isinstance(value, int | float):
                value = (value,)
            try:
                value = tuple(float(v) for v in value)
            except (TypeError, ValueError):
                self._fail(
                    f"{field}={value!r}; expected a tuple of numbers, one "
                    "per target"
                )
            object.__setattr__(self, field, value)
        if self.fusion in DECISION_FUSIONS:
            object.__setattr__(self, "fusion_level", "late")
        self._check_choices()
        self._check_values()
        modality_specs(self)  # derived specs validate their own sizes

    def _fail(self, message):
        raise ValueError(f"{self.model_name}: {message}")

    def _normalize_modalities(self):
        pairs = []
        for pair in self.inputs:
            if isinstance(pair, str) or len(tuple(pair)) != 2:
                self._fail(
                    f"inputs entry {pair!r} is not a (name, kind) pair; "
                    'e.g. inputs=(("image", "image"), ("report", "text"))'
                )
            name, kind = (str(value) for value in pair)
            if kind not in MODALITY_KINDS:
                self._fail(
                    f"input {name!r} has unknown kind {kind!r}; valid: "
                    f"{', '.join(MODALITY_KINDS)}"
                )
            pairs.append((name, kind))
        names = [name for name, _ in pairs]
        if not pairs or len(set(names)) != len(names):
            self._fail(
                f"inputs={self.inputs!r}; expected one or more (name, kind) "
                "pairs with distinct names"
            )
        object.__setattr__(self, "inputs", tuple(pairs))

        modalities = self.modalities
        if isinstance(modalities, str):
            modalities = modalities.split(",")
        modalities = tuple(str(m).strip() for m in modalities)
        modalities = tuple(m for m in modalities if m)
        unknown = [m for m in modalities if m not in names]
        if unknown or len(set(modalities)) != len(modalities):
            self._fail(
                f"modalities={self.modalities!r}: unknown or repeated "
                f"{unknown or list(modalities)}; expected a subset of "
                f"{', '.join(names)} without repeats (empty = all)"
            )
        used = tuple(n for n in names if not modalities or n in modalities)
        object.__setattr__(self, "modalities", used)

        specs = tuple(spec_from_dict(spec) for spec in self.specs)
        kinds = dict(pairs)
        seen = set()
        for spec in specs:
            if spec.name not in kinds or spec.kind != kinds[spec.name]:
                self._fail(
                    f"spec {spec.name!r} of kind {spec.kind!r} matches no "
                    f"input; inputs: {pairs}"
                )
            if spec.name in seen:
                self._fail(f"two specs for input {spec.name!r}")
            seen.add(spec.name)
        missing = [n for n in used if n not in seen]
        if specs and missing:
            self._fail(
                f"specs are given but not for modalities {missing}; fitted "
                f"specs: {sorted(seen)}"
            )
        object.__setattr__(self, "specs", specs)

    def _check_choices(self):
        choices = (
            ("fusion", FUSIONS),
            ("fusion_level", FUSION_LEVELS),
            ("image_encoder", tuple(encoders.IMAGE_ENCODERS)),
            ("text_encoder", tuple(encoders.TEXT_ENCODERS)),
            ("head", HEADS),
            ("text_loss", TEXT_LOSSES),
            ("text_tokenizer", TEXT_TOKENIZERS),
            ("audio_encoder", AUDIO_ENCODERS),
            ("video_temporal", VIDEO_TEMPORAL),
        )
        for field, valid in choices:
            value = getattr(self, field)
            if value not in valid:
                self._fail(
                    f"unknown {field} {value!r}; valid: {', '.join(valid)}"
                )
        if self.fusion in SEQUENCE_FUSIONS:
            if self.fusion_level == "late":
                self._fail(
                    f"fusion {self.fusion!r} fuses token/region sequences; "
                    "fusion_level 'late' fuses per-modality decisions "
                    "(vectors). Use fusion_level 'early' or 'intermediate'"
                )
            if len(self.modalities) > 2:
                self._fail(
                    f"fusion {self.fusion!r} attends between exactly two "
                    f"modalities; modalities={self.modalities} has "
                    f"{len(self.modalities)}. Choose two modalities or a "
                    "vector fusion: "
                    + ", ".join(
                        m for m in FUSION_METHODS if m not in SEQUENCE_FUSIONS
                    )
                )
        try:
            keras.activations.get(self.activation)
        except ValueError:
            self._fail(
                f"unknown activation {self.activation!r}; expected a "
                "keras.activations name such as relu or gelu"
            )

    def _check_values(self):
        fail = self._fail
        if self.num_labels < 1:
            fail(f"num_labels={self.num_labels}; expected at least 1")
        if self.head == "softmax" and self.num_labels < 2:
            fail(
                f"head 'softmax' needs num_labels >= 2 (got "
                f"{self.num_labels}); use head 'sigmoid' for one label"
            )
        if self.label_names and len(self.label_names) != self.num_labels:
            fail(
                f"{len(self.label_names)} label_names for num_labels="
                f"{self.num_labels}"
            )
        if self.num_targets < 0:
            fail(f"num_targets={self.num_targets}; expected >= 0")
        if self.num_targets:
            for field in ("target_mean", "target_std"):
                value = getattr(self, field)
                if value and len(value) != self.num_targets:
                    fail(
                        f"{field}={value} has {len(value)} values for "
                        f"num_targets={self.num_targets}; expected "
                        f"{self.num_targets} or () (none)"
                    )
            if not all(math.isfinite(v) for v in self.target_mean):
                fail(f"target_mean={self.target_mean}; expected finite values")
            if not all(math.isfinite(v) and v > 0 for v in self.target_std):
                fail(
                    f"target_std={self.target_std}; expected finite values > 0"
                )
        if self.text_loss == "matching" and self.head != "softmax":
            fail(
                f"text_loss 'matching' scores each example against the "
                f"labels of the batch and needs head 'softmax' (one label "
                f"per example); got head {self.head!r}. Use text_loss "
                "'crossentropy' for multi-label data"
            )
        if self.vocabulary_size < 2:
            fail(
                f"vocabulary_size={self.vocabulary_size}; expected >= 2 "
                "(padding + OOV)"
            )
        if self.max_text_length < 1:
            fail(f"max_text_length={self.max_text_length}; expected >= 1")
        if not 0.0 <= self.modality_dropout < 1.0:
            fail(
                f"modality_dropout={self.modality_dropout}; expected 0 <= "
                "rate < 1"
            )
        if not 0.0 <= self.dropout < 1.0:
            fail(f"dropout={self.dropout}; expected 0 <= dropout < 1")
        if (
            self.reconstruction_weight < 0
            or self.classification_weight <= 0
            or self.regression_weight < 0
        ):
            fail(
                f"reconstruction_weight={self.reconstruction_weight}, "
                f"classification_weight={self.classification_weight} and "
                f"regression_weight={self.regression_weight}; expected "
                "alpha >= 0, beta > 0 and regression_weight >= 0"
            )
        if self.reconstruction_weight and reconstructed_modality(self) is None:
            images = [n for n, k in self.inputs if k == "image"]
            fail(
                "reconstruction_weight > 0 reconstructs an image; it needs an "
                f"image modality (image inputs: {images}) in modalities (got "
                f"{self.modalities})"
            )
        if self.reconstruction_weight and not self.decoder_filters:
            fail("reconstruction_weight > 0 needs decoder_filters")
        if self.fusion == "cross_attention" and (
            self.fusion_units % self.fusion_heads
        ):
            fail(
                f"fusion_units={self.fusion_units} is not divisible by "
                f"fusion_heads={self.fusion_heads}"
            )

    def modality_specs(self):
        """The specs of the used modalities; see `modality_specs`."""
        return modality_specs(self)


def modality_specs(config):
    """The modality specs of the modalities `config` uses, in order.

    `config.specs` (the fitted specs) when given, otherwise specs derived
    from the config's fields: `ImageSpec(name, size=image_size)` and
    `TextSpec(name, max_length=max_text_length, vocabulary_size=
    vocabulary_size, tokenizer=text_tokenizer, preset=text_preset)`.

    Args:
        config: a `MultimodalClassifierConfig`.

    Returns:
        A tuple of specs, one per name of `config.modalities`.
    """
    fitted = {spec.name: spec for spec in config.specs}
    kinds = dict(config.inputs)
    specs = []
    for name in config.modalities:
        if fitted:
            specs.append(fitted[name])
        elif kinds[name] == "image":
            specs.append(ImageSpec(name, size=_image_size(config)))
        elif kinds[name] == "audio":
            specs.append(
                AudioSpec(
                    name,
                    sample_rate=config.audio_sample_rate,
                    seconds=config.audio_seconds,
                )
            )
        elif kinds[name] == "sensor":
            specs.append(SensorSpec(name, dimension=config.sensor_dimension))
        elif kinds[name] == "video":
            specs.append(
                VideoSpec(
                    name, num_frames=config.num_frames, size=_image_size(config)
                )
            )
        else:
            specs.append(
                TextSpec(
                    name,
                    max_length=config.max_text_length,
                    vocabulary_size=config.vocabulary_size,
                    tokenizer=config.text_tokenizer,
                    preset=config.text_preset,
                )
            )
    return tuple(specs)


def _image_size(config):
    """`image_size`, or the size a fixed-size image preset expects."""
    if config.image_preset:
        preset_size = encoders.preset_image_size(config.image_preset)
        return preset_size or config.image_size
    return config.image_size


@keras.saving.register_keras_serializable(package="mmzoo")
class ModalityMask(keras.layers.Layer):
    """Per-example modality mask `[B, M]` derived from the inputs.

    A `text` modality (token ids) is present when any id is not 0 (an
    all-padding row is a missing text); an `audio` one when its row holds
    no NaN; a `video` one when any frame holds no NaN (padding frames are
    NaN); a `sensor` one when any reading is not NaN; an `image` modality
    is always present.

    Args:
        kinds: tuple of str. The kind of each modality (a key of
            `mmzoo.specs.MODALITY_KINDS`).
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`).
            `token_inputs` (a tuple of bool, true = text), the argument of
            earlier versions, is accepted for files saved by them.

    Call args:
        inputs: list of the `M` modality inputs, each `[B, ...]`.

    Returns:
        A float `[B, M]` tensor, 1.0 = present.

    Example:
    ```python
    mask = ModalityMask(("image", "text"))([image, report_ids])
    ```
    """

    def __init__(self, kinds=None, **kwargs):
        token_inputs = kwargs.pop("token_inputs", None)
        super().__init__(**kwargs)
        if kinds is None and token_inputs is not None:
            kinds = ["text" if t else "image" for t in token_inputs]
        if kinds is None:
            raise ValueError("ModalityMask: kinds is required")
        kinds = tuple(str(kind) for kind in kinds)
        unknown = [kind for kind in kinds if kind not in MODALITY_KINDS]
        if unknown:
            raise ValueError(
                f"ModalityMask: unknown kinds {unknown}; valid: "
                f"{', '.join(MODALITY_KINDS)}"
            )
        self.kinds = kinds

    def call(self, inputs):
        if len(inputs) != len(self.kinds):
            raise ValueError(
                f"{self.name}: built for {len(self.kinds)} modalities; "
                f"received {len(inputs)}"
            )
        columns = []
        for kind, x in zip(self.kinds, inputs):
            flat = ops.reshape(x, (ops.shape(x)[0], -1))
            if kind == "text":
                present = ops.any(ops.not_equal(flat, 0), axis=1)
            elif kind == "audio":
                present = ops.logical_not(ops.any(ops.isnan(flat), axis=1))
            elif kind == "sensor":
                present = ops.any(ops.logical_not(ops.isnan(flat)), axis=1)
            elif kind == "video":
                frames = ops.reshape(x, (ops.shape(x)[0], ops.shape(x)[1], -1))
                valid = ops.logical_not(ops.any(ops.isnan(frames), axis=2))
                present = ops.any(valid, axis=1)
            else:
                present = ops.ones_like(flat[:, 0], dtype="bool")
            columns.append(ops.cast(present, self.compute_dtype))
        return ops.stack(columns, axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], len(self.kinds))

    def get_config(self):
        config = super().get_config()
        config["kinds"] = list(self.kinds)
        return config


def _fusion_layer(config, name, return_weights):
    """The configured fusion layer with the config's widths, named `name`."""
    method = config.fusion
    kwargs = {}
    if method == "cross_attention":
        kwargs.update(
            num_heads=config.fusion_heads,
            key_dim=config.fusion_units // config.fusion_heads,
            units=config.fusion_units,
        )
    elif method == "lmf":
        kwargs.update(units=config.fusion_units, rank=config.lmf_rank)
    elif method == "adversarial_alignment":
        kwargs.update(
            units=config.fusion_units,
            loss_weight=config.adversarial_loss_weight,
        )
    elif method != "concat":
        # attention, attention_pooling (scorer width), the alignments, gmu.
        kwargs["units"] = config.fusion_units
    if return_weights:
        kwargs["return_weights"] = True
    return get_fusion(method, name=name, **kwargs)


def _dense_stack(x, units, dropout, prefix, activation):
    for index, width in enumerate(units):
        x = keras.layers.Dense(
            width, activation=activation, name=f"{prefix}_{index}"
        )(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"{prefix}_dropout_{index}")(
                x
            )
    return x


def _decoder(vector, config, size):
    """Image decoder: vector → `[B, size, size, 3]` in 0..1 (sigmoid)."""
    filters = config.decoder_filters
    start = math.ceil(size / 2 ** len(filters))
    x = keras.layers.Dense(
        start * start * filters[0], activation="relu", name="decoder_dense"
    )(vector)
    x = keras.layers.Reshape(
        (start, start, filters[0]), name="decoder_reshape"
    )(x)
    for index, width in enumerate(filters):
        x = keras.layers.UpSampling2D(2, name=f"decoder_upsample_{index}")(x)
        x = keras.layers.Conv2D(
            width,
            3,
            padding="same",
            activation="relu",
            name=f"decoder_conv_{index}",
        )(x)
    extra = start * 2 ** len(filters) - size
    if extra:
        x = keras.layers.Cropping2D(
            ((0, extra), (0, extra)), name="decoder_crop"
        )(x)
    x = keras.layers.Conv2D(3, 3, padding="same", name="decoder_pixels")(x)
    return keras.layers.Activation(
        "sigmoid", dtype="float32", name=RECONSTRUCTION
    )(x)


def _image_encoder(config, spec, kind, return_regions):
    if spec.size != config.image_size:  # a fitted spec's size wins
        config = dataclasses.replace(config, image_size=spec.size)
    return encoders.image_encoder_from_config(
        config,
        name=f"{spec.name}_encoder",
        return_regions=return_regions,
        kind=kind,
    )


def _text_encoder(config, spec, kind):
    return encoders.text_encoder_from_config(
        config, spec=spec, name=f"{spec.name}_encoder", kind=kind
    )


_TIME_ENCODERS = {
    "audio": (audio_encoder_from_config, "mel"),
    "video": (video_encoder_from_config, "patches"),
    "sensor": (sensor_encoder_from_config, None),
}
"""Kind → `(builder(config, spec, name, kind), kind for early fusion)` of
the modalities whose encoder returns `(pooled, sequence, mask)`."""


def _encode(config, spec, x, sequences):
    """Runs one modality's encoder: `(pooled, sequence, token_mask)`."""
    early = config.fusion_level == "early"
    if spec.kind in _TIME_ENCODERS:
        # Audio, video and sensors: encoders that return all three.
        build, early_kind = _TIME_ENCODERS[spec.kind]
        encoder = build(
            config,
            spec,
            name=f"{spec.name}_encoder",
            kind=early_kind if early else None,
        )
        return tuple(encoder(x))
    if spec.kind == "image":
        encoder = _image_encoder(
            config, spec, "patches" if early else None, sequences
        )
        if sequences:
            pooled, regions = encoder(x)
            return pooled, regions, None
        return encoder(x), None, None
    encoder = _text_encoder(config, spec, "bag" if early else None)
    return tuple(encoder(x))


def build_multimodal_classifier(config, name=None):
    """Builds an uncompiled multimodal classifier for `config`.

    Inputs: one per used modality, named and shaped by
    `modality_specs(config)`. Outputs (see `output_names`):
    `probabilities` float32 `[B, num_labels]`; with a weighted fusion of
    several modalities also `modality_weights` float32 `[B, M]` (columns in
    `modalities` order; a missing modality gets 0); with `num_targets > 0`
    also `score` float32 `[B, num_targets]` in target units (`z *
    target_std + target_mean`); with `reconstruction_weight > 0` or
    `serve_reconstruction` also `reconstruction` float32 `[B, S, S, 3]` of
    the first image modality. A single output is returned as a tensor,
    several as a dict. `output_losses(config)` gives each output's loss and
    weight.

    Args:
        config: a `MultimodalClassifierConfig` (or a subclass).
        name: str or None. Model name. Defaults to `config.model_name`.

    Returns:
        A Functional `keras.Model`.

    Example:
    ```python
    config = MultimodalClassifierConfig(
        inputs=(("image", "image"), ("title", "text"), ("body", "text")),
        fusion="attention", head="softmax", num_labels=4, num_targets=1,
        **TINY,
    )
    model = build_multimodal_classifier(config)
    outputs = model(mmzoo.specs.dummy_inputs(modality_specs(config), 2))
    # probabilities [2, 4], modality_weights [2, 3], score [2, 1]
    ```
    """
    specs = modality_specs(config)
    inputs = model_inputs(specs)
    names = [spec.name for spec in specs]
    level = config.fusion_level
    # Sequence fusions read the encoders' sequences; every other fusion (and
    # one modality alone) reads per-modality vectors.
    sequence_fusion = len(names) > 1 and config.fusion in SEQUENCE_FUSIONS
    features = {
        spec.name: _encode(config, spec, inputs[spec.name], sequence_fusion)
        for spec in specs
    }
    reconstructed = (
        reconstructed_modality(config) if has_reconstruction(config) else None
    )

    # Per-modality projection heads: LayerNorm + Dense, linear for early
    # fusion (projected low-level features), with the activation otherwise.
    activation = None if level == "early" else config.activation
    vectors = {}
    for modality in names:
        if sequence_fusion and modality != reconstructed:
            continue
        # LayerNorm first: a CNN's flattened ReLU features are all positive
        # and wide, so without it Adam steps shift every unit of the
        # projection at once and most ReLUs (sometimes all) die.
        x = keras.layers.LayerNormalization(name=f"{modality}_norm")(
            features[modality][0]
        )
        x = keras.layers.Dense(
            config.representation_dim,
            activation=activation,
            name=f"{modality}_projection",
        )(x)
        if config.dropout and level != "early":
            x = keras.layers.Dropout(
                config.dropout, name=f"{modality}_dropout"
            )(x)
        vectors[modality] = x

    mask = None
    if len(names) > 1:
        mask = ModalityMask(
            tuple(spec.kind for spec in specs), name="modality_mask"
        )([inputs[modality] for modality in names])
        if config.modality_dropout:
            mask = ModalityDropout(
                config.modality_dropout, name="modality_dropout"
            )([features[m][0] for m in names], modality_mask=mask)

    weights = None
    score = None
    return_weights = has_modality_weights(config)
    if level == "late":
        probabilities, score, weights = _late_fusion(
            config, names, vectors, mask, return_weights
        )
    else:
        if len(names) == 1:
            fused = vectors[names[0]]
        elif sequence_fusion:
            fused = _fusion_layer(config, "fusion", False)(
                [features[modality][1] for modality in names],
                modality_mask=mask,
                token_masks=[features[modality][2] for modality in names],
            )
        else:
            fused = _fusion_layer(config, "fusion", return_weights)(
                [vectors[modality] for modality in names], modality_mask=mask
            )
            if return_weights:
                fused, weights = fused
        if level == "early":
            fused = _dense_stack(
                fused,
                (config.representation_dim,) * 2,
                config.dropout,
                "joint",
                config.activation,
            )
        x = _dense_stack(
            fused,
            config.hidden_units,
            config.dropout,
            "classifier",
            config.activation,
        )
        probabilities = _probabilities(config, x)
        if config.num_targets:
            score = _score(config, x)

    outputs = {PROBABILITIES: probabilities}
    if weights is not None:
        outputs[MODALITY_WEIGHTS] = keras.layers.Identity(
            dtype="float32", name=MODALITY_WEIGHTS
        )(weights)
    if score is not None:
        outputs[SCORE] = score
    if reconstructed is not None:
        size = specs[names.index(reconstructed)].size
        outputs[RECONSTRUCTION] = _decoder(vectors[reconstructed], config, size)
    if len(outputs) == 1:
        outputs = probabilities
    return keras.Model(inputs, outputs, name=name or config.model_name)


def _probabilities(config, x):
    """The configured classification head on `x` (bias-free logits for
    `text_loss="matching"`: the kernel is the label embedding table)."""
    return classification_head(
        x,
        config.num_labels,
        config.head,
        use_bias=config.text_loss != "matching",
    )


def _score(config, x):
    """The regression head on `x`, in target units."""
    return regression_head(
        x,
        config.num_targets,
        mean=config.target_mean,
        std=config.target_std,
    )


def _late_fusion(config, names, vectors, mask, return_weights):
    """Per-modality classifiers and heads, then fused decisions.

    Each modality's decision is its probabilities (its logits for
    `stack_logits`) and, with a regression head, its standardized score.
    Several decisions are joined by the fusion layer (`ConcatFusion` for
    `stack_logits`, which zeroes a missing modality's decision) and linear
    layers map them to the final logits and score.

    Returns `(probabilities, score or None, modality weights or None)`.
    """
    stack = config.fusion == "stack_logits"
    single = len(names) == 1
    decisions, scores = [], []
    for modality in names:
        x = _dense_stack(
            vectors[modality],
            config.hidden_units,
            config.dropout,
            f"{modality}_classifier",
            config.activation,
        )
        use_bias = not (single and config.text_loss == "matching")
        if stack or single:
            decision = keras.layers.Dense(
                config.num_labels,
                use_bias=use_bias,
                name=f"{modality}_logits",
            )(x)
        else:
            decision = keras.layers.Dense(
                config.num_labels,
                activation=config.head,
                name=f"{modality}_probabilities",
            )(x)
        if config.num_targets:
            s = keras.layers.Dense(
                config.num_targets, name=f"{modality}_score"
            )(x)
            scores.append(s)
            if not single:
                decision = keras.layers.Concatenate(
                    name=f"{modality}_decision"
                )([decision, s])
        decisions.append(decision)
    if single:
        probabilities = probabilities_layer(decisions[0], config.head)
        score = None
        if scores:
            score = TargetScale(
                config.target_mean, config.target_std, name=SCORE
            )(scores[0])
        return probabilities, score, None
    if stack:
        fused = get_fusion("concat", name="fusion")(
            decisions, modality_mask=mask
        )
    else:
        fused = _fusion_layer(config, "fusion", return_weights)(
            decisions, modality_mask=mask
        )
    weights = None
    if return_weights:
        fused, weights = fused
    probabilities = _probabilities(config, fused)
    score = None
    if config.num_targets:
        score = _score(config, fused)
    return probabilities, score, weights
