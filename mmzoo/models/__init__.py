"""Reference architectures; importing this package registers them all."""

from mmzoo.models import deepfm, lstnet_diagnosis, vit_lstm_captioner  # noqa: F401
