import random
import shutil

import pytest

from mmzoo.metrics import captioning

WORDS = "a the red blue green circle square left right of and small big".split()


def _corpus(seed, size=40):
    rng = random.Random(seed)

    def sentence():
        return [rng.choice(WORDS) for _ in range(rng.randint(3, 10))]

    hyps = [sentence() for _ in range(size)]
    refs = [[sentence() for _ in range(rng.randint(1, 5))] for _ in range(size)]
    # Some exact and partial matches, so every n-gram order scores.
    for i in range(0, size, 3):
        hyps[i] = list(refs[i][0])
    return hyps, refs


def _coco(hyps, refs):
    pytest.importorskip("pycocoevalcap")
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    gts = {i: [" ".join(r) for r in rs] for i, rs in enumerate(refs)}
    res = {i: [" ".join(h)] for i, h in enumerate(hyps)}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    rouge, _ = Rouge().compute_score(gts, res)
    cider, _ = Cider().compute_score(gts, res)
    return bleu, rouge, cider


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_pycocoevalcap(seed):
    hyps, refs = _corpus(seed)
    bleu, rouge, cider = _coco(hyps, refs)
    ours = captioning.caption_metrics(hyps, refs, with_meteor=False)
    for k in range(4):
        assert ours[f"bleu_{k + 1}"] == pytest.approx(bleu[k], abs=1e-9)
    assert ours["rouge_l"] == pytest.approx(rouge, abs=1e-9)
    assert ours["cider"] == pytest.approx(cider, abs=1e-6)


def test_perfect_and_empty_captions():
    refs = [[["a", "red", "circle", "left", "of", "a", "square"]]] * 2 + [
        [["a", "blue", "square", "on", "the", "right"]]
    ]
    perfect = [r[0] for r in refs]
    scores = captioning.caption_metrics(perfect, refs, with_meteor=False)
    assert scores["bleu_4"] == pytest.approx(1.0)
    assert scores["rouge_l"] == pytest.approx(1.0)
    empty = captioning.caption_metrics([[]] * 3, refs, with_meteor=False)
    assert empty["bleu_1"] < 1e-6 and empty["rouge_l"] == 0.0


def test_mismatched_lengths_raise():
    with pytest.raises(ValueError, match="2 hypotheses for 1"):
        captioning.caption_metrics([["a"], ["b"]], [[["a"]]])


@pytest.mark.skipif(shutil.which("java") is None, reason="METEOR needs Java")
def test_meteor_scores_with_one_java_process_per_python_process():
    refs = [[["a", "red", "ball", "on", "grass"]], [["two", "dogs"]]]
    exact = captioning.meteor([r[0] for r in refs], refs)
    worse = captioning.meteor([["a", "ball"], ["two", "cats"]], refs)
    assert exact > 0.9 and 0.0 < worse < exact
    first = captioning._meteor_process()
    captioning.meteor([["a", "ball"], ["two", "dogs"]], refs)
    assert captioning._meteor_process() is first  # started once, reused
    # A Java process that died is replaced, not written to.
    first.meteor_p.kill()
    first.meteor_p.wait()
    assert captioning.meteor([r[0] for r in refs], refs) == exact
    assert captioning._meteor_process() is not first
