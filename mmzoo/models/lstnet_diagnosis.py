"""LSTNet-style diagnosis from an image and its report (multi-label).

An image branch (a small CNN, ResNet50, EfficientNetB0 or ViT; see
`mmzoo.encoders.image`) and a report branch (word embeddings + LSTM or
BiLSTM; `mmzoo.encoders.text`) are fused by any layer of
`mmzoo.layers.FUSION_METHODS` at one of three levels, and a sigmoid head
predicts every finding.

Fusion levels:

- `early` fuses low-level features: linear patch embeddings of the pixels
  and the word embeddings of the report (each linearly projected to
  `representation_dim`; the token embeddings averaged for vector fusions),
  then learns the joint representation after fusion with a shared MLP.
  The configured `image_encoder` and `text_encoder` are not used.
- `intermediate` fuses representations: each encoder's pooled vector goes
  through its own projection head (LayerNorm, `Dense(representation_dim)`
  and the activation), the fusion layer joins them, and the classifier MLP
  reads the result.
  Sequence fusions (`cross_attention`) read the encoders' region and token
  sequences instead.
- `late` fuses decisions: each modality has its own classifier and sigmoid
  head; the fusion layer combines the per-modality probability vectors and
  a linear layer maps them to the final logits.

Missing modality: the report is missing when its token ids are all 0
(an empty report string); the image is always present. The mask goes to
the fusion layer, so a missing report contributes nothing (weight 0).
`modality_dropout` drops whole modalities in training only.

Reference:
    LSTNet image + report diagnosis model (design documents of this
    project): CNN image branch, LSTM report branch, fused multi-label head,
    optional auxiliary image reconstruction (weight alpha) beside the
    classification loss (weight beta).
    Arevalo et al., "Gated Multimodal Units for Information Fusion",
    ICLR workshop 2017. https://arxiv.org/abs/1702.01992
    Baltrusaitis et al., "Multimodal Machine Learning: A Survey and
    Taxonomy", TPAMI 2019. https://arxiv.org/abs/1705.09406 (early,
    intermediate and late fusion).
    Neverova et al., "ModDrop: Adaptive Multi-Modal Gesture Recognition",
    TPAMI 2016. https://arxiv.org/abs/1501.00102 (modality dropout).
"""

import dataclasses
import math

import keras
from keras import ops

from mmzoo.encoders import (
    IMAGE_ENCODERS,
    TEXT_ENCODERS,
    build_image_encoder,
    build_text_encoder,
)
from mmzoo.layers import (
    FUSION_METHODS,
    SEQUENCE_FUSIONS,
    WEIGHTED_FUSIONS,
    ModalityDropout,
    get_fusion,
)
from mmzoo.registry import register_model

MODALITIES = ("image", "report")
"""Modalities in their fixed order (columns of masks and weights)."""
FUSION_LEVELS = ("early", "intermediate", "late")

# Input and output names: also `tf.data` keys and serving keys.
IMAGE = "image"
REPORT = "report"
PROBABILITIES = "probabilities"
MODALITY_WEIGHTS = "modality_weights"
RECONSTRUCTION = "reconstruction"


@dataclasses.dataclass(frozen=True)
class LSTNetDiagnosisConfig:
    """Hyperparameters of `build_lstnet_diagnosis`.

    Attributes:
        num_labels: int. Findings predicted (one sigmoid each). Set from the
            data by the task. Defaults to 3 (the `synthetic` dataset).
        label_names: tuple of str. Name of each finding, in output order
            (informational; set from the data). Defaults to `()`.
        vocabulary_size: int. Report token ids, padding (0) and OOV (1)
            included. The task uses it as the vocabulary cap and sets it to
            the size of the vocabulary built from the training reports.
            Defaults to 20000.
        max_report_length: int. Report tokens kept (longer reports are cut).
            The task lowers it to the longest training report. Defaults
            to 128.
        image_size: int. Height and width the images are resized to.
            Defaults to 224.
        image_encoder: str. One of `mmzoo.encoders.IMAGE_ENCODERS`: `cnn`
            (the LSTNet CNN), `resnet50`, `efficientnetb0`, `vit` (all
            without pretrained weights) or `patches`. Defaults to `cnn`.
        cnn_filters: tuple of int. Filters of the CNN's Conv-BN-ReLU-Pool
            blocks. Defaults to `(32, 64, 128, 128, 256)`.
        patch_size: int. Patch side of `vit` and of early fusion's patch
            embedding; must divide `image_size`. Defaults to 16.
        patch_dim: int. Width of early fusion's patch embedding. Defaults
            to 64.
        vit_num_layers: int. ViT blocks. Defaults to 12 (ViT-B/16).
        vit_num_heads: int. ViT heads. Defaults to 12.
        vit_hidden_dim: int. ViT width. Defaults to 768.
        vit_mlp_dim: int. ViT feed-forward width. Defaults to 3072.
        text_encoder: str. `lstm`, `bilstm` or `bag` (mean of word
            embeddings). Defaults to `bilstm`.
        embedding_dim: int. Word embedding width. Defaults to 128.
        text_units: int. LSTM units per direction. Defaults to 128.
        representation_dim: int. Width of each modality's projection head.
            Defaults to 256.
        fusion: str. One of `mmzoo.layers.FUSION_METHODS`. Defaults to
            `concat`.
        fusion_level: str. `early`, `intermediate` or `late` (see the module
            docstring). Sequence fusions (`cross_attention`) need `early` or
            `intermediate`. Defaults to `intermediate`.
        fusion_units: int. Width of the fusion layer (`units` of the layers
            that take it; total attention width of `cross_attention`).
            Defaults to 256.
        fusion_heads: int. Attention heads of `cross_attention`. Defaults
            to 4.
        lmf_rank: int. Rank of `lmf`. Defaults to 4.
        adversarial_loss_weight: float. Weight of the modality
            discriminator's loss of `adversarial_alignment`. Defaults to
            0.05.
        modalities: tuple of str. Subset of `("image", "report")` the model
            uses; one modality turns the other branch off (ablations) and
            needs no fusion. A string such as `"image"` or `"image,report"`
            is accepted. Defaults to both.
        modality_dropout: float. Probability of dropping each modality of
            each training example (never all of them); 0 turns it off.
            Defaults to 0.
        hidden_units: tuple of int. Hidden layers of the classifier MLP.
            Defaults to `(256,)`.
        activation: str. Activation of the projection heads and hidden
            layers (any `keras.activations` name). Defaults to `relu`.
        dropout: float. Dropout after projections and hidden layers.
            Defaults to 0.3.
        reconstruction_weight: float. Alpha: weight of the auxiliary MSE
            loss of an image decoder (output `reconstruction`, target the
            image rescaled to 0..1); 0 leaves the decoder out. Needs the
            image modality. Defaults to 0.
        classification_weight: float. Beta: weight of the classification
            loss. Defaults to 1.
        decoder_filters: tuple of int. Filters of the reconstruction
            decoder's upsampling blocks (each doubles the resolution).
            Defaults to `(128, 64, 32)`.
        learning_rate: float. Adam learning rate used by the task. Defaults
            to 1e-3.
    """

    num_labels: int = 3
    label_names: tuple = ()
    vocabulary_size: int = 20000
    max_report_length: int = 128
    image_size: int = 224
    image_encoder: str = "cnn"
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
    representation_dim: int = 256
    fusion: str = "concat"
    fusion_level: str = "intermediate"
    fusion_units: int = 256
    fusion_heads: int = 4
    lmf_rank: int = 4
    adversarial_loss_weight: float = 0.05
    modalities: tuple = MODALITIES
    modality_dropout: float = 0.0
    hidden_units: tuple = (256,)
    activation: str = "relu"
    dropout: float = 0.3
    reconstruction_weight: float = 0.0
    classification_weight: float = 1.0
    decoder_filters: tuple = (128, 64, 32)
    learning_rate: float = 1e-3

    def __post_init__(self):
        def fail(message):
            raise ValueError(f"lstnet_diagnosis: {message}")

        def choose(field, valid):
            value = getattr(self, field)
            if value not in valid:
                fail(f"unknown {field} {value!r}; valid: {', '.join(valid)}")

        modalities = self.modalities
        if isinstance(modalities, str):
            modalities = [m.strip() for m in modalities.split(",")]
        modalities = tuple(modalities)
        unknown = [m for m in modalities if m not in MODALITIES]
        if unknown or not modalities or len(set(modalities)) != len(modalities):
            fail(
                f"modalities={self.modalities!r}; expected a non-empty subset "
                f"of {', '.join(MODALITIES)} without repeats"
            )
        object.__setattr__(
            self, "modalities", tuple(m for m in MODALITIES if m in modalities)
        )
        for field in ("label_names", "cnn_filters", "hidden_units"):
            object.__setattr__(self, field, tuple(getattr(self, field)))
        object.__setattr__(self, "decoder_filters", tuple(self.decoder_filters))
        choose("fusion", FUSION_METHODS)
        choose("fusion_level", FUSION_LEVELS)
        choose("image_encoder", IMAGE_ENCODERS)
        choose("text_encoder", TEXT_ENCODERS)
        if self.fusion in SEQUENCE_FUSIONS and self.fusion_level == "late":
            fail(
                f"fusion {self.fusion!r} fuses token/region sequences; "
                "fusion_level 'late' fuses per-modality decisions (vectors). "
                "Use fusion_level 'early' or 'intermediate'"
            )
        if self.num_labels < 1:
            fail(f"num_labels={self.num_labels}; expected at least 1")
        if self.label_names and len(self.label_names) != self.num_labels:
            fail(
                f"{len(self.label_names)} label_names for num_labels="
                f"{self.num_labels}"
            )
        if self.vocabulary_size < 2:
            fail(
                f"vocabulary_size={self.vocabulary_size}; expected >= 2 "
                "(padding + OOV)"
            )
        if self.max_report_length < 1:
            fail(f"max_report_length={self.max_report_length}; expected >= 1")
        if not 0.0 <= self.modality_dropout < 1.0:
            fail(
                f"modality_dropout={self.modality_dropout}; expected 0 <= "
                "rate < 1"
            )
        if not 0.0 <= self.dropout < 1.0:
            fail(f"dropout={self.dropout}; expected 0 <= dropout < 1")
        if self.reconstruction_weight < 0 or self.classification_weight <= 0:
            fail(
                f"reconstruction_weight={self.reconstruction_weight} and "
                f"classification_weight={self.classification_weight}; "
                "expected alpha >= 0 and beta > 0"
            )
        if self.reconstruction_weight and IMAGE not in self.modalities:
            fail(
                "reconstruction_weight > 0 reconstructs the image; it needs "
                f"'image' in modalities (got {self.modalities})"
            )
        if self.reconstruction_weight and not self.decoder_filters:
            fail("reconstruction_weight > 0 needs decoder_filters")
        try:
            keras.activations.get(self.activation)
        except ValueError:
            fail(
                f"unknown activation {self.activation!r}; expected a "
                "keras.activations name such as relu or gelu"
            )
        if self.fusion == "cross_attention" and (
            self.fusion_units % self.fusion_heads
        ):
            fail(
                f"fusion_units={self.fusion_units} is not divisible by "
                f"fusion_heads={self.fusion_heads}"
            )


VARIANTS = {
    "tiny": {
        "image_size": 48,
        "cnn_filters": (8, 16, 32),
        "patch_size": 8,
        "patch_dim": 16,
        "vit_num_layers": 1,
        "vit_num_heads": 2,
        "vit_hidden_dim": 16,
        "vit_mlp_dim": 32,
        "vocabulary_size": 2000,
        "max_report_length": 64,
        "text_encoder": "lstm",
        "embedding_dim": 16,
        "text_units": 16,
        "representation_dim": 32,
        "fusion_units": 32,
        "fusion_heads": 2,
        "hidden_units": (32,),
        "dropout": 0.1,
        "decoder_filters": (16, 8, 8),
        "learning_rate": 3e-3,
    },
    "base": {},
}


def output_names(config):
    """Names of the model's outputs for `config`, in dict order.

    `probabilities` always; `modality_weights` when two modalities are fused
    by a method of `WEIGHTED_FUSIONS`; `reconstruction` when
    `reconstruction_weight > 0`. A model with one output returns a tensor,
    otherwise a dict with these keys.
    """
    names = [PROBABILITIES]
    if has_modality_weights(config):
        names.append(MODALITY_WEIGHTS)
    if config.reconstruction_weight > 0:
        names.append(RECONSTRUCTION)
    return tuple(names)


def has_modality_weights(config):
    """Whether the model built from `config` outputs `modality_weights`."""
    return len(config.modalities) > 1 and config.fusion in WEIGHTED_FUSIONS


@keras.saving.register_keras_serializable(package="mmzoo")
class ModalityMask(keras.layers.Layer):
    """Per-example modality mask `[B, M]` derived from the inputs.

    A modality whose input is token ids is present when any id is not 0
    (an all-padding row is a missing report); any other modality is always
    present.

    Args:
        token_inputs: tuple of bool. For each modality, whether its input is
            token ids.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`).

    Call args:
        inputs: list of the `M` modality inputs, each `[B, ...]`.

    Returns:
        A float `[B, M]` tensor, 1.0 = present.

    Example:
    ```python
    mask = ModalityMask((False, True))([image, report_ids])
    ```
    """

    def __init__(self, token_inputs, **kwargs):
        super().__init__(**kwargs)
        self.token_inputs = tuple(bool(t) for t in token_inputs)

    def call(self, inputs):
        if len(inputs) != len(self.token_inputs):
            raise ValueError(
                f"{self.name}: built for {len(self.token_inputs)} modalities; "
                f"received {len(inputs)}"
            )
        columns = []
        for is_tokens, x in zip(self.token_inputs, inputs):
            flat = ops.reshape(x, (ops.shape(x)[0], -1))
            if is_tokens:
                present = ops.any(ops.not_equal(flat, 0), axis=1)
            else:
                present = ops.ones_like(flat[:, 0], dtype="bool")
            columns.append(ops.cast(present, self.compute_dtype))
        return ops.stack(columns, axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], len(self.token_inputs))

    def get_config(self):
        config = super().get_config()
        config["token_inputs"] = list(self.token_inputs)
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


def _decoder(vector, config):
    """Image decoder: vector → `[B, S, S, 3]` in 0..1 (sigmoid)."""
    size = config.image_size
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


def _encode(config, inputs):
    """Runs the branches; returns per-modality `(pooled, sequence, mask)`."""
    early = config.fusion_level == "early"
    # Region sequences are only read by sequence fusions of both modalities.
    sequences = config.fusion in SEQUENCE_FUSIONS and len(inputs) > 1
    features = {}
    if IMAGE in inputs:
        encoder = build_image_encoder(
            "patches" if early else config.image_encoder,
            config.image_size,
            cnn_filters=config.cnn_filters,
            patch_size=config.patch_size,
            patch_dim=config.patch_dim,
            vit_num_layers=config.vit_num_layers,
            vit_num_heads=config.vit_num_heads,
            vit_hidden_dim=config.vit_hidden_dim,
            vit_mlp_dim=config.vit_mlp_dim,
            dropout=config.dropout,
            return_regions=sequences,
            name="image_encoder",
        )
        if sequences:
            pooled, regions = encoder(inputs[IMAGE])
        else:
            pooled, regions = encoder(inputs[IMAGE]), None
        features[IMAGE] = (pooled, regions, None)
    if REPORT in inputs:
        encoder = build_text_encoder(
            "bag" if early else config.text_encoder,
            vocabulary_size=config.vocabulary_size,
            max_length=config.max_report_length,
            embedding_dim=config.embedding_dim,
            units=config.text_units,
            name="report_encoder",
        )
        features[REPORT] = tuple(encoder(inputs[REPORT]))
    return features


@register_model("lstnet_diagnosis", LSTNetDiagnosisConfig, variants=VARIANTS)
def build_lstnet_diagnosis(config: LSTNetDiagnosisConfig) -> keras.Model:
    """Builds an uncompiled image + report multi-label diagnosis model.

    Inputs: `image` float32 `[B, S, S, 3]` (raw pixels, 0..255) and
    `report` int32 `[B, max_report_length]` (token ids, 0 = padding; an
    all-zero row is a missing report), or only the one of `modalities`.
    Outputs (see `output_names`): `probabilities` float32 `[B,
    num_labels]`; with a weighted fusion also `modality_weights` float32
    `[B, 2]` (columns image, report; a missing modality gets 0); with
    `reconstruction_weight > 0` also `reconstruction` float32 `[B, S, S,
    3]`. A single output is returned as a tensor, several as a dict. Train
    `probabilities` with binary cross-entropy (weight
    `classification_weight`) and `reconstruction` with MSE against
    `image / 255` (weight `reconstruction_weight`); `modality_weights` has
    no loss.

    Example:
    >>> model = mmzoo.build("lstnet_diagnosis", "tiny", fusion="attention")
    >>> out = model({"image": images, "report": report_ids})
    >>> out["probabilities"].shape, out["modality_weights"].shape
    ((B, 3), (B, 2))

    Reference:
        LSTNet (design documents of this project); Arevalo et al., 2017
        (GMU); Baltrusaitis et al., 2019 (fusion levels); Neverova et al.,
        2016 (ModDrop).
    """
    size = config.image_size
    inputs = {}
    if IMAGE in config.modalities:
        inputs[IMAGE] = keras.Input(
            (size, size, 3), dtype="float32", name=IMAGE
        )
    if REPORT in config.modalities:
        inputs[REPORT] = keras.Input(
            (config.max_report_length,), dtype="int32", name=REPORT
        )
    level = config.fusion_level
    names = list(config.modalities)
    features = _encode(config, inputs)

    # Sequence fusions read the encoders' sequences; every other fusion (and
    # one modality alone) reads per-modality vectors.
    sequence_fusion = len(names) > 1 and config.fusion in SEQUENCE_FUSIONS
    # Per-modality projection heads: LayerNorm + Dense, linear for early
    # fusion (projected low-level features), with the activation otherwise.
    activation = None if level == "early" else config.activation
    vectors = {}
    for name in names:
        if sequence_fusion and not (
            name == IMAGE and config.reconstruction_weight > 0
        ):
            continue
        # LayerNorm first: a CNN's flattened ReLU features are all positive
        # and wide, so without it Adam steps shift every unit of the
        # projection at once and most ReLUs (sometimes all) die.
        x = keras.layers.LayerNormalization(name=f"{name}_norm")(
            features[name][0]
        )
        x = keras.layers.Dense(
            config.representation_dim,
            activation=activation,
            name=f"{name}_projection",
        )(x)
        if config.dropout and level != "early":
            x = keras.layers.Dropout(config.dropout, name=f"{name}_dropout")(x)
        vectors[name] = x

    mask = None
    if len(names) > 1:
        mask = ModalityMask(
            tuple(name == REPORT for name in names), name="modality_mask"
        )([inputs[name] for name in names])
        if config.modality_dropout:
            mask = ModalityDropout(
                config.modality_dropout, name="modality_dropout"
            )([features[name][0] for name in names], modality_mask=mask)

    weights = None
    return_weights = has_modality_weights(config)
    if level == "late":
        decisions = []
        for name in names:
            x = _dense_stack(
                vectors[name],
                config.hidden_units,
                config.dropout,
                f"{name}_classifier",
                config.activation,
            )
            x = keras.layers.Dense(
                config.num_labels,
                activation="sigmoid",
                name=f"{name}_probabilities",
            )(x)
            decisions.append(x)
        if len(names) == 1:
            logits = None
            probabilities = keras.layers.Identity(
                dtype="float32", name=PROBABILITIES
            )(decisions[0])
        else:
            fused = _fusion_layer(config, "fusion", return_weights)(
                decisions, modality_mask=mask
            )
            if return_weights:
                fused, weights = fused
            logits = keras.layers.Dense(config.num_labels, name="logits")(fused)
    else:
        if len(names) == 1:
            fused = vectors[names[0]]
        elif sequence_fusion:
            fused = _fusion_layer(config, "fusion", False)(
                [features[IMAGE][1], features[REPORT][1]],
                modality_mask=mask,
                token_masks=[None, features[REPORT][2]],
            )
        else:
            fused = _fusion_layer(config, "fusion", return_weights)(
                [vectors[name] for name in names], modality_mask=mask
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
        logits = keras.layers.Dense(config.num_labels, name="logits")(x)
    if logits is not None:
        probabilities = keras.layers.Activation(
            "sigmoid", dtype="float32", name=PROBABILITIES
        )(logits)

    outputs = {PROBABILITIES: probabilities}
    if weights is not None:
        outputs[MODALITY_WEIGHTS] = keras.layers.Identity(
            dtype="float32", name=MODALITY_WEIGHTS
        )(weights)
    if config.reconstruction_weight > 0:
        outputs[RECONSTRUCTION] = _decoder(vectors[IMAGE], config)
    if len(outputs) == 1:
        outputs = probabilities
    return keras.Model(inputs, outputs, name="lstnet_diagnosis")
