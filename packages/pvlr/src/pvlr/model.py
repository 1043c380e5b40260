"""PVLR's components: visual encoders, KAP, CAP, IFM, DMA and the similarity head.

Shapes: B batch, C classes, N visual tokens (HW), d model width (= the CLIP embedding width).
Tags: [A] stated in the paper's abstract, [S] a third-party summary of the paper, [R] our reconstruction
(each such choice is a config switch, listed in the README).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


# ----------------------------------------------------------------------------- visual encoders
def sine_position_2d(h: int, w: int, d: int, temperature: float = 10000.0) -> torch.Tensor:
    """DETR-style 2D sine positional encoding, (h*w, d): half the channels for y, half for x."""
    if d % 4:
        raise ValueError(f"sine position encoding needs d divisible by 4, got {d}")
    q = d // 4
    omega = 1.0 / temperature ** (torch.arange(q, dtype=torch.float32) / q)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    y = ys.flatten()[:, None] * omega[None]
    x = xs.flatten()[:, None] * omega[None]
    return torch.cat([y.sin(), y.cos(), x.sin(), x.cos()], dim=1)


class TinyCNN(nn.Module):
    """Three Conv3x3/stride-2 + BN + ReLU blocks (32, 64, 64 channels), a linear map to d and a learned
    position embedding (the CPU toy encoder): images (B,3,H,W) -> tokens (B, H/8*W/8, d)."""

    def __init__(self, d: int, image_size: int = 64, channels: tuple[int, ...] = (32, 64, 64)):
        super().__init__()
        layers, cin = [], 3
        for c in channels:
            layers += [nn.Conv2d(cin, c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
            cin = c
        self.body = nn.Sequential(*layers)
        side = image_size
        for _ in channels:
            side = (side + 1) // 2
        self.proj = nn.Linear(cin, d)
        self.pos = nn.Parameter(torch.randn(side * side, d) * 0.02)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        f = self.body((images - 0.5) / 0.25).flatten(2).transpose(1, 2)
        return self.proj(f) + self.pos[: f.shape[1]]


class ResNetEncoder(nn.Module):
    """torchvision ResNet up to layer4 (optionally ImageNet weights from a local state_dict file),
    flattened, Linear(C_feat -> d) and a 2D sine position encoding (DETR-style, as Query2Label) [R]:
    images (B,3,H,W) -> tokens (B, H/32*W/32, d)."""

    def __init__(self, d: int, arch: str = "resnet101", weights: str | None = None):
        super().__init__()
        import torchvision

        net = getattr(torchvision.models, arch)(weights=None)
        if weights:
            from vislab.errors import InputError
            from vislab.io import load_torch

            state = load_torch(weights, "ResNet weights")
            state = state.get("state_dict", state) if isinstance(state, dict) else state
            try:
                net.load_state_dict(state)
            except (RuntimeError, TypeError) as e:
                raise InputError(weights, f"not a torchvision {arch} state_dict ({str(e).splitlines()[0][:160]})") from None
        self.body = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4)
        self.proj = nn.Linear(net.fc.in_features, d)
        self.d = d
        self.register_buffer("mean", torch.tensor((0.485, 0.456, 0.406)).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor((0.229, 0.224, 0.225)).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        f = self.body((images - self.mean) / self.std)
        h, w = f.shape[-2:]
        pos = sine_position_2d(h, w, self.d).to(f)
        return self.proj(f.flatten(2).transpose(1, 2)) + pos


class ClipVisionEncoder(nn.Module):
    """The CLIP image tower as the visual encoder, Linear(width -> d): images (B,3,H,W) -> (B, N, d).

    A ViT tower (open_clip or Hugging Face) gives its patch tokens (images resized to its input size).
    An open_clip ModifiedResNet tower (RN50, RN101, ...) gives its layer4 map before the attention pool,
    (B, 32*width, H/32, W/32) at any input size, flattened with a 2D sine position encoding like
    :class:`ResNetEncoder`. The tower is trained with the backbone learning rate (x0.1)."""

    def __init__(self, clip: nn.Module, d: int):
        super().__init__()
        from vislab.errors import VislabError

        self.clip = clip
        tower = clip.model.visual if clip.backend == "open_clip" else None
        self.resnet = tower is not None and hasattr(tower, "attnpool") and hasattr(tower, "layer4")
        if self.resnet:
            width = int(tower.attnpool.k_proj.in_features)
        else:
            width = clip.vision_width
            if width is None:
                raise VislabError(f"model.visual=clip needs a ViT image tower or an open_clip ModifiedResNet (RN50, RN101); "
                                  f"this CLIP's {type(tower).__name__} is neither: use model.visual=resnet101 or cnn")
        self.d = d
        self.proj = nn.Linear(width, d)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if not self.resnet:
            _, tokens = self.clip.encode_image(self.clip.preprocess(images), return_tokens=True)
            return self.proj(tokens[:, 1:])
        v = self.clip.model.visual
        x = self.clip.normalize(images).to(v.conv1.weight.dtype)
        f = v.layer4(v.layer3(v.layer2(v.layer1(v.stem(x)))))
        h, w = f.shape[-2:]
        return self.proj(f.flatten(2).transpose(1, 2)) + sine_position_2d(h, w, self.d).to(f)


# ----------------------------------------------------------------------------- prompting
def encode_text_fp32(clip: nn.Module, embeds: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Frozen CLIP text features (B, d) in fp32 with autocast switched off: a text tower run in fp16/bf16
    with learnable context gives NaNs or poor gradients (DualCoOp keeps CLIP in fp32 for this reason).
    embeds (B, L, W_tok), ids (B, L).

    The text tower is causal and pools at each row's first EOT, so the padding after the last EOT of the batch
    cannot change the features: the rows are cut there (the class prompts are short, the context is 77)."""
    from vislab.clip.encoder import eos_positions

    n = int(eos_positions(ids).max()) + 1
    with torch.autocast(embeds.device.type, enabled=False):
        return clip.encode_text_embeddings(embeds[:, :n].float(), ids[:, :n]).float()


class LabelSelfAttention(nn.Module):
    """One pre-LN Transformer encoder layer over the C label tokens, no positional encoding, so the
    output is equivariant to the order of labels [R]: (C, d) -> (C, d)."""

    def __init__(self, d: int, heads: int = 8, ffn: int | None = None, dropout: float = 0.1):
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(d, heads, ffn or 4 * d, dropout, activation="gelu", batch_first=True, norm_first=True)

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        squeeze = labels.dim() == 2
        x = labels[None] if squeeze else labels
        x = self.layer(x)
        return x[0] if squeeze else x


class KAP(nn.Module):
    """Knowledge-Aware Prompting [A, S]: fixed prompts "a photo of a {name}." through the frozen text
    encoder once (K0, a non-persistent buffer (C, d)), then label self-attention -> T_k (C, d)."""

    def __init__(self, clip: nn.Module, classnames: list[str], template: str = "a photo of a {}.", heads: int = 8, ffn: int | None = None):
        super().__init__()
        ids = clip.tokenize([template.format(n) for n in classnames])
        self.register_buffer("ids", ids, persistent=False)
        self.register_buffer("k0", torch.zeros(len(classnames), clip.embed_dim), persistent=False)
        self.refresh(clip)
        self.relation = LabelSelfAttention(self.k0.shape[1], heads, ffn)

    @torch.no_grad()
    def refresh(self, clip: nn.Module) -> None:
        """Recompute K0 from ``clip`` (after its weights were loaded from a checkpoint)."""
        self.k0.copy_(encode_text_fp32(clip, clip.token_embedding(self.ids), self.ids))

    def forward(self) -> torch.Tensor:
        return self.relation(self.k0)


class CAP(nn.Module):
    """Context-Aware Prompting [A learnable; R details]: CoOp context V (M, W_tok) shared by all classes,
    prompt "[SOS] V_1..V_M name . [EOS]" through the frozen text tower (gradients only into V), then a
    separate label self-attention -> T_c (C, d), or (B, C, d) with the CoCoOp meta-net switch."""

    def __init__(self, clip: nn.Module, classnames: list[str], n_ctx: int = 16, ctx_init: str | None = None,
                 heads: int = 8, ffn: int | None = None, conditional: bool = False):
        super().__init__()
        self.clip = clip
        width = clip.text_width
        placeholder = " ".join(["X"] * n_ctx)
        ids = clip.tokenize([f"{placeholder} {n}." for n in classnames])
        self.register_buffer("ids", ids, persistent=False)
        self.n_ctx = n_ctx
        self.register_buffer("prefix", torch.zeros(len(classnames), 1, width), persistent=False)
        self.register_buffer("suffix", torch.zeros(len(classnames), ids.shape[1] - 1 - n_ctx, width), persistent=False)
        self.refresh(clip)
        if ctx_init:
            init_ids = clip.tokenize([ctx_init])
            with torch.no_grad():
                init = clip.token_embedding(init_ids)[0, 1 : 1 + n_ctx].float()
            if init.shape[0] < n_ctx:
                init = torch.cat([torch.randn(n_ctx - init.shape[0], width) * 0.02, init])
            self.ctx = nn.Parameter(init.clone())
        else:
            self.ctx = nn.Parameter(torch.randn(n_ctx, width) * 0.02)
        d = clip.embed_dim
        self.meta = nn.Sequential(nn.Linear(d, max(d // 16, 1)), nn.ReLU(), nn.Linear(max(d // 16, 1), width)) if conditional else None
        self.relation = LabelSelfAttention(d, heads, ffn)

    @torch.no_grad()
    def refresh(self, clip: nn.Module) -> None:
        """Recompute the fixed [SOS] and "name . [EOS]" token embeddings from ``clip``'s token table."""
        embeds = clip.token_embedding(self.ids).float()
        self.prefix.copy_(embeds[:, :1])
        self.suffix.copy_(embeds[:, 1 + self.n_ctx :])

    def prompts(self, shift: torch.Tensor | None = None) -> torch.Tensor:
        """Token embeddings of the prompts: (C, L, W_tok), or (B*C, L, W_tok) with a per-image shift (B, W_tok)."""
        c = self.ids.shape[0]
        ctx = self.ctx[None].expand(c, -1, -1)
        if shift is None:
            return torch.cat([self.prefix, ctx, self.suffix], dim=1)
        b = shift.shape[0]
        ctx = ctx[None] + shift[:, None, None, :]
        pre = self.prefix[None].expand(b, -1, -1, -1)
        suf = self.suffix[None].expand(b, -1, -1, -1)
        return torch.cat([pre, ctx, suf], dim=2).flatten(0, 1)

    def text_features(self, image_feature: torch.Tensor | None = None) -> torch.Tensor:
        """The prompts through the frozen text tower, always fp32: (C, d), or (B, C, d) with the meta-net."""
        if self.meta is None or image_feature is None:
            return encode_text_fp32(self.clip, self.prompts(), self.ids)
        b = image_feature.shape[0]
        t = encode_text_fp32(self.clip, self.prompts(self.meta(image_feature)), self.ids.repeat(b, 1))
        return t.view(b, self.ids.shape[0], -1)

    def forward(self, image_feature: torch.Tensor | None = None) -> torch.Tensor:
        return self.relation(self.text_features(image_feature))


# ----------------------------------------------------------------------------- fusion and attention
def _ffn(d: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))


class IFM(nn.Module):
    """Interaction and Fusion Module [A interact+fuse; S channel interaction; R equations]:

    K' = LN(T_k + MHA(T_k, T_c, T_c)),  C' = LN(T_c + MHA(T_c, T_k, T_k)),
    g = sigmoid(W2 GELU(W1 [K'; C'])),  F = g*K' + (1-g)*C',  T = LN(F + FFN(F)).
    ``fusion`` in {ifm, sum, concat_linear, kap_only, cap_only} (ablations). Inputs (C,d) or (B,C,d).
    """

    FUSIONS = ("ifm", "sum", "concat_linear", "kap_only", "cap_only")

    def __init__(self, d: int, heads: int = 8, fusion: str = "ifm"):
        super().__init__()
        if fusion not in self.FUSIONS:
            raise ValueError(f"fusion must be one of {self.FUSIONS}, got {fusion!r}")
        self.fusion = fusion
        self.k_att = nn.MultiheadAttention(d, heads, batch_first=True)
        self.c_att = nn.MultiheadAttention(d, heads, batch_first=True)
        self.ln_k, self.ln_c, self.ln_out = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.gate = nn.Sequential(nn.Linear(2 * d, d), nn.GELU(), nn.Linear(d, d))
        self.concat = nn.Linear(2 * d, d)
        self.ffn = _ffn(d)

    def forward(self, t_k: torch.Tensor, t_c: torch.Tensor) -> torch.Tensor:
        if self.fusion == "kap_only":
            return t_k
        if self.fusion == "cap_only":
            return t_c
        if self.fusion == "sum":
            return t_k + t_c
        if self.fusion == "concat_linear":
            t_k, t_c = torch.broadcast_tensors(t_k, t_c)
            return self.concat(torch.cat([t_k, t_c], -1))
        t_k, t_c = torch.broadcast_tensors(t_k, t_c)
        squeeze = t_k.dim() == 2
        k, c = (t_k[None], t_c[None]) if squeeze else (t_k, t_c)
        k2 = self.ln_k(k + self.k_att(k, c, c, need_weights=False)[0])
        c2 = self.ln_c(c + self.c_att(c, k, k, need_weights=False)[0])
        g = torch.sigmoid(self.gate(torch.cat([k2, c2], -1)))
        f = g * k2 + (1 - g) * c2
        t = self.ln_out(f + self.ffn(f))
        return t[0] if squeeze else t


class DMA(nn.Module):
    """Dual-Modal Attention [A bidirectional; R equations], one shared affinity per head:

    A = (T Wq)(X Wk)^T / sqrt(d)  (B, heads, C, N)
    text<-visual:  T^ = LN(T + softmax_N(A) X Wv);  T^ = LN(T^ + FFN(T^))   (category centers)
    visual<-text:  X^ = LN(X + softmax_C(A)^T T Wu); X^ = LN(X^ + FFN(X^))  (label-aware visual tokens)
    ``mode`` in {bi, t2v_only, v2t_only, none}. T (C,d) or (B,C,d), X (B,N,d) -> (B,C,d), (B,N,d).
    """

    MODES = ("bi", "t2v_only", "v2t_only", "none")

    def __init__(self, d: int, heads: int = 1, mode: str = "bi"):
        super().__init__()
        if mode not in self.MODES:
            raise ValueError(f"dma must be one of {self.MODES}, got {mode!r}")
        if d % heads:
            raise ValueError(f"d={d} is not divisible by {heads} heads")
        self.mode, self.heads, self.d = mode, heads, d
        self.wq, self.wk, self.wv, self.wu = (nn.Linear(d, d, bias=False) for _ in range(4))
        self.ln_t1, self.ln_t2, self.ln_x1, self.ln_x2 = (nn.LayerNorm(d) for _ in range(4))
        self.ffn_t, self.ffn_x = _ffn(d), _ffn(d)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.heads, self.d // self.heads).transpose(1, 2)

    def _merge(self, x: torch.Tensor) -> torch.Tensor:
        b, h, n, e = x.shape
        return x.transpose(1, 2).reshape(b, n, h * e)

    def affinity(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """A (B, heads, C, N) = (T Wq)(X Wk)^T / sqrt(d_head)."""
        q, k = self._split(self.wq(t)), self._split(self.wk(x))
        return q @ k.transpose(-1, -2) / math.sqrt(self.d // self.heads)

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if t.dim() == 2:
            t = t[None].expand(x.shape[0], -1, -1)
        if self.mode == "none":
            return t, x
        a = self.affinity(t, x)
        t_out, x_out = t, x
        if self.mode in ("bi", "t2v_only"):
            t_hat = self.ln_t1(t + self._merge(a.softmax(-1) @ self._split(self.wv(x))))
            t_out = self.ln_t2(t_hat + self.ffn_t(t_hat))
        if self.mode in ("bi", "v2t_only"):
            x_hat = self.ln_x1(x + self._merge(a.softmax(-2).transpose(-1, -2) @ self._split(self.wu(t))))
            x_out = self.ln_x2(x_hat + self.ffn_x(x_hat))
        return t_out, x_out


class SimilarityHead(nn.Module):
    """logit_c = s * sum_j w_cj S_cj + b with S_cj = cos(t_c, x_j), w_c. = softmax_j(S_c. / tau) [R];
    s learnable (init 10, clamped to [1, 100]), b a learnable scalar. (B,C,d), (B,N,d) -> (B,C)."""

    def __init__(self, tau: float = 0.05, scale_init: float = 10.0):
        super().__init__()
        self.tau = tau
        self.scale = nn.Parameter(torch.tensor(float(scale_init)))
        self.bias = nn.Parameter(torch.zeros(()))

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        s = F.normalize(t, dim=-1) @ F.normalize(x, dim=-1).transpose(-1, -2)
        w = (s / self.tau).softmax(-1)
        return self.scale.clamp(1.0, 100.0) * (w * s).sum(-1) + self.bias


# ----------------------------------------------------------------------------- the model
@dataclass
class PVLRConfig:
    """Switches of the reconstructed pieces (see the README's table)."""

    visual: str = "cnn"  # cnn | resnet101 | resnet50 | clip
    visual_weights: str | None = None
    image_size: int = 64
    template: str = "a photo of a {}."
    n_ctx: int = 16
    ctx_init: str | None = None
    cap_conditional: bool = False
    label_heads: int = 8
    label_ffn: int | None = None
    ifm_heads: int = 8
    fusion: str = "ifm"
    dma: str = "bi"
    dma_heads: int = 1
    tau: float = 0.05


class PVLR(nn.Module):
    """The whole model: images (B,3,H,W) in [0,1] -> logits (B, C). Each visual encoder applies its own
    normalisation (ImageNet for ResNet, CLIP's for the CLIP tower)."""

    def __init__(self, clip: nn.Module, classnames: list[str], cfg: PVLRConfig):
        super().__init__()
        self.cfg = cfg
        self.classnames = list(classnames)
        d = clip.embed_dim
        clip.requires_grad_(False)
        clip.float().eval()  # the text tower stays fp32 (also under AMP, see encode_text_fp32)
        if cfg.visual == "cnn":
            self.visual = TinyCNN(d, cfg.image_size)
        elif cfg.visual.startswith("resnet"):
            self.visual = ResNetEncoder(d, cfg.visual, cfg.visual_weights)
        elif cfg.visual == "clip":
            self.visual = ClipVisionEncoder(clip, d)
            tower = clip.model.vision_model if clip.backend == "hf" else clip.model.visual
            tower.requires_grad_(True)  # fine-tuned at the backbone learning rate
        else:
            raise ValueError(f"visual must be cnn, resnet50, resnet101 or clip, got {cfg.visual!r}")
        self.kap = KAP(clip, classnames, cfg.template, cfg.label_heads, cfg.label_ffn)
        self.cap = CAP(clip, classnames, cfg.n_ctx, cfg.ctx_init, cfg.label_heads, cfg.label_ffn, cfg.cap_conditional)
        self.ifm = IFM(d, cfg.ifm_heads, cfg.fusion)
        self.dma = DMA(d, cfg.dma_heads, cfg.dma)
        self.head = SimilarityHead(cfg.tau)
        # K0 and CAP's fixed token embeddings are not saved: recompute them whenever CLIP weights arrive
        self.register_load_state_dict_post_hook(lambda module, _incompatible: module.refresh_text())

    @property
    def clip(self) -> nn.Module:
        return self.cap.clip

    def refresh_text(self) -> None:
        """Recompute the buffers derived from the frozen CLIP (KAP's K0, CAP's fixed token embeddings)."""
        self.kap.refresh(self.clip)
        self.cap.refresh(self.clip)

    def train(self, mode: bool = True) -> PVLR:
        super().train(mode)
        self.clip.eval()  # the text tower stays frozen (dropout off)
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.visual(images)
        t_k = self.kap()
        t_c = self.cap(x.mean(1)) if self.cfg.cap_conditional else self.cap()
        t = self.ifm(t_k, t_c)
        t_hat, x_hat = self.dma(t, x)
        return self.head(t_hat, x_hat)

    def trainable_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameter groups: ``backbone`` (x0.1 lr), ``no_decay`` (bias, LN, context), ``decay``."""
        backbone, no_decay, decay = [], [], []
        backbone_ids = {id(p) for p in self.visual.parameters()} if self.cfg.visual != "cnn" else set()
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            if id(p) in backbone_ids and not name.startswith("visual.proj"):
                backbone.append(p)
            elif p.dim() < 2 or "ctx" in name or "norm" in name or ".ln" in name or name.startswith("head."):
                no_decay.append(p)
            else:
                decay.append(p)
        return {"backbone": backbone, "no_decay": no_decay, "decay": decay}
