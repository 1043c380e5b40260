"""An offline CLIP tokenizer: the Hugging Face ``CLIPTokenizer`` built in memory from the
BPE vocabulary file that open_clip ships inside its wheel, so nothing needs the hub.

The vocabulary is OpenAI CLIP's: the 256 byte-to-unicode characters, the same with ``</w>``,
the joined pairs of merge lines 1..48,894 of ``bpe_simple_vocab_16e6.txt.gz``, then
``<|startoftext|>`` (49406) and ``<|endoftext|>`` (49407): 49,408 entries.
"""

from __future__ import annotations

import gzip
from functools import lru_cache
from pathlib import Path

BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"
BOS_ID = 49406
EOS_ID = 49407
VOCAB_SIZE = 49408
_N_MERGES = 49152 - 256 - 2  # merge lines 1..48894 of the file (line 0 is a header)


def bpe_vocab_path() -> Path:
    """Path of ``bpe_simple_vocab_16e6.txt.gz`` inside the installed open_clip package."""
    import importlib.util

    spec = importlib.util.find_spec("open_clip")  # locate the package without importing it (slow)
    if spec is None or spec.origin is None:  # pragma: no cover
        raise ModuleNotFoundError("open-clip-torch is not installed; it ships CLIP's BPE vocabulary")
    p = Path(spec.origin).parent / "bpe_simple_vocab_16e6.txt.gz"
    if not p.is_file():  # pragma: no cover - a broken open_clip install
        from vislab.errors import InputError

        raise InputError(p, "open_clip's BPE vocabulary file is missing; reinstall open-clip-torch")
    return p


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2 / CLIP reversible byte -> printable unicode character table (256 entries)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars = keep[:]
    extra = 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(keep, (chr(c) for c in chars)))


@lru_cache(maxsize=1)
def _vocab_and_merges() -> tuple[dict[str, int], tuple[tuple[str, str], ...]]:
    lines = gzip.open(bpe_vocab_path()).read().decode("utf-8").split("\n")
    merges = tuple(tuple(line.split()) for line in lines[1 : _N_MERGES + 1])
    symbols = list(_bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + [BOS_TOKEN, EOS_TOKEN]
    vocab = {t: i for i, t in enumerate(tokens)}
    assert len(vocab) == VOCAB_SIZE, len(vocab)
    return vocab, merges  # type: ignore[return-value]


def clip_tokenizer(model_max_length: int = 77):
    """A fresh ``transformers.CLIPTokenizer`` with OpenAI CLIP's vocabulary, built offline.

    Ids equal open_clip's tokenizer (``<|startoftext|>`` = 49406, ``<|endoftext|>`` = 49407; padding
    uses ``<|endoftext|>`` as Hugging Face CLIP does, where open_clip pads with 0). Each call returns a
    new object, so adding placeholder tokens to one does not change another.
    ``save_pretrained`` / ``from_pretrained`` round-trip it.
    """
    from transformers import CLIPTokenizer

    vocab, merges = _vocab_and_merges()
    return CLIPTokenizer(vocab=dict(vocab), merges=list(merges), model_max_length=int(model_max_length))
