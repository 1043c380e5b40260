"""CFPL-FAS model (Liu et al., CVPR 2024, arXiv:2403.14333), read top to bottom.

Shapes use: B batch, n = 1 + P visual tokens (CLS + patches), d_v visual width,
d_t text width, d_e joint embedding width, N learnable queries, L_ctx text context length.

Pipeline (the paper's overview figure):
  image --CLIP vision (frozen)--> block outputs v^l (B, n, d_v), embedding v (B, d_e)
  content v_c = InstanceNorm(v^L)            (B, n, d_v)       -> CQF -> P_c (B, N, d_t)
  style   v_s = mean_l [mu(v^l) || sigma(v^l)] (B, 1, 2 d_v)  -> DSP (train) -> SQF -> P_s (B, N, d_t)
  P_c, P_s --[SOT, P, EOT, pad] through the frozen CLIP text transformer--> t_c, t_s (B, d_e)
  PromptModulation: w = sigmoid(W2 ReLU(W1 [t_c || t_s])),  logits = FC_cls(w * v)   (B, 2)
  PTM (train only): FC_ptm on [P_c || S_text] for positives and hard negatives.
Internal labels: 0 = live, 1 = spoof.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

PTM_TEXTS = ("a photo of a real face", "a photo of a fake face")  # index = internal label (0 live, 1 spoof)


@dataclass
class CFPLConfig:
    """Hyper-parameters of the CFPL head (the CLIP backbone is given separately)."""

    n_queries: int = 16  # N [P]
    qformer_depth: int = 1  # [P]
    qformer_heads: int = 8  # [D]
    qformer_dropout: float = 0.1  # [D]
    qformer_ffn_mult: int = 4  # [D]
    pm_reduction: int = 16  # r [P]
    dsp_prob: float = 0.5  # [P]
    dsp_alpha: float = 0.1  # [D] MixStyle default
    dsp: bool = True
    ptm: bool = True
    ptm_temperature: float = 0.07  # tau for hard-negative sampling [D]
    ptm_mean_valid_tokens: bool = False  # [D] paper: mean over all 77 positions incl. padding
    stats_exclude_cls: bool = True  # [D] statistics over patch tokens only, CLS kept as is
    stats_eps: float = 1e-6  # [D]
    normalize_text: bool = False  # [D] L2-normalise t_c, t_s before PM
    modulation: bool = True  # ablation switch: False -> FC_cls(v) directly
    style_branch: bool = True  # ablation switch: False -> t_s = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> CFPLConfig:
        d = dict(d or {})
        known = {k: d.pop(k) for k in list(d) if k in cls.__dataclass_fields__}
        return cls(**known, extra=d)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("extra")
        return out


# --------------------------------------------------------------------------------------
# CLIP access: block outputs of the vision tower and prompt embeddings through the text tower
# --------------------------------------------------------------------------------------


def vision_blocks(clip: nn.Module) -> nn.ModuleList:
    """The transformer blocks of CLIP's vision tower (HF ``vision_model.encoder.layers`` or
    open_clip ``visual.transformer.resblocks``), found by name."""
    best: tuple[str, nn.ModuleList] | None = None
    for name, mod in clip.named_modules():
        if not isinstance(mod, nn.ModuleList) or len(mod) == 0:
            continue
        low = name.lower()
        if ("vision" in low or "visual" in low) and (low.endswith("layers") or low.endswith("resblocks")):
            if best is None or len(name) < len(best[0]):
                best = (name, mod)
    if best is None:
        raise ValueError("cannot find the vision transformer blocks of this CLIP model")
    return best[1]


def _first(x: Any) -> torch.Tensor:
    return x[0] if isinstance(x, (tuple, list)) else x


def encode_image_with_blocks(clip: nn.Module, pixels: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Run ``clip.encode_image`` and capture every block output.

    pixels: (B, 3, H, W) CLIP-normalised. Returns ``v`` (B, d_e) and a list of L tensors
    ``v^l`` (B, n, d_v) (before ``ln_post``), batch-first.
    """
    if hasattr(clip, "image_layers") and hasattr(clip, "pool_image"):  # vislab.clip.ClipEncoder
        layers = clip.image_layers(pixels)
        return clip.pool_image(layers[-1]), layers
    blocks = vision_blocks(clip)
    captured: list[torch.Tensor] = []

    def hook(_m, _i, out):
        captured.append(_first(out))

    handles = [b.register_forward_hook(hook) for b in blocks]
    try:
        v = clip.encode_image(pixels)
    finally:
        for h in handles:
            h.remove()
    B = pixels.shape[0]
    outs = []
    for t in captured:
        if t.shape[0] != B and t.shape[1] == B:  # sequence-first tower
            t = t.transpose(0, 1)
        outs.append(t)
    return v, outs


class PromptTextEncoder(nn.Module):
    """Feeds learned prompt vectors through CLIP's frozen text transformer.

    Layout per sample [D]: ``[e_SOT, p_1..p_N, e_EOT, e_pad ...]`` (length ``context_length``),
    CLIP's positional embedding and causal mask, ``ln_final``, read-out at the EOT position
    N+1, ``text_projection`` -> (B, d_e). Implemented with ``clip.encode_text_embeddings``.
    """

    def __init__(self, clip: nn.Module, n_prompts: int):
        super().__init__()
        L = int(clip.context_length)
        if n_prompts + 2 > L:
            raise ValueError(f"{n_prompts} prompt vectors + SOT + EOT do not fit the context length {L}")
        base = clip.tokenize([""])[0].clone()  # [SOT, EOT, pad...]
        sot, eot = int(base[0]), int(base[1])
        pad = int(base[2]) if L > 2 else eot
        filler = min(sot, eot) - 1  # any ordinary token; its embedding is replaced
        ids = torch.full((L,), pad, dtype=torch.long)
        ids[0] = sot
        ids[1 : n_prompts + 1] = filler
        ids[n_prompts + 1] = eot
        self.n_prompts = n_prompts
        self.register_buffer("ids", ids, persistent=False)
        self.clip = [clip]  # not registered: the CLIP is owned by the CFPL model

    def forward(self, prompts: torch.Tensor) -> torch.Tensor:
        """prompts: (B, N, d_t) -> text features (B, d_e)."""
        clip = self.clip[0]
        B = prompts.shape[0]
        ids = self.ids.unsqueeze(0).expand(B, -1)
        with torch.no_grad():
            base = clip.token_embedding(ids[:1]).to(prompts.dtype)  # (1, L, d_t)
        embeds = torch.cat([base[:, :1].expand(B, -1, -1), prompts, base[:, self.n_prompts + 1 :].expand(B, -1, -1)], dim=1)
        return clip.encode_text_embeddings(embeds, ids)


# --------------------------------------------------------------------------------------
# Content and style features (the paper's v_c and v_s)
# --------------------------------------------------------------------------------------


def token_stats(v: torch.Tensor, exclude_cls: bool = True, eps: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    """Channel-wise statistics over tokens.

    v: (B, n, d). Returns mu, sigma (B, d): ``mu = mean_tokens(v)``,
    ``sigma = sqrt(var_tokens(v) + eps)`` (biased variance), over patch tokens when
    ``exclude_cls`` (token 0 is CLS).
    """
    x = v[:, 1:] if exclude_cls and v.shape[1] > 1 else v
    mu = x.mean(dim=1)
    sigma = (x.var(dim=1, unbiased=False) + eps).sqrt()
    return mu, sigma


def style_feature(blocks: list[torch.Tensor], exclude_cls: bool = True, eps: float = 1e-6) -> torch.Tensor:
    """Style ``v_s = (1/L) sum_l [mu(v^l) || sigma(v^l)]`` -> (B, 1, 2 d_v)."""
    feats = [torch.cat(token_stats(v, exclude_cls, eps), dim=-1) for v in blocks]
    return torch.stack(feats, 0).mean(0).unsqueeze(1)


def content_feature(v_last: torch.Tensor, exclude_cls: bool = True, eps: float = 1e-6) -> torch.Tensor:
    """Content ``v_c = (v^L - mu(v^L)) / sigma(v^L)`` (instance norm over tokens, per channel).

    v_last: (B, n, d_v) -> (B, n, d_v); with ``exclude_cls`` the CLS token is kept un-normalised.
    """
    mu, sigma = token_stats(v_last, exclude_cls, eps)
    normed = (v_last - mu.unsqueeze(1)) / sigma.unsqueeze(1)
    if exclude_cls and v_last.shape[1] > 1:
        return torch.cat([v_last[:, :1], normed[:, 1:]], dim=1)
    return normed


class DiversifiedStylePrompt(nn.Module):
    """Diversified Style Prompt (DSP): MixStyle-like mixing of the style feature across instances, training only.

    With probability ``p`` per batch: ``lambda_i ~ Beta(alpha, alpha)``, a random permutation
    pi of the batch, ``v_s <- lambda * v_s + (1 - lambda) * v_s[pi]`` (mu and sigma mixed
    jointly). v_s: (B, 1, 2 d_v) -> same shape. Identity in eval mode.
    """

    def __init__(self, p: float = 0.5, alpha: float = 0.1):
        super().__init__()
        self.p = p
        self.beta = torch.distributions.Beta(alpha, alpha)

    def forward(self, v_s: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if not self.training or v_s.shape[0] < 2:
            return v_s
        if torch.rand((), generator=generator).item() >= self.p:
            return v_s
        B = v_s.shape[0]
        lam = self.beta.sample((B,) + (1,) * (v_s.dim() - 1)).to(v_s)
        perm = torch.randperm(B, generator=generator).to(v_s.device)
        return lam * v_s + (1 - lam) * v_s[perm]


# --------------------------------------------------------------------------------------
# Q-Former (the paper's CQF and SQF)
# --------------------------------------------------------------------------------------


class QFormerLayer(nn.Module):
    """BLIP-2-style block with post-LN residuals.

    q: (B, N, d), ctx: (B, m, d_ctx):
      q = LN(q + Drop(SelfAttn(q)));  q = LN(q + Drop(CrossAttn(q, ctx, ctx)));  q = LN(q + Drop(FFN(q)))
    """

    def __init__(self, dim: int, ctx_dim: int, heads: int, dropout: float, ffn_mult: int):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, kdim=ctx_dim, vdim=ctx_dim, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_mult * dim), nn.GELU(), nn.Linear(ffn_mult * dim, dim))
        self.ln1, self.ln2, self.ln3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, q: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        q = self.ln1(q + self.drop(self.self_attn(q, q, q, need_weights=False)[0]))
        q = self.ln2(q + self.drop(self.cross_attn(q, ctx, ctx, need_weights=False)[0]))
        return self.ln3(q + self.drop(self.ffn(q)))


class QFormer(nn.Module):
    """N learnable queries (init N(0, 0.02)) attending to a context -> prompts (B, N, d_t)."""

    def __init__(self, n_queries: int, dim: int, ctx_dim: int, depth: int = 1, heads: int = 8, dropout: float = 0.1, ffn_mult: int = 4):
        super().__init__()
        self.queries = nn.Parameter(torch.randn(1, n_queries, dim) * 0.02)
        self.layers = nn.ModuleList(QFormerLayer(dim, ctx_dim, heads, dropout, ffn_mult) for _ in range(depth))

    def forward(self, ctx: torch.Tensor) -> torch.Tensor:
        """ctx: (B, m, ctx_dim) -> (B, N, dim)."""
        q = self.queries.expand(ctx.shape[0], -1, -1)
        for layer in self.layers:
            q = layer(q, ctx)
        return q


class ContentQFormer(QFormer):
    """CQF: queries attend to the content feature v_c (B, n, d_v) -> content prompts P_c (B, N, d_t)."""


class StyleQFormer(QFormer):
    """SQF: queries attend to the style feature v_s (B, 1, 2 d_v) -> style prompts P_s (B, N, d_t)."""


# --------------------------------------------------------------------------------------
# Prompt Modulation and heads (PM, PTM)
# --------------------------------------------------------------------------------------


class PromptModulation(nn.Module):
    """PM: ``w = sigmoid(W2 ReLU(W1 [t_c || t_s]))`` in (0,1)^{d_e}; ``v~ = w * v``.

    W1: 2 d_e -> d_e / r, W2: d_e / r -> d_e (biases on). t_c, t_s, v: (B, d_e).
    """

    def __init__(self, embed_dim: int, reduction: int = 16):
        super().__init__()
        hidden = max(1, embed_dim // reduction)
        self.fc1 = nn.Linear(2 * embed_dim, hidden)
        self.fc2 = nn.Linear(hidden, embed_dim)

    def weights(self, t_c: torch.Tensor, t_s: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.fc2(F.relu(self.fc1(torch.cat([t_c, t_s], dim=-1)))))

    def forward(self, v: torch.Tensor, t_c: torch.Tensor, t_s: torch.Tensor) -> torch.Tensor:
        return self.weights(t_c, t_s) * v


class PTMHead(nn.Module):
    """FC_ptm: Linear(2 d_t, 2) per query, logits averaged over the N queries.

    R: (M, N, 2 d_t) -> (M, 2); class 1 = matched (prompt, text) pair.
    """

    def __init__(self, text_width: int):
        super().__init__()
        self.fc = nn.Linear(2 * text_width, 2)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        return self.fc(r).mean(dim=1)


def sample_hard_negatives(sim: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """ALBEF-style in-batch hard-negative sampling with same-text masking (PTM).

    sim: (B, B), ``sim[i, j] = cos(mean_N P_c^i, S^j) / tau`` (prompt i, text j); labels (B,).
    Returns ``neg_prompt`` (B,): for text i a prompt j sampled with probability
    ``softmax_j(sim[j, i])`` over j with ``labels[j] != labels[i]``; ``neg_text`` (B,): for
    prompt i a text j sampled with ``softmax_j(sim[i, j])`` over the same candidates.
    Same-label texts are identical, so a same-label sample is never a negative: a row without any
    candidate (every sample of the batch has the same label) gets ``-1`` (no in-batch negative).
    """
    B = sim.shape[0]
    valid = labels.view(B, 1) != labels.view(1, B)
    has = valid.any(dim=1)
    out_prompt = torch.full((B,), -1, dtype=torch.long, device=sim.device)
    out_text = torch.full((B,), -1, dtype=torch.long, device=sim.device)
    if not bool(has.any()):
        return out_prompt, out_text
    rows = has.nonzero().squeeze(1)
    sim = sim.float()
    w_text = torch.softmax(sim.masked_fill(~valid, float("-inf"))[rows], dim=1)
    w_prompt = torch.softmax(sim.t().masked_fill(~valid, float("-inf"))[rows], dim=1)
    out_text[rows] = torch.multinomial(w_text, 1, generator=generator).squeeze(1)
    out_prompt[rows] = torch.multinomial(w_prompt, 1, generator=generator).squeeze(1)
    return out_prompt, out_text


# --------------------------------------------------------------------------------------
# The whole model
# --------------------------------------------------------------------------------------


class CFPL(nn.Module):
    """CFPL-FAS on a CLIP encoder (``vislab.clip.ClipEncoder`` interface).

    ``forward(pixels)`` -> dict with ``logits`` (B, 2) [0 live, 1 spoof] and intermediates;
    ``ptm_logits(out, labels)`` -> (3B, 2) logits and their targets for the PTM loss.
    """

    def __init__(self, clip: nn.Module, config: CFPLConfig | dict | None = None, finetune_image_encoder: bool = False):
        super().__init__()
        cfg = config if isinstance(config, CFPLConfig) else CFPLConfig.from_dict(config)
        self.cfg = cfg
        self.clip = clip
        self.finetune_image_encoder = finetune_image_encoder
        d_v, d_t, d_e = int(clip.vision_width), int(clip.text_width), int(clip.embed_dim)
        self.dims = {"d_v": d_v, "d_t": d_t, "d_e": d_e}
        q = dict(depth=cfg.qformer_depth, heads=cfg.qformer_heads, dropout=cfg.qformer_dropout, ffn_mult=cfg.qformer_ffn_mult)
        self.cqf = ContentQFormer(cfg.n_queries, d_t, d_v, **q)
        self.sqf = StyleQFormer(cfg.n_queries, d_t, 2 * d_v, **q)
        self.dsp = DiversifiedStylePrompt(cfg.dsp_prob, cfg.dsp_alpha)
        self.prompt_text = PromptTextEncoder(clip, cfg.n_queries)
        self.pm = PromptModulation(d_e, cfg.pm_reduction)
        self.classifier = nn.Linear(d_e, 2)
        self.ptm_head = PTMHead(d_t)
        # PTM texts: token embeddings of "a photo of a {real|fake} face", mean over positions
        with torch.no_grad():
            ids = clip.tokenize(list(PTM_TEXTS))
            emb = clip.token_embedding(ids).float()  # (2, L, d_t)
            if cfg.ptm_mean_valid_tokens:
                eot_pos = (ids == ids[0].max()).float().argmax(dim=1)
                valid = (torch.arange(ids.shape[1]).unsqueeze(0) <= eot_pos.unsqueeze(1)).float().unsqueeze(-1)
                s = (emb * valid).sum(1) / valid.sum(1)
            else:
                s = emb.mean(dim=1)
        self.register_buffer("ptm_text", s)  # (2, d_t)
        self.set_trainable()

    # -- which parameters train
    def set_trainable(self) -> None:
        for p in self.clip.parameters():
            p.requires_grad_(False)
        if self.finetune_image_encoder:
            for name, p in self.clip.named_parameters():
                if any(k in name.lower() for k in ("vision", "visual")):
                    p.requires_grad_(True)

    def train(self, mode: bool = True):
        super().train(mode)
        if not self.finetune_image_encoder:
            self.clip.eval()  # frozen CLIP: no dropout, fixed statistics
        return self

    def head_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if not n.startswith("clip.") and p.requires_grad]

    def encoder_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if n.startswith("clip.") and p.requires_grad]

    # -- forward
    def image_features(self, pixels: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """pixels in [0, 1] (B, 3, H, W) -> v (B, d_e), block outputs."""
        x = self.clip.normalize(pixels)
        if self.finetune_image_encoder and self.training:
            return encode_image_with_blocks(self.clip, x)
        with torch.no_grad():
            return encode_image_with_blocks(self.clip, x)

    def forward(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        v, blocks = self.image_features(pixels)
        v = v.float()
        v_c = content_feature(blocks[-1].float(), cfg.stats_exclude_cls, cfg.stats_eps)  # (B, n, d_v)
        v_s = style_feature([b.float() for b in blocks], cfg.stats_exclude_cls, cfg.stats_eps)  # (B, 1, 2 d_v)
        if cfg.dsp:
            v_s = self.dsp(v_s)
        p_c = self.cqf(v_c)  # (B, N, d_t)
        t_c = self.prompt_text(p_c).float()
        if cfg.style_branch:
            p_s = self.sqf(v_s)
            t_s = self.prompt_text(p_s).float()
        else:
            p_s = torch.zeros_like(p_c)
            t_s = torch.zeros_like(t_c)
        if cfg.normalize_text:
            t_c, t_s = F.normalize(t_c, dim=-1), F.normalize(t_s, dim=-1)
        if cfg.modulation:
            w = self.pm.weights(t_c, t_s)
        else:
            w = torch.ones_like(v)
        logits = self.classifier(w * v)
        return {"logits": logits, "v": v, "w": w, "p_c": p_c, "p_s": p_s, "t_c": t_c, "t_s": t_s}

    def ptm_logits(self, p_c: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompt-Text Matching (PTM) inputs.

        p_c: (B, N, d_t) content prompts; labels (B,) 0 live / 1 spoof. Builds
        ``R = concat(R_p, R_n^prompt, R_n^text)`` (3B, N, 2 d_t) with ``R_p = [P_c || S]``,
        applies FC_ptm and returns logits (M, 2) and targets (M,) (1 for the B positives). M = 3B when the
        batch holds both classes; a text without an other-class prompt in the batch has no prompt negative
        (M < 3B), so a matched (prompt, own-class text) pair is never trained as a negative.
        """
        B, N, _ = p_c.shape
        S = self.ptm_text[labels].to(p_c)  # (B, d_t)
        with torch.no_grad():
            sim = F.normalize(p_c.mean(1), dim=-1) @ F.normalize(S, dim=-1).t() / self.cfg.ptm_temperature
            neg_prompt, neg_text = sample_hard_negatives(sim, labels, generator)
        S_exp = S.unsqueeze(1).expand(B, N, -1)
        r_pos = torch.cat([p_c, S_exp], dim=-1)
        # each text with a hard-negative prompt: only texts with an other-class prompt in the batch
        keep = neg_prompt >= 0
        r_neg_prompt = torch.cat([p_c[neg_prompt[keep]], S_exp[keep]], dim=-1)
        # each prompt with a hard-negative text: the in-batch pick, or (no other class in the batch) the
        # other class's text itself; it is never the prompt's own-class text
        other = self.ptm_text[1 - labels].to(p_c).unsqueeze(1).expand(B, N, -1)
        text_neg = torch.where((neg_text >= 0).view(B, 1, 1), S_exp[neg_text.clamp(min=0)], other)
        r_neg_text = torch.cat([p_c, text_neg], dim=-1)
        r = torch.cat([r_pos, r_neg_prompt, r_neg_text], dim=0)
        target = torch.cat([torch.ones(B), torch.zeros(len(r) - B)]).long().to(p_c.device)
        return self.ptm_head(r), target

    @torch.no_grad()
    def live_score(self, pixels: torch.Tensor) -> torch.Tensor:
        """P(live) per image (B,) (vislab convention: higher = live)."""
        return torch.softmax(self.forward(pixels)["logits"], dim=-1)[:, 0]


def n_params(module: nn.Module, trainable: bool = True) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable)


__all__ = [
    "CFPL",
    "CFPLConfig",
    "ContentQFormer",
    "StyleQFormer",
    "QFormer",
    "QFormerLayer",
    "PromptModulation",
    "PromptTextEncoder",
    "DiversifiedStylePrompt",
    "PTMHead",
    "content_feature",
    "style_feature",
    "token_stats",
    "sample_hard_negatives",
    "encode_image_with_blocks",
    "vision_blocks",
    "PTM_TEXTS",
]
