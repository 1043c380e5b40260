"""Evaluation metrics of gloss-free SLT, as the gloss-free SLT literature computes them.

BLEU-n: corpus BLEU (uniform weights over 1..n-gram precisions, brevity penalty) x 100 via
sacrebleu ``BLEU(max_ngram_order=n)``. German/English/toy: lowercase, tokenize ``13a``;
Chinese: one token per character (spaces between characters), tokenize ``none``.
ROUGE-L: sentence-level LCS F-measure with beta=1.2 (coco-caption), averaged, x 100.
"""

from __future__ import annotations

from typing import Any

CHAR_LANGS = ("zh_CN", "ja_XX")


def char_split(s: str) -> str:
    """One token per character (whitespace dropped): "你好 吗" -> "你 好 吗"."""
    return " ".join(ch for ch in s if not ch.isspace())


def _prepare(hyps: list[str], refs: list[str], lang: str) -> tuple[list[str], list[str], dict[str, Any]]:
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} references")
    if lang in CHAR_LANGS:
        return [char_split(h) for h in hyps], [char_split(r) for r in refs], {"tokenize": "none", "lowercase": False}
    return list(hyps), list(refs), {"tokenize": "13a", "lowercase": True}


def bleu(hyps: list[str], refs: list[str], lang: str = "en_XX", max_order: int = 4) -> float:
    """Corpus BLEU-``max_order`` x 100 (sacrebleu)."""
    from sacrebleu.metrics import BLEU

    h, r, kw = _prepare(hyps, refs, lang)
    return float(BLEU(max_ngram_order=max_order, **kw).corpus_score(h, [r]).score)


def bleu_signature(lang: str = "en_XX", max_order: int = 4) -> str:
    """sacrebleu's signature for the BLEU settings used with ``lang``."""
    from sacrebleu.metrics import BLEU

    kw = _prepare([], [], lang)[2]
    b = BLEU(max_ngram_order=max_order, **kw)
    b.corpus_score(["a"], [["a"]])  # the signature needs one evaluation (number of references)
    return str(b.get_signature())


def lcs(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence of two token lists."""
    if not a or not b:
        return 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l_sentence(hyp: list[str], ref: list[str], beta: float = 1.2) -> float:
    """F = (1 + beta^2) P R / (R + beta^2 P), P = LCS/|hyp|, R = LCS/|ref| (0 if LCS = 0)."""
    m = lcs(hyp, ref)
    if m == 0:
        return 0.0
    p, r = m / len(hyp), m / len(ref)
    return (1 + beta**2) * p * r / (r + beta**2 * p)


def rouge_l(hyps: list[str], refs: list[str], lang: str = "en_XX", beta: float = 1.2) -> float:
    """Mean sentence ROUGE-L x 100 on whitespace tokens (lowercased; characters for Chinese)."""
    h, r, kw = _prepare(hyps, refs, lang)
    if kw["lowercase"]:
        h, r = [x.lower() for x in h], [x.lower() for x in r]
    if not h:
        return 0.0
    return 100.0 * sum(rouge_l_sentence(a.split(), b.split(), beta) for a, b in zip(h, r)) / len(h)


def translation_scores(hyps: list[str], refs: list[str], lang: str = "en_XX") -> dict[str, float]:
    """BLEU-1..4 and ROUGE-L, all x 100."""
    out = {f"bleu{n}": bleu(hyps, refs, lang, n) for n in range(1, 5)}
    out["rouge_l"] = rouge_l(hyps, refs, lang)
    return out
