"""Losses of dual encoders over in-batch similarity logits.

Both read the `[B, B]` logits of `mmzoo.layers.ContrastiveLogits` (row i:
image i against every text of the batch) and the batch's item ids: pair
(i, j) is positive when image i and text j belong to the same item, so an
image that appears twice in a batch with two of its captions is not
pushed away from its own caption (several positives per row).

Reference:
    Radford et al., "Learning Transferable Visual Models From Natural
    Language Supervision" (CLIP), ICML 2021. https://arxiv.org/abs/2103.00020
    Zhai et al., "Sigmoid Loss for Language Image Pre-Training" (SigLIP),
    ICCV 2023. https://arxiv.org/abs/2303.15343
"""

import keras
from keras import ops

CONTRASTIVE_LOSSES = ("infonce", "siglip")
"""Loss names of `ContrastiveLoss` (`DualEncoderConfig.loss`)."""


def positive_pairs(item_ids):
    """float32 `[B, B]`: 1 where rows i and j share an item id."""
    ids = ops.reshape(ops.cast(item_ids, "int32"), (-1,))
    return ops.cast(ops.equal(ids[:, None], ids[None, :]), "float32")


@keras.saving.register_keras_serializable(package="mmzoo")
class ContrastiveLoss(keras.losses.Loss):
    """Symmetric InfoNCE (CLIP) or pairwise sigmoid (SigLIP) loss.

    `infonce`: each image ranks the batch's texts and each text the
    batch's images with a softmax; the loss of row i is
    `−log Σ_{j∈P(i)} softmax_j(l_ij)` (P(i) the positives of i; with one
    positive, CLIP's cross-entropy), averaged over the two directions.
    `siglip`: every pair is an independent binary decision, `−log σ(z_ij
    l_ij)` with `z_ij = ±1`, summed over the row's pairs, so that the
    batch mean is SigLIP's sum over pairs divided by the batch size.

    Args:
        kind: str. One of `CONTRASTIVE_LOSSES`. Defaults to `"infonce"`.
        name: str. Defaults to `"contrastive_loss"`.
        **kwargs: base `keras.losses.Loss` arguments.

    Call args:
        y_true: int `[B]` or `[B, 1]` item ids.
        y_pred: float `[B, B]` logits, images along rows, texts along
            columns.

    Returns:
        A scalar with the default `sum_over_batch_size` reduction.

    Example:
    ```python
    model.compile(loss={"logits": ContrastiveLoss("siglip")}, ...)
    ```
    """

    def __init__(self, kind="infonce", name="contrastive_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        if kind not in CONTRASTIVE_LOSSES:
            raise ValueError(
                f"ContrastiveLoss: unknown kind {kind!r}; valid: "
                f"{', '.join(CONTRASTIVE_LOSSES)}"
            )
        self.kind = kind

    def call(self, y_true, y_pred):
        logits = ops.cast(y_pred, "float32")
        positives = positive_pairs(y_true)
        if self.kind == "siglip":
            signs = 2.0 * positives - 1.0
            return -ops.sum(ops.log_sigmoid(signs * logits), axis=-1)
        # log Σ_{positives} exp − log Σ_{all} exp, per row and per column.
        masked = ops.where(positives > 0, logits, -1e9)
        image_to_text = ops.logsumexp(logits, axis=1) - ops.logsumexp(
            masked, axis=1
        )
        text_to_image = ops.logsumexp(logits, axis=0) - ops.logsumexp(
            masked, axis=0
        )
        return 0.5 * (image_to_text + text_to_image)

    def get_config(self):
        return {**super().get_config(), "kind": self.kind}
