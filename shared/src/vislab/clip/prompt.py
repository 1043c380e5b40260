"""CoOp's prompt learner (Zhou et al., "Learning to Prompt for Vision-Language Models", IJCV 2022).

Learnable context vectors ``[V]_1 .. [V]_M`` replace placeholder tokens in ``"X X .. X {class}."``;
the sequence runs through the frozen CLIP text transformer and the text feature is pooled at EOS.
Only the context vectors receive gradients. Choices follow the official CoOp code: random context
initialised N(0, 0.02); ``ctx_init`` words set both the length and the initial vectors; class-specific
contexts (``csc``) and class-token position "end" / "middle" / "front".
"""

from __future__ import annotations

import torch
from torch import nn

from vislab.clip.encoder import ClipEncoder
from vislab.devices import FollowsDevice
from vislab.errors import VislabError
from vislab.runtime import full_precision


class PromptLearner(FollowsDevice, nn.Module):
    """CoOp context vectors for ``classnames`` on a frozen :class:`ClipEncoder`.

    ``forward()`` -> text features (n_cls, D); ``forward(ctx_shift)`` with ``ctx_shift`` (B, Wt) adds a
    per-sample shift to every context vector (CoCoOp's meta-token) -> (B, n_cls, D).
    The CLIP is *not* registered as a submodule (``state_dict`` holds only the prompt learner), but it
    follows the learner's device (``to``/``cuda``/``cpu``). Its weights are frozen here. Under mixed
    precision the text tower runs in fp32, as CoOp does (fp16 prompt gradients overflow).
    """

    def __init__(self, clip: ClipEncoder, classnames: list[str], n_ctx: int = 4, ctx_init: str | None = None,
                 csc: bool = False, position: str = "end", init_std: float = 0.02):
        super().__init__()
        if not classnames:
            raise VislabError("PromptLearner needs at least one class name")
        if position not in ("end", "middle", "front"):
            raise ValueError(f"position must be 'end', 'middle' or 'front', not {position!r}")
        clip.requires_grad_(False)
        object.__setattr__(self, "_clip", clip)
        self.classnames = [c.replace("_", " ") for c in classnames]
        self.position = position
        self.csc = csc
        tok = clip.tokenizer
        width = clip.text_width
        dev = clip.device

        if ctx_init:
            ctx_init = ctx_init.replace("_", " ")
            init_ids = tok(ctx_init, add_special_tokens=False).input_ids
            n_ctx = len(init_ids)
            with torch.no_grad():
                vec = clip.token_embedding(torch.tensor([init_ids], device=dev))[0].float()
            ctx = vec.unsqueeze(0).repeat(len(classnames), 1, 1) if csc else vec
        else:
            shape = (len(classnames), n_ctx, width) if csc else (n_ctx, width)
            ctx = torch.empty(shape, device=dev).normal_(0.0, init_std)
        if n_ctx < 1:
            raise VislabError("PromptLearner needs n_ctx >= 1")
        self.n_ctx = n_ctx
        self.ctx = nn.Parameter(ctx)

        self.name_lens = [len(tok(n, add_special_tokens=False).input_ids) for n in self.classnames]
        placeholder = " ".join(["X"] * n_ctx)
        prompts = [f"{placeholder} {n}." for n in self.classnames]
        longest = max(self.name_lens) + n_ctx + 3
        if longest > clip.context_length:
            raise VislabError(f"prompt of {longest} tokens does not fit the CLIP context of {clip.context_length}")
        ids = clip.tokenize(prompts)
        with torch.no_grad():
            emb = clip.token_embedding(ids).float()
        self.register_buffer("tokenized_prompts", ids, persistent=False)
        self.register_buffer("token_prefix", emb[:, :1].clone(), persistent=False)  # SOS
        self.register_buffer("token_suffix", emb[:, 1 + n_ctx:].clone(), persistent=False)  # class, ".", EOS, pads

    @property
    def clip(self) -> ClipEncoder:
        return self._clip

    def frozen_modules(self) -> list[nn.Module]:
        return [self._clip]

    @property
    def n_cls(self) -> int:
        return len(self.classnames)

    def _assemble(self, ctx: torch.Tensor) -> torch.Tensor:
        """ctx (n_cls, M, W) -> prompt embeddings (n_cls, L, W)."""
        prefix, suffix = self.token_prefix.to(ctx.dtype), self.token_suffix.to(ctx.dtype)
        if self.position == "end":
            return torch.cat([prefix, ctx, suffix], dim=1)
        rows = []
        half = self.n_ctx // 2
        for i, n in enumerate(self.name_lens):
            pre, cls, rest = prefix[i : i + 1], suffix[i : i + 1, :n], suffix[i : i + 1, n:]
            c = ctx[i : i + 1]
            if self.position == "middle":
                rows.append(torch.cat([pre, c[:, :half], cls, c[:, half:], rest], dim=1))
            else:  # front
                rows.append(torch.cat([pre, cls, c, rest], dim=1))
        return torch.cat(rows, dim=0)

    def prompt_embeddings(self, ctx_shift: torch.Tensor | None = None) -> torch.Tensor:
        """Token embeddings of the prompts: (n_cls, L, Wt), or (B, n_cls, L, Wt) with ``ctx_shift`` (B, Wt)."""
        ctx = self.ctx if self.csc else self.ctx.unsqueeze(0).expand(self.n_cls, -1, -1)
        if ctx_shift is None:
            return self._assemble(ctx)
        return torch.stack([self._assemble(ctx + s.view(1, 1, -1)) for s in ctx_shift], dim=0)

    def forward(self, ctx_shift: torch.Tensor | None = None, normalize: bool = False) -> torch.Tensor:
        with full_precision(self.ctx.device):  # fp32 text tower under bf16/fp16 autocast
            emb = self.prompt_embeddings(None if ctx_shift is None else ctx_shift.float()).float()
            ids = self.tokenized_prompts  # the class tokens move in "front"/"middle" but EOS keeps its slot
            if ctx_shift is None:
                return self.clip.encode_text_embeddings(emb, ids, normalize=normalize)
            B = emb.shape[0]
            feats = self.clip.encode_text_embeddings(emb.flatten(0, 1), ids.repeat(B, 1), normalize=normalize)
            return feats.view(B, self.n_cls, -1)

    def logits(self, image_features: torch.Tensor) -> torch.Tensor:
        """CoOp logits (B, n_cls) = logit_scale * cos(image_features, class text features)."""
        text = self(normalize=True)
        img = image_features / image_features.norm(dim=-1, keepdim=True)
        return self.clip.logit_scale * img @ text.t()
