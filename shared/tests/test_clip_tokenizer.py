"""The offline CLIP tokenizer matches open_clip's ids and round-trips through save/load."""

from __future__ import annotations

import pytest
import torch
from vislab.clip import BOS_ID, EOS_ID, VOCAB_SIZE, clip_tokenizer

TEXTS = [
    "a photo of a red circle",
    "A Pink  checkered STAR, top-left!",
    "hello world's 123 café ü",
    "two blue squares and one green triangle at the bottom right",
    "x " * 40,  # longer than the context: truncated, still ends with EOS
    "",
]


@pytest.fixture(scope="module")
def tok():
    return clip_tokenizer(model_max_length=24)


def _hf_ids(tok, texts, n):
    return tok(texts, padding="max_length", truncation=True, max_length=n, return_tensors="pt").input_ids


def test_vocabulary_and_special_ids(tok):
    assert len(tok) == VOCAB_SIZE == 49408
    assert tok.bos_token_id == BOS_ID == 49406
    assert tok.eos_token_id == EOS_ID == 49407
    assert tok.pad_token_id == EOS_ID
    assert tok.model_max_length == 24


def test_ids_match_open_clip(tok):
    from open_clip.tokenizer import SimpleTokenizer

    ref = SimpleTokenizer(context_length=24)(TEXTS)
    ids = _hf_ids(tok, TEXTS, 24)
    assert ids.shape == ref.shape
    # open_clip pads with 0, Hugging Face with <|endoftext|>: compare up to and including the first EOS
    for row, r in zip(ids, ref):
        n = int((r == EOS_ID).nonzero()[0]) + 1
        assert row[:n].tolist() == r[:n].tolist()
        assert (row[n:] == EOS_ID).all()
    assert ids[4, -1] == EOS_ID and ids[4, 0] == BOS_ID
    # a word that is one token in CLIP's vocabulary
    assert tok("cat", add_special_tokens=False).input_ids == [2368]


def test_fresh_instances_are_independent():
    a, b = clip_tokenizer(), clip_tokenizer()
    a.add_tokens(["<my-concept>"])
    assert len(a) == VOCAB_SIZE + 1 and len(b) == VOCAB_SIZE
    assert a.model_max_length == 77


def test_save_pretrained_round_trip(tok, tmp_path):
    from transformers import CLIPTokenizer

    tok.save_pretrained(tmp_path)
    again = CLIPTokenizer.from_pretrained(tmp_path)
    assert again.model_max_length == 24 and len(again) == VOCAB_SIZE
    assert torch.equal(_hf_ids(again, TEXTS, 24), _hf_ids(tok, TEXTS, 24))
