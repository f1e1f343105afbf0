"""Retrieval metrics over a whole split: recall@K both ways, median rank.

The protocol of image-text retrieval on Flickr8k/30k and COCO (Karpathy and
Fei-Fei 2015; Faghri et al. 2018): every image of the split ranks every
caption of the split and every caption ranks every image. An image has
several positive captions: image→text is a hit at K when any of its
captions is among its top K; text→image when the caption's own image is.
Ranks are 1-based (1 = the first result); ties count against the query
(a positive tied with a negative ranks after it), so a constant model gets
no credit.
"""

import numpy as np

RECALL_AT = (1, 5, 10)


def _ranks(scores, positives):
    """1-based rank of each row's best-scored positive.

    Args:
        scores: float `[Q, C]`.
        positives: bool `[Q, C]`, at least one True per row.

    Returns:
        int64 `[Q]`.
    """
    best = np.where(positives, scores, -np.inf).max(axis=1)
    # Candidates scored at least as high as the best positive, negatives
    # only: ties rank the positive last.
    ahead = ((scores >= best[:, None]) & ~positives).sum(axis=1)
    return ahead.astype(np.int64) + 1


def retrieval_ranks(image_embeddings, text_embeddings, text_to_image):
    """Ranks of both directions.

    Args:
        image_embeddings: float `[I, D]` (unit rows for cosine scores).
        text_embeddings: float `[T, D]`.
        text_to_image: int `[T]`. Index of each caption's image.

    Returns:
        `(image_to_text [I], text_to_image [T])` int64 ranks.

    Raises:
        ValueError: shapes disagree, or an image has no caption.
    """
    images = np.asarray(image_embeddings, np.float32)
    texts = np.asarray(text_embeddings, np.float32)
    owner = np.asarray(text_to_image, np.int64)
    if images.ndim != 2 or texts.ndim != 2 or images.shape[1] != texts.shape[1]:
        raise ValueError(
            f"retrieval_ranks: embeddings of shapes {images.shape} and "
            f"{texts.shape}; need [I, D] and [T, D]"
        )
    if owner.shape != (len(texts),):
        raise ValueError(
            f"retrieval_ranks: text_to_image has shape {owner.shape}; need "
            f"({len(texts)},), one image index per caption"
        )
    if len(owner) and (owner.min() < 0 or owner.max() >= len(images)):
        raise ValueError(
            f"retrieval_ranks: text_to_image holds indices outside 0.."
            f"{len(images) - 1}"
        )
    positives = owner[None, :] == np.arange(len(images))[:, None]  # [I, T]
    without = np.flatnonzero(~positives.any(axis=1))
    if len(without):
        raise ValueError(
            f"retrieval_ranks: {len(without)} image(s) have no caption, e.g. "
            f"image {int(without[0])}"
        )
    scores = images @ texts.T
    return _ranks(scores, positives), _ranks(scores.T, positives.T)


def retrieval_metrics(image_embeddings, text_embeddings, text_to_image):
    """Recall@1/5/10 both ways and median ranks.

    Args:
        image_embeddings: float `[I, D]`.
        text_embeddings: float `[T, D]`.
        text_to_image: int `[T]`. Index of each caption's image.

    Returns:
        dict of float: `image_to_text_recall@K`, `text_to_image_recall@K`
        for K in 1, 5, 10; `image_to_text_median_rank`,
        `text_to_image_median_rank`; `median_rank`, the text→image one
        (the image search a client asks for); `chance_recall@5`, the
        text→image recall@5 of a random ranking (5 / I).

    Example:
    >>> retrieval_metrics(np.eye(2), np.eye(2), [0, 1])["median_rank"]
    1.0
    """
    i2t, t2i = retrieval_ranks(image_embeddings, text_embeddings, text_to_image)
    out = {}
    for name, ranks in (("image_to_text", i2t), ("text_to_image", t2i)):
        for k in RECALL_AT:
            out[f"{name}_recall@{k}"] = float(np.mean(ranks <= k))
        out[f"{name}_median_rank"] = float(np.median(ranks))
    out["median_rank"] = out["text_to_image_median_rank"]
    out["chance_recall@5"] = min(1.0, 5 / len(i2t))
    return out
