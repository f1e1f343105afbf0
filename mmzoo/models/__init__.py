"""Reference architectures; importing this package registers them all."""

from mmzoo.models import deepfm, vit_lstm_captioner  # noqa: F401
