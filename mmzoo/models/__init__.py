"""Reference architectures; importing this package registers them all."""

from mmzoo.models import deepfm  # noqa: F401
