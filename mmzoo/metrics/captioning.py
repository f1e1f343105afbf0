"""Caption metrics as the COCO caption evaluation computes them.

BLEU-1..4, ROUGE-L and CIDEr-D are reimplemented here in pure Python,
following `pycocoevalcap` line for line (corpus-level BLEU with the
"closest" reference length; ROUGE-L F-measure with beta 1.2; CIDEr-D with
sigma 6, clipped counts and the x10 scale), so they work without Java and
give the numbers papers report. A test checks them against `pycocoevalcap`.
METEOR needs `pycocoevalcap` and Java; it is reported only when both exist.

Captions are compared as lists of tokens; `mmzoo.data.text.tokenize_py`
is the tokenizer used by the captioning task (lowercase, punctuation
removed), which stands in for COCO's PTB tokenizer.
"""

import atexit
import collections
import math
import threading

import numpy as np


def _ngrams(tokens, n):
    return collections.Counter(
        tuple(tokens[i : i + k])
        for k in range(1, n + 1)
        for i in range(len(tokens) - k + 1)
    )


def bleu(hypotheses, references, n=4):
    """Corpus BLEU-1..n as `pycocoevalcap.bleu.Bleu` computes it.

    Args:
        hypotheses: list of token lists, one per image.
        references: list of lists of token lists (several per image).
        n: int. Highest n-gram order. Defaults to 4.

    Returns:
        list of n floats: BLEU-1 .. BLEU-n.
    """
    tiny, small = 1e-15, 1e-9
    guess = [0] * n
    correct = [0] * n
    test_len = ref_len = 0
    for hyp, refs in zip(hypotheses, references, strict=True):
        max_counts = collections.Counter()
        for ref in refs:
            for gram, count in _ngrams(ref, n).items():
                max_counts[gram] = max(max_counts[gram], count)
        lengths = [len(ref) for ref in refs]
        test_len += len(hyp)
        ref_len += min((abs(length - len(hyp)), length) for length in lengths)[
            1
        ]
        for gram, count in _ngrams(hyp, n).items():
            correct[len(gram) - 1] += min(max_counts.get(gram, 0), count)
        for k in range(n):
            guess[k] += max(0, len(hyp) - k)
    scores, product = [], 1.0
    for k in range(n):
        product *= (correct[k] + tiny) / (guess[k] + small)
        scores.append(product ** (1.0 / (k + 1)))
    ratio = (test_len + tiny) / (ref_len + small)
    if ratio < 1:
        scores = [s * math.exp(1 - 1 / ratio) for s in scores]
    return scores


def _lcs(a, b):
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a, 1):
        for j, y in enumerate(b, 1):
            table[i][j] = (
                table[i - 1][j - 1] + 1
                if x == y
                else max(table[i - 1][j], table[i][j - 1])
            )
    return table[-1][-1]


def rouge_l(hypotheses, references, beta=1.2):
    """Mean ROUGE-L F-measure as `pycocoevalcap.rouge.Rouge` computes it."""
    scores = []
    for hyp, refs in zip(hypotheses, references, strict=True):
        if not hyp:
            scores.append(0.0)
            continue
        precisions, recalls = [], []
        for ref in refs:
            lcs = _lcs(ref, hyp)
            precisions.append(lcs / len(hyp))
            recalls.append(lcs / max(len(ref), 1))
        p, r = max(precisions), max(recalls)
        if p != 0 and r != 0:
            scores.append(((1 + beta**2) * p * r) / (r + beta**2 * p))
        else:
            scores.append(0.0)
    return float(np.mean(scores))


def cider_d(hypotheses, references, n=4, sigma=6.0):
    """Corpus CIDEr-D as `pycocoevalcap.cider.Cider` computes it.

    Document frequencies come from the references of the evaluated set, as
    in the COCO evaluation.
    """
    ref_counts = [[_ngrams(r, n) for r in refs] for refs in references]
    document_frequency = collections.Counter()
    for counts in ref_counts:
        for gram in {g for c in counts for g in c}:
            document_frequency[gram] += 1
    log_num_images = math.log(float(len(references)))

    def to_vector(counts):
        vector = [{} for _ in range(n)]
        norm = [0.0] * n
        length = 0
        for gram, tf in counts.items():
            df = math.log(max(1.0, document_frequency[gram]))
            k = len(gram) - 1
            vector[k][gram] = tf * (log_num_images - df)
            norm[k] += vector[k][gram] ** 2
            if k == 1:  # pycocoevalcap counts bigrams as the length
                length += tf
        return vector, [math.sqrt(x) for x in norm], length

    def similarity(hyp, ref):
        (vh, nh, lh), (vr, nr, lr) = hyp, ref
        delta = float(lh - lr)
        values = np.zeros(n)
        for k in range(n):
            for gram in vh[k]:
                values[k] += min(vh[k][gram], vr[k].get(gram, 0.0)) * vr[k].get(
                    gram, 0.0
                )
            if nh[k] != 0 and nr[k] != 0:
                values[k] /= nh[k] * nr[k]
            values[k] *= math.e ** (-(delta**2) / (2 * sigma**2))
        return values

    scores = []
    for hyp, counts in zip(hypotheses, ref_counts, strict=True):
        vec_hyp = to_vector(_ngrams(hyp, n))
        total = np.zeros(n)
        for ref in counts:
            total += similarity(vec_hyp, to_vector(ref))
        score = np.mean(total) / len(counts) * 10.0
        scores.append(score)
    return float(np.mean(scores))


_meteor_lock = threading.Lock()
_meteor_scorer = None


def _close_meteor(scorer):
    scorer.meteor_p.stdin.close()
    scorer.meteor_p.kill()
    scorer.meteor_p.wait()


def _meteor_process():
    """The process's one METEOR scorer (a Java process), started on first
    use and kept: starting it loads METEOR's paraphrase tables, about 11 s
    and 1.2 GB resident, which every evaluation (val, then test, ...) would
    otherwise pay again. Closed when Python exits."""
    global _meteor_scorer
    with _meteor_lock:
        if _meteor_scorer is None or _meteor_scorer.meteor_p.poll() is not None:
            from pycocoevalcap.meteor.meteor import Meteor

            _meteor_scorer = Meteor()
            atexit.register(_close_meteor, _meteor_scorer)
        return _meteor_scorer


def meteor(hypotheses, references):
    """METEOR via `pycocoevalcap` (needs Java); None when unavailable."""
    global _meteor_scorer
    try:
        scorer = _meteor_process()
    except Exception:  # no pycocoevalcap, or no Java to run its jar
        return None
    gts = {i: [" ".join(r) for r in refs] for i, refs in enumerate(references)}
    res = {i: [" ".join(h)] for i, h in enumerate(hypotheses)}
    try:
        score, _ = scorer.compute_score(gts, res)
    except Exception:
        # A dead or confused Java process: the next call starts a new one.
        with _meteor_lock:
            if _meteor_scorer is scorer:
                _meteor_scorer = None
        _close_meteor(scorer)
        raise
    return float(score)


def caption_metrics(hypotheses, references, with_meteor=True):
    """BLEU-1..4, ROUGE-L, CIDEr(-D) and, if available, METEOR.

    Args:
        hypotheses: list of token lists.
        references: list of lists of token lists.
        with_meteor: bool. Try METEOR (starts a Java process).

    Returns:
        dict of metric name to float.
    """
    if len(hypotheses) != len(references) or not hypotheses:
        raise ValueError(
            f"caption_metrics: got {len(hypotheses)} hypotheses for "
            f"{len(references)} reference sets; need the same, non-zero count"
        )
    scores = bleu(hypotheses, references)
    results = {f"bleu_{k + 1}": float(s) for k, s in enumerate(scores)}
    results["rouge_l"] = rouge_l(hypotheses, references)
    results["cider"] = cider_d(hypotheses, references)
    if with_meteor:
        value = meteor(hypotheses, references)
        if value is not None:
            results["meteor"] = value
    return results
