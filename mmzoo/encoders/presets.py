"""Pretrained starting points: keras-hub presets for the encoders.

A preset is a keras-hub model folder (config, weights, tokenizer or image
converter), named by a Kaggle handle (`vit_base_patch16_224_imagenet`,
`bert_base_en_uncased`, `kaggle://keras/vit/keras/...`), a Hugging Face
handle (`hf://...`) or a local folder. `build_image_encoder(..., preset=)`
and `build_text_encoder("bert", ..., preset=)` start from one.

Handles need the network once (keras-hub caches the download); a local
folder does not. `save_tiny_preset` writes a tiny randomly initialised
preset folder, so tests and demos run offline with the same code path a
real handle takes:

```python
directory = save_tiny_preset("vit", "/tmp/tiny_vit", image_size=32)
encoder = build_image_encoder("vit", preset=directory, image_size=32)
```
"""

import os

import keras_hub

PRESET_KINDS = ("vit", "bert")
"""Kinds accepted by `save_tiny_preset`."""

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
"""WordPiece special tokens a BERT vocabulary needs; `[PAD]` is id 0."""

_LETTERS = "abcdefghijklmnopqrstuvwxyz0123456789"
_WORDS = (
    "the a of and no is in with left right upper lower lobe opacity "
    "effusion fever cough chest pain mild severe normal small large red "
    "blue green circle square triangle above below"
).split()

DEFAULT_VOCABULARY = list(
    dict.fromkeys(
        [*SPECIAL_TOKENS, *_WORDS, *_LETTERS]
        + [f"##{c}" for c in _LETTERS]
        + list(".,;:!?'\"()-/")
    )
)
"""A small lowercase WordPiece vocabulary: the special tokens, a few
words, and every letter and digit alone and as a `##` suffix, so any
lowercase ASCII text tokenizes without `[UNK]`."""


def _backbone_config(preset):
    """The preset's backbone config dict, or {} when it cannot be read."""
    # keras-hub has no public reader of a preset's config.json short of
    # building the backbone; the loader's JSON reader downloads only that
    # file for a handle.
    from keras_hub.src.utils.preset_utils import load_json

    try:
        config = load_json(preset)
    except (OSError, ValueError, KeyError):
        return {}
    return config.get("config", config)


def _fixed_size(shape):
    """Height of an `image_shape` like `(224, 224, 3)`; None if unknown."""
    if not shape or len(shape) != 3:
        return None
    height, width = shape[0], shape[1]
    if height is None or width is None or height != width:
        return None
    return int(height)


def preset_image_converter(preset):
    """The preset's `keras_hub.layers.ImageConverter`, or None.

    Args:
        preset: str. A keras-hub preset handle or local folder.

    Returns:
        The image converter layer, or None when the preset has none.
    """
    try:
        return keras_hub.layers.ImageConverter.from_preset(preset)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def preset_image_size(preset):
    """The square image size a keras-hub image preset expects.

    Read from the backbone config's `image_shape` when it is fixed (ViT),
    otherwise from the image converter's `image_size` (the resolution the
    weights were trained at, for backbones that take any size).

    Args:
        preset: str. A keras-hub preset handle or local folder.

    Returns:
        The image side in pixels, or None when the preset says nothing.

    Example:
    ```python
    preset_image_size("vit_base_patch16_224_imagenet")  # 224
    ```
    """
    config = _backbone_config(preset)
    size = _fixed_size(config.get("image_shape"))
    if size is not None:
        return size
    if isinstance(config.get("image_size"), int):  # Hugging Face configs.
        return config["image_size"]
    converter = preset_image_converter(preset)
    if converter is not None and converter.image_size:
        height, width = converter.image_size
        if height is not None and height == width:
            return int(height)
    return None


def _floats(value):
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return [float(v) for v in value]
    return float(value)


def preset_pixel_normalization(preset):
    """The `(scale, offset)` an image preset applies to 0..255 pixels.

    Read from the preset's image converter, else from the image converter
    inside its `preprocessor.json`; `(None, None)` (pixels unchanged) when
    the preset has neither.

    Args:
        preset: str. A keras-hub preset handle or local folder.

    Returns:
        A tuple `(scale, offset)`, each None, a float or a list of one
        float per channel, for `pixels * scale + offset`.
    """
    converter = preset_image_converter(preset)
    if converter is not None:
        return _floats(converter.scale), _floats(converter.offset)
    from keras_hub.src.utils.preset_utils import load_json

    try:
        config = load_json(preset, "preprocessor.json")["config"]
        config = config["image_converter"]["config"]
    except (OSError, ValueError, KeyError, TypeError):
        return None, None
    return _floats(config.get("scale")), _floats(config.get("offset"))


def _check_vocabulary(vocabulary):
    vocabulary = list(vocabulary)
    if not vocabulary or vocabulary[0] != "[PAD]":
        first = vocabulary[0] if vocabulary else None
        raise ValueError(
            "save_tiny_preset: vocabulary[0] must be '[PAD]' (token id 0 is "
            f"padding); received {first!r}"
        )
    missing = [token for token in SPECIAL_TOKENS if token not in vocabulary]
    if missing:
        raise ValueError(
            f"save_tiny_preset: vocabulary lacks {', '.join(missing)}; it "
            f"needs {', '.join(SPECIAL_TOKENS)}"
        )
    if len(set(vocabulary)) != len(vocabulary):
        raise ValueError("save_tiny_preset: vocabulary has repeated tokens")
    return vocabulary


def save_tiny_preset(
    kind,
    directory,
    image_size=32,
    patch_size=8,
    hidden_dim=16,
    num_layers=1,
    num_heads=2,
    mlp_dim=32,
    vocabulary=None,
    max_sequence_length=64,
):
    """Writes a tiny randomly initialised keras-hub preset to `directory`.

    For offline tests and demos: the folder loads with
    `keras_hub.models.Backbone.from_preset(directory)` and
    `build_image_encoder(..., preset=directory)` /
    `build_text_encoder("bert", ..., preset=directory)` exactly like a
    downloaded preset. Real work would instead name a pretrained handle
    such as `vit_base_patch16_224_imagenet` or `bert_base_en_uncased`.

    Args:
        kind: str. `"vit"` (a `ViTBackbone` and a `ViTImageConverter`
            mapping 0..255 pixels to -1..1, so
            `keras_hub.layers.ImageConverter.from_preset(directory)` works)
            or `"bert"` (a `BertBackbone` and a lowercasing
            `BertTokenizer`, for `keras_hub.tokenizers.Tokenizer.
            from_preset(directory)`).
        directory: str. Folder to write; created if missing.
        image_size: int. ViT input side. Defaults to `32`.
        patch_size: int. ViT patch side; divides `image_size`. Defaults to
            `8`.
        hidden_dim: int. Token width. Defaults to `16`.
        num_layers: int. Transformer blocks. Defaults to `1`.
        num_heads: int. Attention heads. Defaults to `2`.
        mlp_dim: int. Feed-forward width (BERT's `intermediate_dim`).
            Defaults to `32`.
        vocabulary: list of str. BERT WordPiece tokens, `[PAD]` first and
            `[UNK]`, `[CLS]`, `[SEP]`, `[MASK]` among them. Defaults to
            `DEFAULT_VOCABULARY`.
        max_sequence_length: int. BERT position embeddings. Defaults to
            `64`.

    Returns:
        `directory`, as a str.

    Raises:
        ValueError: for an unknown `kind` or a vocabulary without the
            special tokens.

    Example:
    ```python
    directory = save_tiny_preset("bert", str(tmp_path / "bert"))
    tokenizer = keras_hub.tokenizers.Tokenizer.from_preset(directory)
    ```
    """
    if kind not in PRESET_KINDS:
        raise ValueError(
            f"save_tiny_preset: unknown kind {kind!r}; valid: "
            f"{', '.join(PRESET_KINDS)}"
        )
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    if kind == "vit":
        size = int(image_size)
        backbone = keras_hub.models.ViTBackbone(
            image_shape=(size, size, 3),
            patch_size=int(patch_size),
            num_layers=int(num_layers),
            num_heads=int(num_heads),
            hidden_dim=int(hidden_dim),
            mlp_dim=int(mlp_dim),
        )
        converter = keras_hub.layers.ViTImageConverter(
            image_size=(size, size), scale=1.0 / 127.5, offset=-1.0
        )
        backbone.save_to_preset(directory)
        converter.save_to_preset(directory)
    else:
        vocabulary = _check_vocabulary(
            DEFAULT_VOCABULARY if vocabulary is None else vocabulary
        )
        backbone = keras_hub.models.BertBackbone(
            vocabulary_size=len(vocabulary),
            num_layers=int(num_layers),
            num_heads=int(num_heads),
            hidden_dim=int(hidden_dim),
            intermediate_dim=int(mlp_dim),
            max_sequence_length=int(max_sequence_length),
        )
        tokenizer = keras_hub.models.BertTokenizer(
            vocabulary=vocabulary, lowercase=True
        )
        backbone.save_to_preset(directory)
        tokenizer.save_to_preset(directory)
    return directory
