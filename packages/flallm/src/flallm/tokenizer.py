"""The text side: one tokenizer class for the toy word-level vocabulary and for (trimmed) mBART.

Targets follow the mBART-cc25 convention (as GFSLT-VLP uses it): labels are
``w_1 .. w_L </s> LANG`` and the decoder starts from ``LANG`` (shift-right), so the
decoder input is ``LANG w_1 .. w_L </s>``. A trimmed mBART (``flallm trim``) keeps the
original sentencepiece tokenizer and a list ``kept_ids`` (new id -> old id) beside the
sliced model; this class maps old ids to new ones on encode and back on decode (the
GFSLT-VLP tooling does the same with its id map).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from vislab.errors import InputError

#: The 25 language codes of mBART-cc25, in the tokenizer's order.
MBART_CC25_LANGS = (
    "ar_AR", "cs_CZ", "de_DE", "en_XX", "es_XX", "et_EE", "fi_FI", "fr_XX", "gu_IN", "hi_IN", "it_IT", "ja_XX",
    "kk_KZ", "ko_KR", "lt_LT", "lv_LV", "my_MM", "ne_NP", "nl_XX", "ro_RO", "ru_RU", "si_LK", "tr_TR", "vi_VN", "zh_CN",
)
#: Target language of each dataset.
DATASET_LANG = {"phoenix14t": "de_DE", "gfslt": "de_DE", "csl_daily": "zh_CN", "how2sign": "en_XX"}
SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")
TRIM_FILE = "flallm_trim.json"


class SignTokenizer:
    """Encode target sentences to ``labels`` and decode generated ids, mBART-style.

    ``backend`` is a ``tokenizers.Tokenizer`` (word-level for the toy, the mBART
    sentencepiece-unigram one for real data); ``kept_ids`` (optional) is the trimming map
    (model id -> backend id).
    """

    def __init__(self, backend: Any, lang: str, kept_ids: list[int] | None = None):
        from tokenizers.processors import TemplateProcessing  # noqa: F401 - import check

        self.backend = backend
        self.backend.no_padding()
        self.backend.no_truncation()
        self.backend.post_processor = None
        self.lang = lang
        ids = {t: backend.token_to_id(t) for t in (*SPECIALS, lang)}
        missing = [t for t, i in ids.items() if i is None]
        if missing:
            raise InputError("tokenizer", f"tokens {missing} are not in the vocabulary (wrong language code?)")
        self.kept_ids = list(kept_ids) if kept_ids is not None else None
        self._old2new = {o: n for n, o in enumerate(self.kept_ids)} if self.kept_ids is not None else None
        self.bos_id, self.pad_id, self.eos_id, self.unk_id = (self._to_model(ids[t]) for t in SPECIALS)
        self.lang_id = self._to_model(ids[lang])
        self.special_ids = {self.bos_id, self.pad_id, self.eos_id, self.lang_id}
        for code in MBART_CC25_LANGS:
            j = backend.token_to_id(code)
            if j is not None and (self._old2new is None or j in self._old2new):
                self.special_ids.add(self._to_model(j))

    # -- id maps -------------------------------------------------------------------------
    def _to_model(self, old: int) -> int:
        if self._old2new is None:
            return old
        return self._old2new.get(old, self._old2new[self.backend.token_to_id("<unk>")])

    def _to_backend(self, new: int) -> int:
        return new if self.kept_ids is None else self.kept_ids[new]

    @property
    def vocab_size(self) -> int:
        """Number of model ids (trimmed size when trimmed)."""
        return len(self.kept_ids) if self.kept_ids is not None else self.backend.get_vocab_size(with_added_tokens=True)

    # -- encode / decode -----------------------------------------------------------------
    def ids(self, text: str) -> list[int]:
        """Model ids of ``text`` without specials."""
        return [self._to_model(i) for i in self.backend.encode(text, add_special_tokens=False).ids]

    def encode_targets(self, texts: list[str], max_len: int | None = None) -> torch.Tensor:
        """``labels`` (B, L) long: ``w_1..w_L </s> LANG`` padded with ``pad_id``.

        A sentence longer than ``max_len`` tokens is cut before ``</s> LANG``.
        """
        rows = []
        for t in texts:
            ids = self.ids(t)
            if max_len is not None:
                ids = ids[: max(0, max_len - 2)]
            rows.append(ids + [self.eos_id, self.lang_id])
        L = max(len(r) for r in rows)
        out = torch.full((len(rows), L), self.pad_id, dtype=torch.long)
        for i, r in enumerate(rows):
            out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        return out

    def shift_right(self, labels: torch.Tensor) -> torch.Tensor:
        """mBART's shift: the last non-pad token (LANG) wraps round to position 0.

        ``w_1..w_L </s> LANG <pad>`` -> ``LANG w_1..w_L </s> <pad>``.
        """
        x = labels.clone()
        x = torch.where(x == -100, torch.full_like(x, self.pad_id), x)
        last = (x.ne(self.pad_id).sum(1) - 1).clamp(min=0)
        start = x.gather(1, last[:, None]).squeeze(1)
        out = torch.empty_like(x)
        out[:, 1:] = x[:, :-1]
        out[:, 0] = start
        return out

    def decode(self, ids: torch.Tensor | list[list[int]]) -> list[str]:
        """Sentences from generated ids (special tokens and language codes dropped)."""
        rows = ids.tolist() if isinstance(ids, torch.Tensor) else ids
        out = []
        for r in rows:
            keep = []
            for i in r:
                if i == self.eos_id:
                    if keep:
                        break
                    continue
                if i in self.special_ids:
                    continue
                keep.append(self._to_backend(int(i)))
            out.append(self.backend.decode(keep, skip_special_tokens=True).strip())
        return out

    def normalize(self, texts: list[str]) -> list[str]:
        """References as the model can write them: encoded to ids and decoded back, so the tokenizer's
        normalisation (e.g. mBART's NFKC: full-width "，" -> ","; whitespace) applies to references and
        hypotheses alike, as GFSLT-VLP's evaluation decodes its references from the target ids."""
        return self.decode([self.ids(t) for t in texts])

    def unknown(self, text: str) -> list[str]:
        """The pieces of ``text`` that the tokenizer maps to ``<unk>`` (empty when it covers the text)."""
        enc = self.backend.encode(text, add_special_tokens=False)
        unk = self.backend.token_to_id("<unk>")
        return [text[a:b] or tok for i, tok, (a, b) in zip(enc.ids, enc.tokens, enc.offsets) if i == unk]

    # -- (de)serialisation ---------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Everything needed to rebuild this tokenizer (stored inside checkpoints)."""
        return {"backend": self.backend.to_str(), "lang": self.lang, "kept_ids": self.kept_ids}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> SignTokenizer:
        from tokenizers import Tokenizer

        return cls(Tokenizer.from_str(state["backend"]), state["lang"], state.get("kept_ids"))

    @classmethod
    def build_word_level(cls, sentences: list[str], lang: str = "xx_XX") -> SignTokenizer:
        """A word-level tokenizer of the train sentences (the synthetic world), built offline.

        Ids: ``<s>=0 <pad>=1 </s>=2 <unk>=3``, then the words (sorted), then ``lang``.
        """
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers

        words = sorted({w for s in sentences for w in s.split()})
        vocab = {t: i for i, t in enumerate(SPECIALS)}
        for w in words:
            vocab.setdefault(w, len(vocab))
        vocab[lang] = len(vocab)
        tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with spaces
        tok.add_special_tokens([*SPECIALS, lang])
        return cls(tok, lang)

    @classmethod
    def from_dir(cls, path: str | Path, lang: str) -> SignTokenizer:
        """The tokenizer of a local (possibly trimmed) mBART folder: ``tokenizer.json`` or the
        sentencepiece model (converted by transformers), plus ``flallm_trim.json`` if trimmed."""
        from tokenizers import Tokenizer

        d = Path(path).expanduser()
        if not d.is_dir():
            raise InputError(d, "tokenizer folder not found")
        tj = d / "tokenizer.json"
        try:
            if tj.is_file():
                backend = Tokenizer.from_file(str(tj))
            else:
                from transformers import AutoTokenizer

                backend = AutoTokenizer.from_pretrained(str(d), local_files_only=True).backend_tokenizer
                _add_sentencepiece_normalizer(backend, d)
        except InputError:
            raise
        except Exception as e:  # noqa: BLE001 - any failure means an unusable folder
            raise InputError(d, f"cannot load a tokenizer ({e.__class__.__name__}: {str(e)[:160]})") from None
        kept = None
        if (d / TRIM_FILE).is_file():
            try:
                kept = json.loads((d / TRIM_FILE).read_text())["kept_ids"]
            except Exception as e:  # noqa: BLE001
                raise InputError(d / TRIM_FILE, f"malformed trim map ({e})") from None
        return cls(backend, lang, kept)


def _add_sentencepiece_normalizer(backend: Any, folder: Path) -> None:
    """Give a tokenizer converted from ``sentencepiece.bpe.model`` the model's own normaliser.

    transformers converts mBART's sentencepiece model without its NFKC character map, so full-width
    punctuation ("，", "？"), common in Chinese text, becomes ``<unk>``. mBART-cc25's ``tokenizer.json``
    applies the map (``Precompiled``) and collapses repeated spaces; do the same here.
    """
    from tokenizers import normalizers

    if backend.normalizer is not None:
        return
    models = sorted(folder.glob("*.model"))
    if not models:
        return
    try:
        from sentencepiece import sentencepiece_model_pb2

        proto = sentencepiece_model_pb2.ModelProto()
        proto.ParseFromString(models[0].read_bytes())
        charsmap = proto.normalizer_spec.precompiled_charsmap
    except Exception as e:  # noqa: BLE001 - a broken model file
        raise InputError(models[0], f"not a sentencepiece model ({e.__class__.__name__})") from None
    if charsmap:
        backend.normalizer = normalizers.Sequence([normalizers.Precompiled(charsmap), normalizers.Replace(" {2,}", " ")])
