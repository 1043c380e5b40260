"""The learned prompt ("incantation") and the frozen text-to-image model it steers.

Notation: p the user's text, P* = (v_1..v_K) in token-embedding space (K, W), inserted
after the text and before EOT: [BOS, t_1..t_n, v_1..v_K, EOT, pad...]. H(.) (L, D) are the text
encoder's last hidden states (UNet conditioning); g(.) the unit-normalised projected EOT feature of the
guidance CLIP; f(I) the unit-normalised CLIP image feature.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from vislab.errors import VislabError


def insert_slots(ids: torch.Tensor, n_text: int, slots: torch.Tensor, table: torch.Tensor, slot_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token embeddings and ids of ``p (+) P*``.

    ids (L,) the tokenised prompt (BOS, n_text tokens, EOT, pad); slots (K, W); table (V, W) the token
    embedding matrix; ``slot_id`` any id that is not EOT (it only marks the slot positions for pooling).
    Returns embeds (1, L, W) with rows 1+n_text .. n_text+K replaced by the slots, and the new ids (1, L):
    EOT moves after the slots and the padding after it keeps the tokenizer's own pad id (EOT for SD 1.x,
    "!" for SD 2.x), so ``p`` and ``p (+) P*`` differ only at the learned tokens.
    """
    L, K = ids.shape[0], slots.shape[0]
    if 1 + n_text + K + 1 > L:
        raise VislabError(f"prompt of {n_text} tokens plus {K} learned tokens does not fit {L} positions")
    new_ids = ids.clone()
    new_ids[1 + n_text : 1 + n_text + K] = slot_id
    new_ids[1 + n_text + K :] = ids[1 + n_text : L - K]  # EOT, then the original padding shifted by K
    embeds = table[new_ids]
    pos = torch.arange(L, device=ids.device)
    is_slot = ((pos >= 1 + n_text) & (pos < 1 + n_text + K))[:, None]
    padded = torch.zeros(L, slots.shape[1], dtype=slots.dtype, device=slots.device)
    padded[1 + n_text : 1 + n_text + K] = slots
    embeds = torch.where(is_slot, padded, embeds.to(slots.dtype))
    return embeds[None], new_ids[None]


def word_vocabulary(tokenizer, words: list[str] | None = None) -> list[int]:
    """Token ids the hard prompt may project onto: the single-token ``words`` given (the toy vocabulary),
    else every whole-word alphabetic token of the vocabulary ("abc</w>"), plus the neutral token "-"."""
    ids: set[int] = set()
    if words:
        for w in words:
            t = tokenizer(w, add_special_tokens=False).input_ids
            if len(t) == 1:
                ids.add(t[0])
    else:
        for tok, i in tokenizer.get_vocab().items():
            if tok.endswith("</w>") and re.fullmatch(r"[a-z]{2,}", tok[:-4]):
                ids.add(i)
    ids.add(neutral_id(tokenizer))
    return sorted(ids)


def neutral_id(tokenizer) -> int:
    """Id of the neutral token "-"."""
    return tokenizer("-", add_special_tokens=False).input_ids[0]


class IncantationPrompt(nn.Module):
    """K learnable prompt slots P (K, W), initialised at the neutral embedding e_- + N(0, 0.01^2).

    ``mode="hard"`` (PEZ): :meth:`slots` projects each row of P to its nearest allowed vocabulary
    embedding (cosine) and passes the gradient straight through to P; the prompt renders as text.
    ``mode="soft"``: the slots are P itself.
    """

    def __init__(self, table: torch.Tensor, vocab: list[int], neutral: int, k: int = 8, mode: str = "hard",
                 init_std: float = 0.01, init_ids: list[int] | None = None):
        super().__init__()
        if mode not in ("hard", "soft"):
            raise ValueError(f"mode must be hard or soft, got {mode!r}")
        self.mode, self.k, self.neutral = mode, k, neutral
        self.register_buffer("table", table.detach().float().clone(), persistent=False)
        self.register_buffer("vocab", torch.tensor(vocab, dtype=torch.long), persistent=False)
        init = self.table[neutral].expand(k, -1).clone() + init_std * torch.randn(k, table.shape[1], device=self.table.device)
        if init_ids:
            for j, i in enumerate(init_ids[:k]):
                init[j] = self.table[i]
        self.P = nn.Parameter(init)

    @property
    def e_neutral(self) -> torch.Tensor:
        return self.table[self.neutral]

    def _unit_candidates(self) -> torch.Tensor:
        """The allowed vocabulary rows, unit-normalised (|vocab|, W); the table is frozen, so computed once per device."""
        c = getattr(self, "_unit_cand_cache", None)
        if c is None or c.device != self.table.device:
            c = F.normalize(self.table[self.vocab], dim=-1)
            self._unit_cand_cache = c
        return c

    def project(self, P: torch.Tensor | None = None) -> torch.Tensor:
        """Nearest allowed vocabulary ids (K,) by cosine similarity."""
        P = self.P if P is None else P
        sim = F.normalize(P.detach(), dim=-1) @ self._unit_candidates().t()
        return self.vocab[sim.argmax(-1)]

    def slots(self) -> torch.Tensor:
        """The slot embeddings fed to the text encoder (K, W); gradients reach P in both modes."""
        if self.mode == "soft":
            return self.P
        proj = self.table[self.project()]
        return self.P + (proj - self.P).detach()

    def render(self, tokenizer, ids: torch.Tensor | None = None, keep_neutral: bool = False) -> str:
        """The projected tokens as text (hard mode); special tokens dropped, neutral "-" slots dropped unless
        ``keep_neutral`` (then the text tokenises back to exactly ``ids``)."""
        ids = self.project() if ids is None else ids
        keep = [int(i) for i in ids if (keep_neutral or int(i) != self.neutral) and int(i) not in tokenizer.all_special_ids]
        return tokenizer.decode(keep).strip()


@dataclass
class Frozen:
    """The frozen pieces: SD components (``vislab.diffusion.SDComponents``) and the guidance CLIP
    (``vislab.clip.ClipEncoder``; for SD v1 its text tower is SD's text encoder)."""

    sd: object
    clip: object
    _token_cache: dict = field(default_factory=dict, repr=False, compare=False)

    def tokenize(self, text: str) -> tuple[torch.Tensor, int]:
        """SD token ids (L,) of ``text`` and its number of text tokens (without BOS/EOT); cached per text."""
        tok = self.sd.tokenizer
        key = (text, len(tok))
        hit = self._token_cache.get(key)
        if hit is None:
            ids = tok(text, padding="max_length", truncation=True, max_length=tok.model_max_length, return_tensors="pt").input_ids[0]
            n = len(tok(text, add_special_tokens=False).input_ids)
            hit = self._token_cache[key] = (ids, min(n, ids.shape[0] - 2))
        ids, n = hit
        return ids.to(self.sd.device), n

    @property
    def table(self) -> torch.Tensor:
        return self.sd.text_encoder.get_input_embeddings().weight

    def embed(self, text: str, slots: torch.Tensor | None, slot_id: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(embeds (1, L, W), ids (1, L)) of ``text`` (+) ``slots`` (``slots=None``: the text alone)."""
        ids, n = self.tokenize(text)
        if slots is None:
            return self.table[ids][None], ids[None]
        return insert_slots(ids, n, slots, self.table, slot_id)

    def g(self, embeds: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Unit-normalised projected EOT feature (B, D) of the guidance CLIP."""
        return self.clip.encode_text_embeddings(embeds.to(self.clip.device), ids.to(self.clip.device), normalize=True)

    def g_text(self, texts: list[str]) -> torch.Tensor:
        return self.clip.encode_text(self.clip.tokenize(texts), normalize=True)

    def H(self, embeds: torch.Tensor) -> torch.Tensor:
        """UNet conditioning (B, L, D) from token embeddings."""
        return self.sd.encode_prompt_embeddings(embeds)

    def f(self, images: torch.Tensor) -> torch.Tensor:
        """Unit-normalised CLIP image features (B, D) of images in [0, 1]."""
        return self.clip.encode_image(self.clip.preprocess(images.to(self.clip.device)), normalize=True)
