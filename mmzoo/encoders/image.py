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

Kinds (backbone; rescaling; pooled; regions):

- `cnn`: Conv-BN-ReLU-MaxPool blocks, the LSTNet image branch; `x / 255`;
  the flattened last feature map (it keeps *where* a finding is); the
  feature-map positions.
- `resnet50`: `keras.applications.ResNet50`, `weights=None`; Caffe style
  (RGB→BGR, minus the ImageNet means), as its weights expect; global
  average; the feature-map positions.
- `efficientnetb0`: `keras.applications.EfficientNetB0`, `weights=None`;
  its own `Rescaling` + `Normalization` layers read 0..255; global
  average; the feature-map positions.
- `vit`: keras-hub `ViTBackbone`, no preset; `x / 127.5 - 1`; the class
  token; the patch tokens.
- `patches`: one linear patch embedding (the low-level features of early
  fusion); `x / 255`; the flattened patch embeddings; the patches.
"""

import keras
import keras_hub
from keras import ops

IMAGE_ENCODERS = ("cnn", "resnet50", "efficientnetb0", "vit", "patches")
"""Kinds accepted by `build_image_encoder`."""

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
    regions = keras.layers.Reshape(
        (height * width, depth), name=f"{name}_flatten_regions"
    )(feature_map)
    return PositionalRegions(name=f"{name}_regions")(regions)


def _cnn(x, filters, name):
    for index, width in enumerate(filters):
        block = f"{name}_block{index + 1}"
        x = keras.layers.Conv2D(
            width, 3, padding="same", use_bias=False, name=f"{block}_conv"
        )(x)
        x = keras.layers.BatchNormalization(name=f"{block}_bn")(x)
        x = keras.layers.ReLU(name=f"{block}_relu")(x)
        x = keras.layers.MaxPooling2D(2, name=f"{block}_pool")(x)
    return x


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
    return_regions=True,
    name="image_encoder",
):
    """Builds an image encoder returning `[pooled, regions]`.

    Args:
        kind: str. One of `IMAGE_ENCODERS` (see the module docstring).
            Defaults to `"cnn"`.
        image_size: int. Height and width of the square input. `resnet50`
            and `efficientnetb0` need at least 32. Defaults to `224`.
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
        ValueError: for an unknown `kind`, or sizes a backbone cannot take.

    Example:
    ```python
    encoder = build_image_encoder("cnn", image_size=64, cnn_filters=(8, 16))
    pooled, regions = encoder(images)  # [B, 16 * 16 * 16], [B, 256, 16]
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
    size = int(image_size)
    if kind in ("resnet50", "efficientnetb0") and size < 32:
        raise ValueError(
            f"build_image_encoder: {kind} needs image_size >= 32; received "
            f"{size}"
        )
    if kind in ("vit", "patches") and size % patch_size:
        raise ValueError(
            f"build_image_encoder: image_size={size} is not divisible by "
            f"patch_size={patch_size}"
        )
    if kind == "cnn" and (not cnn_filters or size >> len(cnn_filters) < 1):
        raise ValueError(
            f"build_image_encoder: cnn_filters={tuple(cnn_filters)} has "
            f"{len(cnn_filters)} pooling blocks; image_size={size} allows "
            f"1 to {size.bit_length() - 1}"
        )
    shape = (size, size, 3)
    image = keras.Input(shape, dtype="float32", name="image")
    if kind == "cnn":
        x = keras.layers.Rescaling(1.0 / 255.0, name="rescaling")(image)
        fmap = _cnn(x, tuple(cnn_filters), "cnn")
        pooled = keras.layers.Flatten(name="flatten")(fmap)
        regions = _regions(fmap, "cnn", return_regions)
    elif kind == "patches":
        x = keras.layers.Rescaling(1.0 / 255.0, name="rescaling")(image)
        fmap = keras.layers.Conv2D(
            patch_dim, patch_size, strides=patch_size, name="patch_embedding"
        )(x)
        pooled = keras.layers.Flatten(name="flatten")(fmap)
        regions = _regions(fmap, "patch", return_regions)
    elif kind == "resnet50":
        x = CaffePreprocessing(name="caffe_preprocessing")(image)
        backbone = keras.applications.ResNet50(
            include_top=False, weights=None, input_shape=shape
        )
        fmap = backbone(x)
        pooled = keras.layers.GlobalAveragePooling2D(name="pool")(fmap)
        regions = _regions(fmap, "resnet50", return_regions)
    elif kind == "efficientnetb0":
        # EfficientNet rescales and normalizes raw 0..255 pixels itself.
        backbone = keras.applications.EfficientNetB0(
            include_top=False, weights=None, input_shape=shape
        )
        fmap = backbone(image)
        pooled = keras.layers.GlobalAveragePooling2D(name="pool")(fmap)
        regions = _regions(fmap, "efficientnetb0", return_regions)
    else:
        x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescaling")(
            image
        )
        backbone = keras_hub.models.ViTBackbone(
            image_shape=shape,
            patch_size=patch_size,
            num_layers=vit_num_layers,
            num_heads=vit_num_heads,
            hidden_dim=vit_hidden_dim,
            mlp_dim=vit_mlp_dim,
            dropout_rate=dropout,
            name="vit_backbone",
        )
        pooled, regions = ClassTokenSplit(name="class_token_split")(backbone(x))
    outputs = [pooled, regions] if return_regions else pooled
    return keras.Model(image, outputs, name=name)
