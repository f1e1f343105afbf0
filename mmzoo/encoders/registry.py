"""Registries of image and text encoder kinds.

`IMAGE_ENCODERS` and `TEXT_ENCODERS` map a kind name to the function that
builds its layers; `build_image_encoder` / `build_text_encoder` look the
kind up there, so registering a function is all a new kind needs.
`tuple(IMAGE_ENCODERS)` lists the valid kinds in registration order.

An image builder is called as `builder(image, **options)` with `image` the
`float32 [B, S, S, 3]` raw-pixel `keras.Input` and `options` every keyword
argument of `build_image_encoder` but `kind` and `name`; it returns
`(pooled [B, D], regions [B, P, D])`, `regions` being None when
`options["return_regions"]` is False.

A text builder is called as `builder(token_ids, token_mask, **options)`
with `token_ids` the `int32 [B, T]` `keras.Input` (0 = padding),
`token_mask` its bool mask and `options` every keyword argument of
`build_text_encoder` but `kind` and `name`; it returns
`(pooled [B, D], sequence [B, T, D])`.

Builders take `**options` so that they keep working when options are added.
"""

IMAGE_ENCODERS = {}
"""Image encoder kinds: name -> builder (see the module docstring)."""

TEXT_ENCODERS = {}
"""Text encoder kinds: name -> builder (see the module docstring)."""


def _register(registry, what, name):
    if not isinstance(name, str) or not name:
        raise ValueError(
            f"register_{what}_encoder: name must be a non-empty str; "
            f"received {name!r}"
        )
    if name in registry:
        raise ValueError(
            f"register_{what}_encoder: {what} encoder {name!r} is already "
            f"registered; registered: {', '.join(registry)}"
        )

    def decorator(builder):
        registry[name] = builder
        return builder

    return decorator


def register_image_encoder(name):
    """Registers an image encoder builder under `name`.

    Args:
        name: str. The kind name (`build_image_encoder(name, ...)`,
            `config.image_encoder`). Registering a name twice raises.

    Returns:
        A decorator that records the builder and returns it unchanged.

    Example:
    ```python
    @register_image_encoder("tiny_cnn")
    def tiny_cnn(image, return_regions=True, **options):
        fmap = keras.layers.Conv2D(8, 3, strides=4)(image / 255.0)
        pooled = keras.layers.GlobalAveragePooling2D()(fmap)
        regions = keras.layers.Reshape((-1, 8))(fmap)
        return pooled, regions if return_regions else None
    ```
    """
    return _register(IMAGE_ENCODERS, "image", name)


def register_text_encoder(name):
    """Registers a text encoder builder under `name`.

    Args:
        name: str. The kind name (`build_text_encoder(name, ...)`,
            `config.text_encoder`). Registering a name twice raises.

    Returns:
        A decorator that records the builder and returns it unchanged.

    Example:
    ```python
    @register_text_encoder("gru")
    def gru(token_ids, token_mask, vocabulary_size, embedding_dim,
            units, **options):
        x = keras.layers.Embedding(
            vocabulary_size, embedding_dim, mask_zero=True)(token_ids)
        sequence, pooled = keras.layers.GRU(
            units, return_sequences=True, return_state=True)(x)
        return pooled, sequence
    ```
    """
    return _register(TEXT_ENCODERS, "text", name)
