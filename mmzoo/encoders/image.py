"""Image encoders that return a pooled vector and a sequence of regions.

`build_image_encoder(kind, image_size, ...)` returns a Functional
`keras.Model` that maps raw pixels, float32 `[B, S, S, 3]` in `0..255`, to
`[pooled [B, D], regions [B, P, D]]`:

- `pooled` is one vector per image, for vector fusions and
  classification heads;
- `regions` is one vector per image region (feature-map position or ViT
  patch) with a learned position embedding added, for cross-modal
  attention (text tokens attending to image regions).

Pixel rescaling is the encoder's first layer, in the form each backbone
expects, so callers always feed raw pixels and a SavedModel carries the
rescaling with it.

Kinds (backbone; rescaling; pooled; regions), each registered with
`register_image_encoder` in `IMAGE_ENCODERS`:

- `cnn`: Conv-BN-ReLU-MaxPool blocks, the LSTNet image branch; `x / 255`;
  the flattened last feature map (it keeps *where* a finding is); the
  feature-map positions.
- `patches`: one linear patch embedding (the low-level features of early
  fusion); `x / 255`; the flattened patch embeddings; the patches.
- `resnet50`: `keras.applications.ResNet50`; Caffe style (RGB→BGR, minus
  the ImageNet means), as its weights expect; global average; the
  feature-map positions.
- `efficientnetb0`: `keras.applications.EfficientNetB0`; its own
  `Rescaling` + `Normalization` layers read 0..255; global average; the
  feature-map positions.
- `vit`: keras-hub `ViTBackbone`; `x / 127.5 - 1`; the class token; the
  patch tokens.

Pretrained starting points:

- `preset` (`vit`, `resnet50`, `efficientnetb0`): any keras-hub image
  backbone preset, e.g. `vit_base_patch16_224_imagenet` or a local folder
  (see `mmzoo.encoders.presets`). The preset's image converter
  normalization (`pixels * scale + offset`) is a `PixelNormalization`
  layer inside the encoder, so it still takes 0..255 pixels at the
  preset's size (`preset_image_size`). Token outputs (ViT): pooled = class
  token, regions = patch tokens. Feature maps: pooled = global average,
  regions = the positions.
- `weights` (`resnet50`, `efficientnetb0`): `"imagenet"` or a local
  weights file, loaded into the `keras.applications` backbone.
- `trainable=False` freezes the backbone.
"""

import inspect
import os

import keras
import keras_hub
from keras import ops

from mmzoo.encoders.presets import (
    preset_image_size,
    preset_pixel_normalization,
)
from mmzoo.encoders.registry import IMAGE_ENCODERS, register_image_encoder

PRESET_IMAGE_KINDS = ("vit", "resnet50", "efficientnetb0")
"""Image kinds that can start from a keras-hub preset."""
WEIGHTS_IMAGE_KINDS = ("resnet50", "efficientnetb0")
"""Image kinds that can start from `keras.applications` weights."""

# ImageNet channel means in BGR order, as `keras.applications.resnet50.
# preprocess_input` (mode "caffe") subtracts them.
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


@keras.saving.register_keras_serializable(package="mmzoo")
class CaffePreprocessing(keras.layers.Layer):
    """Caffe-style ImageNet preprocessing: RGB→BGR, minus channel means.

    The preprocessing `keras.applications.ResNet50` expects (what
    `keras.applications.resnet50.preprocess_input` does outside the
    model), as a layer so it travels inside the model.

    Args:
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`).

    Call args:
        inputs: float `[B, H, W, 3]` RGB pixels in `0..255`.

    Returns:
        A float tensor like `inputs`, BGR and zero-centred.

    Example:
    ```python
    x = CaffePreprocessing()(image)  # then ResNet50(weights=...)(x)
    ```
    """

    def call(self, inputs):
        bgr = ops.flip(inputs, axis=-1)
        mean = ops.convert_to_tensor(_CAFFE_MEAN_BGR, dtype=bgr.dtype)
        return bgr - mean

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="mmzoo")
class PixelNormalization(keras.layers.Layer):
    """`pixels * scale + offset`, global or per channel.

    Carries a keras-hub preset's image converter normalization inside the
    encoder (the converter itself also resizes, which serving does
    before the model).

    Args:
        scale: float, list of float (one per channel) or None (no
            scaling). Defaults to None.
        offset: float, list of float (one per channel) or None (no
            offset). Defaults to None.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`).

    Call args:
        inputs: float `[B, H, W, C]` pixels in `0..255`.

    Returns:
        A tensor like `inputs`.

    Example:
    ```python
    x = PixelNormalization(1 / 127.5, -1.0)(image)  # -1..1
    ```
    """

    def __init__(self, scale=None, offset=None, **kwargs):
        super().__init__(**kwargs)
        self.scale = scale
        self.offset = offset

    def call(self, inputs):
        x = inputs
        if self.scale is not None:
            x = x * ops.convert_to_tensor(self.scale, dtype=x.dtype)
        if self.offset is not None:
            x = x + ops.convert_to_tensor(self.offset, dtype=x.dtype)
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "scale": self.scale,
            "offset": self.offset,
        }


@keras.saving.register_keras_serializable(package="mmzoo")
class PositionalRegions(keras.layers.Layer):
    """Adds a learned position embedding to a `[B, P, D]` region sequence.

    Regions of a feature map lose their place once flattened into a
    sequence; without a position embedding, attention over them cannot
    tell an upper-lobe finding from a lower-lobe one.

    Args:
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`).

    Call args:
        inputs: float `[B, P, D]` with known `P` and `D`.

    Returns:
        A tensor like `inputs`.

    Example:
    ```python
    regions = PositionalRegions()(keras.layers.Reshape((h * w, c))(fmap))
    ```

    Reference:
    - [Dosovitskiy et al., 2021. An Image is Worth 16x16 Words:
      Transformers for Image Recognition at
      Scale](https://arxiv.org/abs/2010.11929) (learned 1-D position
      embeddings of patches).
    """

    def build(self, input_shape):
        if len(input_shape) != 3 or None in input_shape[1:]:
            raise ValueError(
                f"{self.name}: expected [B, P, D] with known P and D; "
                f"received {input_shape}"
            )
        self.position_embedding = keras_hub.layers.PositionEmbedding(
            input_shape[1], dtype=self.dtype_policy, name="position_embedding"
        )
        self.position_embedding.build(input_shape)

    def call(self, inputs):
        return inputs + self.position_embedding(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="mmzoo")
class ClassTokenSplit(keras.layers.Layer):
    """Splits ViT tokens `[B, 1 + P, D]` into `(class token [B, D], patches
    [B, P, D])`.

    Args:
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`).

    Returns:
        A tuple `(pooled [B, D], regions [B, P, D])`.

    Example:
    ```python
    pooled, regions = ClassTokenSplit()(vit_backbone(image))
    ```
    """

    def call(self, inputs):
        return inputs[:, 0, :], inputs[:, 1:, :]

    def compute_output_shape(self, input_shape):
        batch, length, depth = input_shape
        length = None if length is None else length - 1
        return (batch, depth), (batch, length, depth)


def _regions(feature_map, name, enabled=True):
    """`[B, H, W, C]` → position-embedded regions `[B, H * W, C]`."""
    if not enabled:
        return None
    _, height, width, depth = feature_map.shape
    if height is None or width is None:
        raise ValueError(
            f"build_image_encoder: {name} feature map {feature_map.shape} "
            "has no static height and width; regions need them"
        )
    regions = keras.layers.Reshape(
        (height * width, depth), name=f"{name}_flatten_regions"
    )(feature_map)
    return PositionalRegions(name=f"{name}_regions")(regions)


def _size(image):
    return int(image.shape[1])


def _no_pretrained(kind, preset="", weights="", trainable=True):
    """Raises when a kind without a backbone is given pretrained options."""
    given = {"preset": preset, "weights": weights}
    given = [f"{key}={value!r}" for key, value in given.items() if value]
    if not trainable:
        given.append(f"trainable={trainable!r}")
    if given:
        raise ValueError(
            f"build_image_encoder: {kind} has no pretrained backbone; "
            f"received {', '.join(given)}. preset and trainable apply to "
            f"{', '.join(PRESET_IMAGE_KINDS)}; weights to "
            f"{', '.join(WEIGHTS_IMAGE_KINDS)}"
        )


def _check_weights(kind, weights):
    if weights in ("", "imagenet") or os.path.isfile(weights):
        return
    raise ValueError(
        f"build_image_encoder: {kind} weights must be '' (random), "
        f"'imagenet' or an existing weights file; received {weights!r}"
    )


def preset_image_outputs(image, preset, trainable=True, return_regions=True):
    """Runs a keras-hub image backbone preset on raw pixels.

    The preset's image converter normalization (`pixels * scale + offset`)
    becomes a `PixelNormalization` layer in front of the backbone, so the
    encoder still takes 0..255 pixels.

    Args:
        image: KerasTensor. float32 `[B, S, S, 3]` raw pixels.
        preset: str. A keras-hub preset handle or local folder.
        trainable: bool. False freezes the backbone. Defaults to True.
        return_regions: bool. Whether to return regions. Defaults to True.

    Returns:
        `(pooled, regions)`: for a token output `[B, 1 + P, D]` (ViT), the
        class token and the patch tokens (their mean and all tokens when
        the backbone has no class token); for a feature map
        `[B, H, W, C]`, its global average and its position-embedded
        positions. `regions` is None when `return_regions` is False.

    Raises:
        ValueError: when the preset's backbone does not take `S`-pixel
            images or returns neither tokens nor a feature map.
    """
    size = _size(image)
    backbone = keras_hub.models.Backbone.from_preset(preset)
    shape = backbone.input.shape if not isinstance(backbone.input, dict) else ()
    if len(shape) != 4:
        raise ValueError(
            f"build_image_encoder: preset {preset!r} is not an image "
            f"backbone (inputs {backbone.input})"
        )
    if any(side not in (None, size) for side in shape[1:3]):
        raise ValueError(
            f"build_image_encoder: preset {preset!r} takes {shape[1]}x"
            f"{shape[2]} images; received image_size={size} (see "
            "preset_image_size)"
        )
    backbone.trainable = bool(trainable)
    scale, offset = preset_pixel_normalization(preset)
    x = image
    if scale is not None or offset is not None:
        x = PixelNormalization(scale, offset, name="preset_normalization")(x)
    features = backbone(x)
    rank = None if isinstance(features, dict) else len(features.shape)
    if rank == 3 and backbone.get_config().get("use_class_token", True):
        pooled, regions = ClassTokenSplit(name="class_token_split")(features)
    elif rank == 3:
        pooled = keras.layers.GlobalAveragePooling1D(name="pool")(features)
        regions = features
    elif rank == 4:
        pooled = keras.layers.GlobalAveragePooling2D(name="pool")(features)
        regions = _regions(features, "preset", return_regions)
    else:
        raise ValueError(
            f"build_image_encoder: preset {preset!r} returns {features}; "
            "expected tokens [B, N, D] or a feature map [B, H, W, C]"
        )
    return pooled, regions if return_regions else None


@register_image_encoder("cnn")
def cnn_image_encoder(
    image,
    cnn_filters=(32, 64, 128, 128, 256),
    return_regions=True,
    preset="",
    weights="",
    trainable=True,
    **options,
):
    """Conv-BN-ReLU-MaxPool blocks (the LSTNet image branch)."""
    _no_pretrained("cnn", preset, weights, trainable)
    size = _size(image)
    filters = tuple(cnn_filters)
    if not filters or size >> len(filters) < 1:
        raise ValueError(
            f"build_image_encoder: cnn_filters={filters} has "
            f"{len(filters)} pooling blocks; image_size={size} allows "
            f"1 to {size.bit_length() - 1}"
        )
    x = keras.layers.Rescaling(1.0 / 255.0, name="rescaling")(image)
    for index, width in enumerate(filters):
        block = f"cnn_block{index + 1}"
        x = keras.layers.Conv2D(
            width, 3, padding="same", use_bias=False, name=f"{block}_conv"
        )(x)
        x = keras.layers.BatchNormalization(name=f"{block}_bn")(x)
        x = keras.layers.ReLU(name=f"{block}_relu")(x)
        x = keras.layers.MaxPooling2D(2, name=f"{block}_pool")(x)
    pooled = keras.layers.Flatten(name="flatten")(x)
    return pooled, _regions(x, "cnn", return_regions)


def _check_patch_size(image, patch_size):
    size = _size(image)
    if size % int(patch_size):
        raise ValueError(
            f"build_image_encoder: image_size={size} is not divisible by "
            f"patch_size={patch_size}"
        )


@register_image_encoder("patches")
def patches_image_encoder(
    image,
    patch_size=16,
    patch_dim=64,
    return_regions=True,
    preset="",
    weights="",
    trainable=True,
    **options,
):
    """One linear patch embedding (early-fusion features)."""
    _no_pretrained("patches", preset, weights, trainable)
    _check_patch_size(image, patch_size)
    x = keras.layers.Rescaling(1.0 / 255.0, name="rescaling")(image)
    fmap = keras.layers.Conv2D(
        int(patch_dim),
        int(patch_size),
        strides=int(patch_size),
        name="patch_embedding",
    )(x)
    pooled = keras.layers.Flatten(name="flatten")(fmap)
    return pooled, _regions(fmap, "patch", return_regions)


def _application(kind, application, image, x, weights, trainable):
    """A `keras.applications` backbone on `x`: its feature map."""
    size = _size(image)
    if size < 32:
        raise ValueError(
            f"build_image_encoder: {kind} needs image_size >= 32; received "
            f"{size}"
        )
    _check_weights(kind, weights)
    backbone = application(
        include_top=False,
        weights="imagenet" if weights == "imagenet" else None,
        input_shape=(size, size, 3),
    )
    if weights and weights != "imagenet":
        backbone.load_weights(weights)
    backbone.trainable = bool(trainable)
    return backbone(x)


@register_image_encoder("resnet50")
def resnet50_image_encoder(
    image,
    preset="",
    weights="",
    trainable=True,
    return_regions=True,
    **options,
):
    """`keras.applications.ResNet50` behind Caffe-style preprocessing."""
    if preset:
        return preset_image_outputs(image, preset, trainable, return_regions)
    x = CaffePreprocessing(name="caffe_preprocessing")(image)
    fmap = _application(
        "resnet50", keras.applications.ResNet50, image, x, weights, trainable
    )
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(fmap)
    return pooled, _regions(fmap, "resnet50", return_regions)


@register_image_encoder("efficientnetb0")
def efficientnetb0_image_encoder(
    image,
    preset="",
    weights="",
    trainable=True,
    return_regions=True,
    **options,
):
    """`keras.applications.EfficientNetB0` (it reads 0..255 itself)."""
    if preset:
        return preset_image_outputs(image, preset, trainable, return_regions)
    fmap = _application(
        "efficientnetb0",
        keras.applications.EfficientNetB0,
        image,
        image,
        weights,
        trainable,
    )
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(fmap)
    return pooled, _regions(fmap, "efficientnetb0", return_regions)


@register_image_encoder("vit")
def vit_image_encoder(
    image,
    patch_size=16,
    vit_num_layers=12,
    vit_num_heads=12,
    vit_hidden_dim=768,
    vit_mlp_dim=3072,
    dropout=0.0,
    preset="",
    weights="",
    trainable=True,
    return_regions=True,
    **options,
):
    """keras-hub `ViTBackbone`, from scratch or from a preset."""
    if weights:
        raise ValueError(
            f"build_image_encoder: vit takes a preset, not weights; received "
            f"weights={weights!r}. weights applies to "
            f"{', '.join(WEIGHTS_IMAGE_KINDS)}"
        )
    if preset:
        return preset_image_outputs(image, preset, trainable, return_regions)
    _check_patch_size(image, patch_size)
    size = _size(image)
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescaling")(
        image
    )
    backbone = keras_hub.models.ViTBackbone(
        image_shape=(size, size, 3),
        patch_size=int(patch_size),
        num_layers=int(vit_num_layers),
        num_heads=int(vit_num_heads),
        hidden_dim=int(vit_hidden_dim),
        mlp_dim=int(vit_mlp_dim),
        dropout_rate=dropout,
        name="vit_backbone",
    )
    backbone.trainable = bool(trainable)
    pooled, regions = ClassTokenSplit(name="class_token_split")(backbone(x))
    return pooled, regions if return_regions else None


def build_image_encoder(
    kind="cnn",
    image_size=224,
    cnn_filters=(32, 64, 128, 128, 256),
    patch_size=16,
    patch_dim=64,
    vit_num_layers=12,
    vit_num_heads=12,
    vit_hidden_dim=768,
    vit_mlp_dim=3072,
    dropout=0.0,
    preset="",
    weights="",
    trainable=True,
    return_regions=True,
    name="image_encoder",
):
    """Builds an image encoder returning `[pooled, regions]`.

    Args:
        kind: str. One of `IMAGE_ENCODERS` (see the module docstring).
            Defaults to `"cnn"`.
        image_size: int. Height and width of the square input. `resnet50`
            and `efficientnetb0` need at least 32. None with a `preset`
            takes `preset_image_size(preset)`. Defaults to `224`.
        cnn_filters: tuple of int. Filters of each Conv-BN-ReLU-MaxPool
            block of `cnn`; each block halves the resolution. Defaults to
            `(32, 64, 128, 128, 256)` (a 7x7 map at 224 pixels).
        patch_size: int. Patch side of `vit` and `patches`; must divide
            `image_size`. Defaults to `16`.
        patch_dim: int. Width of the `patches` embedding. Defaults to `64`.
        vit_num_layers: int. ViT transformer blocks. Defaults to `12`.
        vit_num_heads: int. ViT attention heads. Defaults to `12`.
        vit_hidden_dim: int. ViT token width. Defaults to `768`.
        vit_mlp_dim: int. ViT feed-forward width. Defaults to `3072`.
        dropout: float. ViT dropout rate. Defaults to `0.0`.
        preset: str. A keras-hub image backbone preset (Kaggle handle such
            as `"vit_base_patch16_224_imagenet"`, or a local folder) to
            start `vit`, `resnet50` or `efficientnetb0` from; the size
            arguments above are then the preset's. `""` = none. Defaults to
            `""`.
        weights: str. Starting weights of `resnet50` / `efficientnetb0`:
            `""` (random), `"imagenet"` (downloaded by
            `keras.applications`; needs the network) or the path of a
            weights file of that backbone without its top
            (`.weights.h5`, or the `keras.applications` `*_notop.h5`
            download), loaded with `load_weights`. Defaults to `""`.
        trainable: bool. False freezes the backbone (its weights leave
            `trainable_weights`; the region position embedding and the
            caller's layers still train). Only for the backbone kinds.
            Defaults to True.
        return_regions: bool. When False the model returns `pooled` alone
            (no unused region weights for callers that only fuse vectors).
            Defaults to True.
        name: str. Name of the returned model. Defaults to
            `"image_encoder"`.

    Returns:
        A Functional `keras.Model` from `image` float32 `[B, S, S, 3]`
        (raw pixels, `0..255`) to `[pooled [B, D], regions [B, P, D]]` (or
        `pooled` alone when `return_regions` is False).

    Raises:
        ValueError: for an unknown `kind`, sizes a backbone cannot take,
            or pretrained options a kind has no use for.

    Example:
    ```python
    encoder = build_image_encoder("cnn", image_size=64, cnn_filters=(8, 16))
    pooled, regions = encoder(images)  # [B, 16 * 16 * 16], [B, 256, 16]
    vit = build_image_encoder(
        "vit", preset="vit_base_patch16_224_imagenet", trainable=False
    )
    ```

    Reference:
    - LSTNet image branch (design documents of this project): a small CNN of
      Conv-BN-ReLU-Pool blocks.
    - [He et al., 2016. Deep Residual Learning for Image
      Recognition](https://arxiv.org/abs/1512.03385)
    - [Tan & Le, 2019. EfficientNet: Rethinking Model Scaling for
      Convolutional Neural Networks](https://arxiv.org/abs/1905.11946)
    - [Dosovitskiy et al., 2021. An Image is Worth 16x16
      Words](https://arxiv.org/abs/2010.11929)
    """
    if kind not in IMAGE_ENCODERS:
        raise ValueError(
            f"build_image_encoder: unknown kind {kind!r}; valid: "
            f"{', '.join(IMAGE_ENCODERS)}"
        )
    preset, weights = preset or "", weights or ""
    if preset and weights:
        raise ValueError(
            f"build_image_encoder: give preset or weights, not both; "
            f"received preset={preset!r}, weights={weights!r}"
        )
    if image_size is None and preset:
        image_size = preset_image_size(preset)
    if image_size is None or int(image_size) < 1:
        raise ValueError(
            f"build_image_encoder: image_size must be a positive int; "
            f"received {image_size!r}"
            + (f" (preset {preset!r} does not set one)" if preset else "")
        )
    size = int(image_size)
    image = keras.Input((size, size, 3), dtype="float32", name="image")
    pooled, regions = IMAGE_ENCODERS[kind](
        image,
        image_size=size,
        cnn_filters=cnn_filters,
        patch_size=patch_size,
        patch_dim=patch_dim,
        vit_num_layers=vit_num_layers,
        vit_num_heads=vit_num_heads,
        vit_hidden_dim=vit_hidden_dim,
        vit_mlp_dim=vit_mlp_dim,
        dropout=dropout,
        preset=preset,
        weights=weights,
        trainable=trainable,
        return_regions=return_regions,
    )
    outputs = [pooled, regions] if return_regions else pooled
    return keras.Model(image, outputs, name=name)


# Standard config field -> `build_image_encoder` argument.
_CONFIG_FIELDS = {
    "image_size": "image_size",
    "cnn_filters": "cnn_filters",
    "patch_size": "patch_size",
    "patch_dim": "patch_dim",
    "vit_num_layers": "vit_num_layers",
    "vit_num_heads": "vit_num_heads",
    "vit_hidden_dim": "vit_hidden_dim",
    "vit_mlp_dim": "vit_mlp_dim",
    "dropout": "dropout",
    "image_preset": "preset",
    "image_weights": "weights",
    "image_trainable": "trainable",
}


def image_encoder_from_config(
    config, name="image_encoder", return_regions=True, kind=None
):
    """Builds the image encoder a model config describes.

    Reads the standard field names (`image_encoder`, `image_size`,
    `image_preset`, `image_weights`, `image_trainable`, `cnn_filters`,
    `patch_size`, `patch_dim`, `vit_num_layers`, `vit_num_heads`,
    `vit_hidden_dim`, `vit_mlp_dim`, `dropout`); a missing field takes
    `build_image_encoder`'s default (a missing `image_size` with a preset,
    the preset's size).

    Args:
        config: any object with (some of) those attributes, e.g. a model's
            frozen config dataclass.
        name: str. Name of the returned model. Defaults to
            `"image_encoder"`.
        return_regions: bool. See `build_image_encoder`. Defaults to True.
        kind: str. Overrides `config.image_encoder` (e.g. `"patches"` for
            early fusion); a different kind ignores the config's
            pretrained options (`image_preset`, `image_weights`,
            `image_trainable`), which describe the configured backbone.
            Defaults to None.

    Returns:
        The `keras.Model` of `build_image_encoder`.

    Example:
    ```python
    encoder = image_encoder_from_config(config, return_regions=False)
    ```
    """
    defaults = inspect.signature(build_image_encoder).parameters
    kwargs = {
        argument: getattr(config, field, defaults[argument].default)
        for field, argument in _CONFIG_FIELDS.items()
    }
    configured = getattr(config, "image_encoder", "cnn")
    if kind and kind != configured:
        # The pretrained options describe the configured backbone.
        kwargs.update(preset="", weights="", trainable=True)
    if kwargs["preset"] and not hasattr(config, "image_size"):
        kwargs["image_size"] = None  # The preset's.
    return build_image_encoder(
        kind or configured, return_regions=return_regions, name=name, **kwargs
    )
