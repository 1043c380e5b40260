"""Metrics and the loss on small fixed inputs, against hand computations."""

import math

import pytest
import torch
from flallm.losses import generation_loss
from flallm.metrics import bleu, char_split, lcs, rouge_l, rouge_l_sentence, translation_scores


def test_bleu_by_hand():
    h, r = ["a b c d"], ["a b c e"]
    # precisions 3/4, 2/3, 1/2; same length -> BP = 1
    assert bleu(h, r, max_order=1) == pytest.approx(75.0, abs=1e-6)
    assert bleu(h, r, max_order=2) == pytest.approx(100 * math.sqrt(3 / 4 * 2 / 3), abs=1e-6)
    assert bleu(h, r, max_order=3) == pytest.approx(100 * (3 / 4 * 2 / 3 * 1 / 2) ** (1 / 3), abs=1e-6)
    assert bleu(["x y z w"], ["x y z w"], max_order=4) == pytest.approx(100.0)


def test_bleu_brevity_penalty_and_corpus_level():
    # hyp 3 tokens, ref 4 tokens: BP = exp(1 - 4/3); all unigrams match
    assert bleu(["a b c"], ["a b c d"], max_order=1) == pytest.approx(100 * math.exp(1 - 4 / 3), abs=1e-6)
    # corpus level: counts are pooled: (2 + 1) / (2 + 2) unigrams, lengths 4 vs 4
    assert bleu(["a b", "c x"], ["a b", "c d"], max_order=1) == pytest.approx(75.0, abs=1e-6)


def test_bleu_lowercase_and_chinese_characters():
    assert bleu(["The Cat sat"], ["the cat sat"], "de_DE", max_order=3) == pytest.approx(100.0)
    assert char_split("你好 吗") == "你 好 吗"
    # per character: 2 of 3 match, same length
    assert bleu(["你好吗"], ["你 好 呢"], "zh_CN", max_order=1) == pytest.approx(100 * 2 / 3, abs=1e-6)
    # word-level would see one token each and score 0
    assert bleu(["你好吗"], ["你好呢"], "en_XX", max_order=1) == pytest.approx(0.0)


def test_rouge_l_by_hand():
    assert lcs("a b c d".split(), "a c d e f".split()) == 3
    p, r = 3 / 4, 3 / 5
    f = (1 + 1.2**2) * p * r / (r + 1.2**2 * p)
    assert rouge_l_sentence("a b c d".split(), "a c d e f".split()) == pytest.approx(f)
    assert rouge_l(["a b c d", "x"], ["a c d e f", "y"]) == pytest.approx(100 * f / 2)
    assert rouge_l(["A B"], ["a b"]) == pytest.approx(100.0)
    s = translation_scores(["a b c d"], ["a b c e"])
    assert set(s) == {"bleu1", "bleu2", "bleu3", "bleu4", "rouge_l"}


def test_label_smoothed_loss_by_hand():
    logits = torch.tensor([[[2.0, 0.0, -1.0], [0.5, 0.5, 0.5], [1.0, 3.0, 0.0]]])
    labels = torch.tensor([[0, 1, 2]])
    pad = 1
    eps = 0.2
    logp = torch.log_softmax(logits, -1)[0]
    terms = []
    for i in (0, 2):
        y = int(labels[0, i])
        terms.append(-(1 - eps) * logp[i, y] - eps / 3 * logp[i].sum())
    expected = sum(terms) / 2
    assert generation_loss(logits, labels, pad, eps).item() == pytest.approx(expected.item(), rel=1e-6)
    # no smoothing = plain CE over non-pad tokens
    ce = -(logp[0, 0] + logp[2, 2]) / 2
    assert generation_loss(logits, labels, pad, 0.0).item() == pytest.approx(ce.item(), rel=1e-6)
