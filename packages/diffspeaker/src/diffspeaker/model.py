"""DiffSpeaker's networks, top to bottom.

Shapes: B batch, T mesh frames, S audio frames (~50 Hz), V vertices (3V flattened
coordinates), D denoiser width, A audio-encoder width (768 for base models), H heads,
L denoiser layers.

    waveform (B,N) --AudioEncoder--> (B,S,A) --align_audio_to_frames--> (B,T,A)
    x_t (B,T,3V), t (B,), style one-hot (B,n_ids) --BiasedDenoiser(audio)--> x0_hat (B,T,3V)
    DiffSpeaker: DDPM training (1000 steps, x0 target) and DDIM sampling (50 steps).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

# --------------------------------------------------------------------------- audio


def normalize_waveform(
    wave: torch.Tensor, lengths: torch.Tensor | None = None, eps: float = 1e-7
) -> torch.Tensor:
    """Zero-mean unit-variance normalisation per utterance (wav2vec2 feature-extractor rule).

    ``wave``: (B,N) float; ``lengths``: (B,) valid samples (padding stays 0).
    y = (x - mean) / sqrt(var + eps), mean/var over the valid samples.
    """
    if lengths is None:
        lengths = torch.full((wave.shape[0],), wave.shape[1], device=wave.device)
    out = torch.zeros_like(wave)
    for i, n in enumerate(lengths.tolist()):
        x = wave[i, :n]
        out[i, :n] = (x - x.mean()) / torch.sqrt(x.var(unbiased=False) + eps)
    return out


def tiny_audio_config(
    kind: str = "wav2vec2",
    hidden: int = 32,
    layers: int = 2,
    heads: int = 2,
    intermediate: int = 64,
    conv_dim: int = 16,
) -> dict[str, Any]:
    """A random-init Wav2Vec2/HuBERT config for tests and the embedded default.

    Conv kernels (10,3,3,3,3,2,2) and strides (5,2,2,2,2,2,2) are kept so 16 kHz audio still
    gives ~50 feature frames per second (32000 samples -> 99 frames).
    """
    return {
        "model_type": kind,
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": intermediate,
        "conv_dim": [conv_dim] * 7,
        "conv_kernel": [10, 3, 3, 3, 3, 2, 2],
        "conv_stride": [5, 2, 2, 2, 2, 2, 2],
        "num_conv_pos_embeddings": 16,
        "num_conv_pos_embedding_groups": 2,
        "vocab_size": 32,
    }


def build_backbone(config: dict[str, Any] | None = None, path: str | None = None) -> nn.Module:
    """A transformers ``Wav2Vec2Model`` or ``HubertModel``.

    ``path``: a local folder saved by ``save_pretrained`` (e.g. facebook/wav2vec2-base-960h or
    facebook/hubert-base-ls960 downloaded by the user); ``config``: a config dict (random init).
    HuBERT and wav2vec2 share keys and forward, so either class reproduces the official model.
    """
    from transformers import AutoConfig, HubertConfig, HubertModel, Wav2Vec2Config, Wav2Vec2Model
    from vislab.errors import InputError
    from vislab.io import require_dir

    if path:
        d = require_dir(path, "audio encoder folder")
        if not (d / "config.json").is_file():
            raise InputError(d, "not a transformers model folder (config.json missing)")
        try:
            cfg = AutoConfig.from_pretrained(str(d), local_files_only=True)
            cls = HubertModel if cfg.model_type == "hubert" else Wav2Vec2Model
            if cfg.model_type not in ("hubert", "wav2vec2"):
                raise InputError(
                    d, f"audio encoder must be wav2vec2 or hubert, got model_type={cfg.model_type!r}"
                )
            return cls.from_pretrained(str(d), local_files_only=True)
        except InputError:
            raise
        except Exception as e:  # noqa: BLE001
            raise InputError(
                d, f"cannot load audio encoder ({e.__class__.__name__}: {str(e)[:200]})"
            ) from None
    cfg = dict(config or tiny_audio_config())
    kind = cfg.pop("model_type", "wav2vec2")
    for k in ("architectures", "transformers_version", "_name_or_path"):
        cfg.pop(k, None)
    if kind == "hubert":
        return HubertModel(HubertConfig(**cfg))
    return Wav2Vec2Model(Wav2Vec2Config(**cfg))


def align_audio_to_frames(feats: torch.Tensor, feat_lengths: list[int], n_frames: list[int]) -> torch.Tensor:
    """Linear interpolation (align_corners=True) of each clip's audio features to its frame count.

    ``feats`` (B,S,A), ``feat_lengths[i]`` valid audio frames, ``n_frames[i]`` mesh frames T_i.
    Returns (B, max T_i, A), zero beyond T_i.
    """
    B, _, A = feats.shape
    out = feats.new_zeros(B, max(n_frames), A)
    for i in range(B):
        f = feats[i, : feat_lengths[i]].transpose(0, 1)[None]  # (1,A,S_i)
        out[i, : n_frames[i]] = F.interpolate(f, size=n_frames[i], mode="linear", align_corners=True)[
            0
        ].transpose(0, 1)
    return out


def demo_frame_count(n_audio_frames: int, fps: float) -> int:
    """Frames to generate without ground truth: T = int(S / 50 * fps)."""
    return max(1, int(n_audio_frames / 50 * fps))


class AudioEncoder(nn.Module):
    """Wav2Vec2/HuBERT speech encoder; the CNN waveform encoder is frozen.

    forward(wave (B,N), lengths (B,), n_frames list[T_i]) -> (B, max T_i, A).
    HF train-mode SpecAugment/LayerDrop (from the backbone config) stay active, as in the official code.
    """

    def __init__(self, backbone: nn.Module, freeze_cnn: bool = True):
        super().__init__()
        self.backbone = backbone
        self.dim = int(backbone.config.hidden_size)
        if freeze_cnn:
            for p in self.backbone.feature_extractor.parameters():
                p.requires_grad_(False)
            self.backbone.feature_extractor._requires_grad = False

    def feature_lengths(self, lengths: torch.Tensor) -> list[int]:
        """Audio frames S_i produced for ``lengths`` samples (conv arithmetic of the backbone)."""
        return [int(x) for x in self.backbone._get_feat_extract_output_lengths(lengths.cpu()).tolist()]

    def encode(
        self, wave: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, list[int]]:
        """Raw features (B,S,A) of normalised audio and the valid lengths S_i.

        Clips of different lengths never see each other's padding in evaluation: wav2vec2-base and
        HuBERT-base normalise the first conv layer with a GroupNorm over time, which would include
        the zero padding, so each clip is encoded at its own length (what the official evaluation,
        batch size 1, computes). In training (and for layer-norm backbones, whose frames are
        independent below the transformer) the padded batch goes in at once with its attention
        mask, as the official training does.
        """
        B = wave.shape[0]
        if lengths is None:
            lengths = torch.full((B,), wave.shape[1], dtype=torch.long)
        lens = [int(n) for n in lengths.tolist()]
        wave = normalize_waveform(wave[:, : max(lens)], lengths)
        flen = self.feature_lengths(lengths)
        if min(lens) == wave.shape[1]:
            return self.backbone(wave).last_hidden_state, flen
        if self.training or getattr(self.backbone.config, "feat_extract_norm", "group") == "layer":
            mask = torch.arange(wave.shape[1], device=wave.device)[None] < lengths.to(wave.device)[:, None]
            return self.backbone(wave, attention_mask=mask.long()).last_hidden_state, flen
        feats = wave.new_zeros(B, max(flen), self.dim)
        for i, n in enumerate(lens):
            feats[i, : flen[i]] = self.backbone(wave[i : i + 1, :n]).last_hidden_state[0, : flen[i]]
        return feats, flen

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor | None, n_frames: list[int]) -> torch.Tensor:
        feats, flen = self.encode(wave, lengths)
        return align_audio_to_frames(feats, flen, n_frames)


# --------------------------------------------------------------------------- biases


def alibi_slopes(n_heads: int) -> list[float]:
    """ALiBi head slopes: start = 2^(-8/H), m_h = start^(h+1); non powers of two take the
    slopes of the nearest lower power c, then every other slope of 2c (H=4: 1/4,1/16,1/64,1/256)."""

    def pow2(n: int) -> list[float]:
        start = 2.0 ** (-8.0 / n)
        return [start ** (h + 1) for h in range(n)]

    if math.log2(n_heads).is_integer():
        return pow2(n_heads)
    c = 2 ** math.floor(math.log2(n_heads))
    return pow2(c) + alibi_slopes(2 * c)[0::2][: n_heads - c]


def periodic_bias(T: int, period: int) -> torch.Tensor:
    """Bidirectional periodic distance b (T,T): b(i,j) = -floor((i-j)/p) for j<=i,
    -floor((j-i-1)/p) for j>i (zero band j in [i-p+1, i+p]; asymmetric)."""
    i = torch.arange(T)[:, None]
    j = torch.arange(T)[None, :]
    past = -torch.div(i - j, period, rounding_mode="floor")
    future = -torch.div(j - i - 1, period, rounding_mode="floor")
    return torch.where(j <= i, past, future).float()


def biased_self_attention_mask(
    n_heads: int, T: int, period: int, n_tokens: int = 2, attn_scale: float = 1.0
) -> torch.Tensor:
    """B_self (H, T, n_tokens+T): m_h * b(i,j), with ``n_tokens`` zero columns prepended for the
    style and time keys. ``attn_scale`` 0: no bias (zeros); < 0: also -inf above the diagonal
    (causal, FaceFormer style; the official code's ``tgt_attn_scale`` switch)."""
    slopes = torch.tensor(alibi_slopes(n_heads))[:, None, None]
    bias = slopes * periodic_bias(T, period)[None]
    if attn_scale == 0:
        bias = torch.zeros_like(bias)
    if attn_scale < 0:
        causal = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
        bias = bias.masked_fill(causal, float("-inf"))
    return torch.cat([torch.zeros(n_heads, T, n_tokens), bias], dim=2)


def alignment_mask(T: int, n_tokens: int = 2) -> torch.Tensor:
    """M_cross bool (T, n_tokens+T), True = blocked: frame i sees the style key, the time key and
    audio frame i only."""
    eye = torch.eye(T, dtype=torch.bool)
    return torch.cat([torch.zeros(T, n_tokens, dtype=torch.bool), ~eye], dim=1)


# --------------------------------------------------------------------------- denoiser


class PeriodicPositionalEncoding(nn.Module):
    """PPE: interleaved sin/cos code of the phase (t mod p), added to (B,T,D), then dropout.

    pe[t, 2k] = sin(phase * w_k), pe[t, 2k+1] = cos(phase * w_k), w_k = 10000^(-2k/D), phase = t mod p.
    Computed for any T on the fly (the official table stops at 5000 frames).
    """

    def __init__(self, dim: int, period: int, dropout: float = 0.1):
        super().__init__()
        self.dim, self.period = dim, period
        self.dropout = nn.Dropout(dropout)

    def code(self, T: int, device: torch.device | None = None) -> torch.Tensor:
        phase = (torch.arange(T, device=device) % self.period).float()[:, None]
        w = torch.exp(torch.arange(0, self.dim, 2, device=device).float() * (-math.log(10000.0) / self.dim))
        pe = torch.zeros(T, self.dim, device=device)
        pe[:, 0::2] = torch.sin(phase * w)
        pe[:, 1::2] = torch.cos(phase * w)[:, : self.dim // 2]
        return pe

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(x + self.code(x.shape[1], x.device)[None])


class StyleEmbedding(nn.Module):
    """Speaking-style token: s = Embedding(n_ids, L*D)[argmax one-hot] -> (B, L*D)."""

    def __init__(self, n_ids: int, dim: int):
        super().__init__()
        self.embedding = nn.Embedding(n_ids, dim)

    def forward(self, one_hot: torch.Tensor) -> torch.Tensor:
        return self.embedding(one_hot.argmax(dim=-1))


class DiffusionStepEmbedding(nn.Module):
    """Time token: e = Linear(SiLU(Linear([cos(t f), sin(t f)]))) -> (B, L*D); f_k = 10000^(-k/(A/2))."""

    def __init__(self, sin_dim: int, dim: int):
        super().__init__()
        from diffusers.models.embeddings import TimestepEmbedding, Timesteps

        self.proj = Timesteps(sin_dim, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.mlp = TimestepEmbedding(sin_dim, dim)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.proj(t).to(self.mlp.linear_1.weight.dtype))


class BiasedDecoderLayer(nn.Module):
    """Pre-norm decoder layer with prepended condition tokens c (B,2,D) (style, time; not normed).

    x += SelfAttn(q=LN1 x, kv=[c; LN1 x], float mask B_self (B*H,T,T+2))
    x += CrossAttn(q=LN2 x, kv=[c; m], mask M_cross (T,T+2))
    x += FF(LN3 x)                                   (GELU, dropout)
    """

    def __init__(self, dim: int, heads: int, ff: int, dropout: float = 0.1):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, ff), nn.GELU(), nn.Dropout(dropout), nn.Linear(ff, dim))
        self.drop1, self.drop2, self.drop3 = nn.Dropout(dropout), nn.Dropout(dropout), nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        tokens: torch.Tensor,
        self_mask: torch.Tensor,
        cross_mask: torch.Tensor,
    ) -> torch.Tensor:
        h = self.norm1(x)
        kv = torch.cat([tokens, h], dim=1)
        x = x + self.drop1(self.self_attn(h, kv, kv, attn_mask=self_mask, need_weights=False)[0])
        h = self.norm2(x)
        kv = torch.cat([tokens, memory], dim=1)
        x = x + self.drop2(self.cross_attn(h, kv, kv, attn_mask=cross_mask, need_weights=False)[0])
        return x + self.drop3(self.ff(self.norm3(x)))

    def sampling_cache(
        self, style: torch.Tensor, memory: torch.Tensor, self_mask: torch.Tensor, cross_mask: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """What :meth:`forward_cached` reuses at every denoising step (evaluation only, no dropout).

        Keys/values are rows [style, time, frames] of (B, T+2, D) buffers: the style row (self and cross)
        and the audio rows (cross) are projected here once; each step writes only the time row and, for
        the self-attention, the frame rows. style (B,D), memory (B,T,D), masks (B*H,T,T+2).
        """
        B, T, D = memory.shape
        H = self.self_attn.num_heads
        ws, bs = self.self_attn.in_proj_weight, self.self_attn.in_proj_bias
        wc, bc = self.cross_attn.in_proj_weight, self.cross_attn.in_proj_bias
        k_self = memory.new_empty(B, T + 2, 2 * D)  # [keys | values] of the self-attention
        k_self[:, 0] = F.linear(style, ws[D:], bs[D:])
        k_cross = memory.new_empty(B, T + 2, 2 * D)
        k_cross[:, 0] = F.linear(style, wc[D:], bc[D:])
        k_cross[:, 2:] = F.linear(memory, wc[D:], bc[D:])
        return {
            "self_kv": k_self,
            "cross_kv": k_cross,
            "self_mask": self_mask.view(B, H, T, T + 2),
            "cross_mask": cross_mask.view(B, H, T, T + 2),
        }

    def _attend(self, mha: nn.MultiheadAttention, q: torch.Tensor, kv: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, T, D = q.shape
        H = mha.num_heads
        k = kv[..., :D].view(B, -1, H, D // H).transpose(1, 2)
        v = kv[..., D:].view(B, -1, H, D // H).transpose(1, 2)
        o = F.scaled_dot_product_attention(q.view(B, T, H, D // H).transpose(1, 2), k, v, attn_mask=mask)
        return F.linear(o.transpose(1, 2).reshape(B, T, D), mha.out_proj.weight, mha.out_proj.bias)

    def forward_cached(self, x: torch.Tensor, time_tok: torch.Tensor, cache: dict[str, torch.Tensor]) -> torch.Tensor:
        """:meth:`forward` in evaluation with the style/audio projections of :meth:`sampling_cache`
        (the same numbers up to float rounding). x (B,T,D), time_tok (B,D) this step's time token."""
        D = x.shape[-1]
        sa, ca = self.self_attn, self.cross_attn
        h = self.norm1(x)
        qkv = F.linear(h, sa.in_proj_weight, sa.in_proj_bias)  # (B,T,3D): q | k | v of the frames
        kv = cache["self_kv"]
        kv[:, 1] = F.linear(time_tok, sa.in_proj_weight[D:], sa.in_proj_bias[D:])
        kv[:, 2:] = qkv[..., D:]
        x = x + self._attend(sa, qkv[..., :D], kv, cache["self_mask"])
        h = self.norm2(x)
        kv = cache["cross_kv"]
        kv[:, 1] = F.linear(time_tok, ca.in_proj_weight[D:], ca.in_proj_bias[D:])
        x = x + self._attend(ca, F.linear(h, ca.in_proj_weight[:D], ca.in_proj_bias[:D]), kv, cache["cross_mask"])
        return x + self.ff(self.norm3(x))


class BiasedDenoiser(nn.Module):
    """The denoiser: predicts clean offsets x0 (B,T,3V) from x_t, audio, diffusion step and style.

    h = PPE(Linear(3V->D)(x_t)); audio m = Linear(A->D)(aligned audio); per layer l the tokens
    c_l = [s_l, e_l] (chunks of the style and time embeddings); output head Linear(D->3V) zero-init.
    """

    def __init__(
        self,
        n_feats: int,
        audio_dim: int = 768,
        dim: int = 512,
        ff: int = 1024,
        heads: int = 4,
        layers: int = 1,
        dropout: float = 0.1,
        period: int = 30,
        n_styles: int = 8,
        time_sin_dim: int = 768,
        self_attn_scale: float = 1.0,
        cross_alignment: bool = True,
    ):
        super().__init__()
        self.dim, self.heads, self.layers_n, self.period = dim, heads, layers, period
        self.self_attn_scale, self.cross_alignment = self_attn_scale, cross_alignment
        self.audio_feature_map = nn.Linear(audio_dim, dim)
        self.vertice_map = nn.Linear(n_feats, dim)
        self.ppe = PeriodicPositionalEncoding(dim, period, dropout)
        self.style = StyleEmbedding(n_styles, dim * layers)
        self.time = DiffusionStepEmbedding(time_sin_dim, dim * layers)
        self.layers = nn.ModuleList(BiasedDecoderLayer(dim, heads, ff, dropout) for _ in range(layers))
        self.motion_decoder = nn.Linear(dim, n_feats)
        nn.init.zeros_(self.motion_decoder.weight)
        nn.init.zeros_(self.motion_decoder.bias)

    def masks(
        self, B: int, T: int, frame_mask: torch.Tensor | None, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Additive float masks: self (B*H,T,T+2) batch-major, cross (B*H,T,T+2); key padding -inf."""
        self_m = biased_self_attention_mask(self.heads, T, self.period, 2, self.self_attn_scale).to(device)
        self_m = self_m[None].expand(B, -1, -1, -1)
        if self.cross_alignment:
            cross = alignment_mask(T, 2).to(device)
            cross_m = torch.zeros(T, T + 2, device=device).masked_fill(cross, float("-inf"))
        else:
            cross_m = torch.zeros(T, T + 2, device=device)
        cross_m = cross_m[None, None].expand(B, self.heads, -1, -1)
        if frame_mask is not None and not bool(frame_mask.all()):
            pad = torch.cat([torch.zeros(B, 2, dtype=torch.bool, device=device), ~frame_mask.bool()], dim=1)
            pad = torch.zeros(B, 1, 1, T + 2, device=device).masked_fill(pad[:, None, None], float("-inf"))
            self_m = self_m + pad
            cross_m = cross_m + pad
        return self_m.reshape(B * self.heads, T, T + 2), cross_m.reshape(B * self.heads, T, T + 2)

    def context(self, style: torch.Tensor, T: int, frame_mask: torch.Tensor | None = None) -> dict[str, Any]:
        """What does not change between denoising steps: the masks (B*H,T,T+2), the PPE code (T,D)
        and the per-layer style tokens (B,D) each. Built once per sampled sequence."""
        B, device = style.shape[0], style.device
        self_m, cross_m = self.masks(B, T, frame_mask, device)
        styles = self.style(style).split(self.dim, dim=-1)
        return {"self_mask": self_m, "cross_mask": cross_m, "pe": self.ppe.code(T, device), "style": styles}

    def hidden(
        self, h_in: torch.Tensor, memory: torch.Tensor, time_emb: torch.Tensor, ctx: dict[str, Any]
    ) -> torch.Tensor:
        """Decoder layers on the mapped input h_in = Linear(3V->D)(x_t) (B,T,D), the mapped audio
        ``memory`` (B,T,D) and the step embedding (B, L*D) -> final hidden state (B,T,D)."""
        h = self.ppe.dropout(h_in + ctx["pe"])
        for layer, s_l, e_l in zip(self.layers, ctx["style"], time_emb.split(self.dim, dim=-1)):
            tokens = torch.stack([s_l, e_l], dim=1)  # (B,2,D) style first
            h = layer(h, memory, tokens, ctx["self_mask"], ctx["cross_mask"])
        return h

    def forward(
        self,
        x_t: torch.Tensor,
        audio: torch.Tensor,
        t: torch.Tensor,
        style: torch.Tensor,
        frame_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x_t (B,T,3V), audio (B,T,A) aligned features, t (B,) steps, style (B,n_ids) one-hot,
        frame_mask (B,T) True on valid frames -> x0_hat (B,T,3V)."""
        ctx = self.context(style, x_t.shape[1], frame_mask)
        h = self.hidden(self.vertice_map(x_t), self.audio_feature_map(audio), self.time(t), ctx)
        return self.motion_decoder(h)


# --------------------------------------------------------------------------- diffusion


def scheduler_config(train_steps: int = 1000) -> dict[str, Any]:
    """The official scheduler settings (diffusers): scaled-linear betas 0.00085..0.012, x0 prediction,
    no clipping, steps_offset 1, set_alpha_to_one False."""
    return {
        "num_train_timesteps": train_steps,
        "beta_start": 0.00085,
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "prediction_type": "sample",
        "clip_sample": False,
        "set_alpha_to_one": False,
        "steps_offset": 1,
        "timestep_spacing": "leading",
    }


def make_ddpm(train_steps: int = 1000):
    """diffusers DDPMScheduler used for training (q(x_t|x0))."""
    from diffusers import DDPMScheduler

    cfg = scheduler_config(train_steps)
    cfg.pop("set_alpha_to_one")
    return DDPMScheduler(**cfg)


def make_ddim(train_steps: int = 1000, steps: int = 50):
    """diffusers DDIMScheduler with ``steps`` inference steps (981, 961, ..., 1 for 50)."""
    from diffusers import DDIMScheduler

    s = DDIMScheduler(**scheduler_config(train_steps))
    s.set_timesteps(steps)
    return s


def ddim_step(
    sched, x0_hat: torch.Tensor, t: int, x_t: torch.Tensor, variant: str = "standard"
) -> torch.Tensor:
    """One deterministic DDIM step (eta 0) from the x0 prediction, with abar_prev = abar_{t-k} (abar_0 at the end).

    * ``standard`` (DDIM paper; diffusers >= 0.12): eps = (x_t - sqrt(abar_t) x0) / sqrt(1 - abar_t),
      x_prev = sqrt(abar_prev) x0 + sqrt(1 - abar_prev) eps.
    * ``official`` (diffusers 0.11, which the released DiffSpeaker numbers need, theEricMa/DiffSpeaker issue #16): the
      x0 prediction is used as the direction term, x_prev = (sqrt(abar_prev) + sqrt(1 - abar_prev)) x0.
    """
    if variant == "standard":
        return sched.step(x0_hat, t, x_t, eta=0.0).prev_sample
    if variant != "official":
        raise ValueError(f"ddim variant must be 'official' or 'standard', got {variant!r}")
    prev_t = t - sched.config.num_train_timesteps // sched.num_inference_steps
    a_prev = sched.alphas_cumprod[prev_t] if prev_t >= 0 else sched.final_alpha_cumprod
    a_prev = torch.as_tensor(a_prev, dtype=x0_hat.dtype, device=x0_hat.device)
    return (a_prev.sqrt() + (1 - a_prev).sqrt()) * x0_hat


def ddim_coefficients(sched, variant: str = "standard") -> list[tuple[float, float]]:
    """(a_k, b_k) per inference step k with x_prev = a_k x0_hat + b_k x_t: :func:`ddim_step` as two numbers.

    standard: a = sqrt(abar_prev) - sqrt(1 - abar_prev) sqrt(abar_t / (1 - abar_t)),
    b = sqrt((1 - abar_prev) / (1 - abar_t)); official: a = sqrt(abar_prev) + sqrt(1 - abar_prev), b = 0.
    """
    if variant not in ("standard", "official"):
        raise ValueError(f"ddim variant must be 'official' or 'standard', got {variant!r}")
    k = sched.config.num_train_timesteps // sched.num_inference_steps
    out = []
    for t in sched.timesteps.tolist():
        a_t = float(sched.alphas_cumprod[t])
        a_p = float(sched.alphas_cumprod[t - k]) if t - k >= 0 else float(sched.final_alpha_cumprod)
        if variant == "official":
            out.append((math.sqrt(a_p) + math.sqrt(1 - a_p), 0.0))
        else:
            b = math.sqrt((1 - a_p) / (1 - a_t))
            out.append((math.sqrt(a_p) - b * math.sqrt(a_t), b))
    return out


def smooth_frames(x: torch.Tensor, n_frames: list[int] | None = None) -> torch.Tensor:
    """3-tap moving average in time replacing frames 1..T_i-2 of each clip (VOCASET configs).

    x (B,T,F); ``n_frames[i]`` = valid frames T_i of clip i (default: all T). Each clip is smoothed
    on its own: frames at or beyond T_i - 1 keep their values, so padding never leaks in.
    """
    B, T = x.shape[:2]
    if T < 3:
        return x
    lens = torch.as_tensor(n_frames if n_frames is not None else [T] * B, device=x.device)
    avg = torch.cat([x[:, :1], (x[:, :-2] + x[:, 1:-1] + x[:, 2:]) / 3.0, x[:, -1:]], dim=1)
    t = torch.arange(T, device=x.device)[None]
    inner = (t >= 1) & (t <= lens[:, None] - 2)
    return torch.where(inner[..., None], avg, x)


def clip_noise(n_frames: list[int], n_feats: int, seed: int, names: list[str] | None = None) -> torch.Tensor:
    """Starting noise (B, max T_i, F) drawn per clip, so a clip's sample does not depend on its batch.

    Clip i gets N(0, I) of shape (T_i, F) from a generator seeded with ``seed`` mixed with the
    CRC-32 of ``names[i]`` (plain ``seed`` without names); zeros beyond T_i.
    """
    import zlib

    out = torch.zeros(len(n_frames), max(n_frames), n_feats)
    for i, T in enumerate(n_frames):
        s = int(seed) if names is None else (int(seed) * 1_000_003 + zlib.crc32(names[i].encode())) % 2**62
        out[i, :T] = torch.randn(T, n_feats, generator=torch.Generator().manual_seed(s))
    return out


class DiffSpeaker(nn.Module):
    """Audio encoder + biased denoiser + DDPM/DDIM: the whole DiffSpeaker model.

    ``cfg`` keys: n_feats, dim, ff, heads, layers, dropout, period, n_styles, self_attn_scale,
    cross_alignment, train_steps, offset_scale; ``audio`` is the backbone config dict.
    """

    def __init__(
        self, cfg: dict[str, Any], audio_config: dict[str, Any] | None = None, audio_path: str | None = None
    ):
        super().__init__()
        self.cfg = dict(cfg)
        backbone = build_backbone(audio_config, audio_path)
        self.audio_encoder = AudioEncoder(backbone, freeze_cnn=cfg.get("freeze_cnn", True))
        if cfg.get("gradient_checkpointing", False):
            backbone.gradient_checkpointing_enable()  # the 12-layer encoder dominates memory at paper size
        self.denoiser = BiasedDenoiser(
            n_feats=cfg["n_feats"],
            audio_dim=self.audio_encoder.dim,
            dim=cfg["dim"],
            ff=cfg["ff"],
            heads=cfg["heads"],
            layers=cfg["layers"],
            dropout=cfg.get("dropout", 0.1),
            period=cfg["period"],
            n_styles=cfg["n_styles"],
            time_sin_dim=cfg.get("time_sin_dim", 768),
            self_attn_scale=cfg.get("self_attn_scale", 1.0),
            cross_alignment=cfg.get("cross_alignment", True),
        )
        self.train_steps = int(cfg.get("train_steps", 1000))
        self.offset_scale = float(cfg.get("offset_scale", 1.0))
        self.ddpm = make_ddpm(self.train_steps)
        self.register_buffer("alphas_cumprod", self.ddpm.alphas_cumprod.clone().float(), persistent=False)

    def audio_config(self) -> dict[str, Any]:
        return self.audio_encoder.backbone.config.to_dict()

    def q_sample(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps."""
        a = self.alphas_cumprod.to(x0.device)[t].view(-1, *([1] * (x0.dim() - 1)))
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    def training_prediction(
        self, batch: dict[str, torch.Tensor], p_uncond: float = 0.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One DDPM training draw: returns (predicted offsets, target offsets), both (B,T,3V) unscaled."""
        wave = batch["audio"]
        if p_uncond > 0:
            drop = torch.rand(wave.shape[0], device=wave.device) < p_uncond
            wave = wave.masked_fill(drop[:, None], 0.0)
        n_frames = batch["n_frames"].tolist()
        audio = self.audio_encoder(wave, batch["audio_len"], n_frames)
        x0 = (batch["vertices"] - batch["template"][:, None]) * self.offset_scale
        t = torch.randint(0, self.train_steps, (x0.shape[0],), device=x0.device)
        x_t = self.q_sample(x0, torch.randn_like(x0), t)
        pred = self.denoiser(x_t, audio, t, batch["style"], batch["frame_mask"])
        return pred / self.offset_scale, x0 / self.offset_scale

    @torch.no_grad()
    def sample(
        self,
        audio: torch.Tensor,
        audio_len: torch.Tensor | None,
        n_frames: list[int],
        style: torch.Tensor,
        steps: int = 50,
        guidance: float = 0.0,
        smooth: bool = False,
        generator: torch.Generator | None = None,
        frame_mask: torch.Tensor | None = None,
        variant: str = "standard",
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """DDIM (eta 0) from N(0,I). Returns offsets (B, max T, 3V), zero beyond each clip's T_i.

        audio (B,N) 16 kHz waveforms, ``audio_len`` (B,) valid samples, ``n_frames`` T_i per clip,
        style (B,n_ids) one-hot. ``noise`` (B, max T, 3V): the starting sample (see
        :func:`clip_noise`); otherwise drawn from ``generator``. ``variant``: see :func:`ddim_step`
        ("official" reproduces the released numbers). With ``guidance`` s > 0:
        y = y_c + s (y_c - y_u), y_u conditioned on silent audio.

        The audio encoder runs once; masks, PPE, style tokens, the mapped audio and all step
        embeddings are built once per call, and so (in evaluation) are the attention keys/values of
        the style token and of the audio frames (:meth:`BiasedDecoderLayer.sampling_cache`).
        Every DDIM update is linear in x0_hat and x_t, and
        x0_hat = W_out h + b_out, Linear(3V->D)(x) = W_in x + b_in are linear too, so the loop
        carries x_t as x_t = W_out u + beta b_out + gamma x_T and feeds the denoiser
        W_in x_t + b_in = (W_in W_out) u + beta W_in b_out + gamma W_in x_T + b_in: the two
        3V-wide maps run once per call instead of once per step (the same numbers up to float
        rounding).
        """
        B = audio.shape[0]
        T = max(n_frames)
        dev = audio.device
        den = self.denoiser
        if frame_mask is None:
            frame_mask = torch.arange(T, device=dev)[None] < torch.tensor(n_frames, device=dev)[:, None]
        frame_mask = frame_mask.to(dev)
        n_feats = den.motion_decoder.out_features
        if noise is None:
            noise = torch.randn(B, T, n_feats, generator=generator, device="cpu")
        x_T = noise.to(dev, torch.float32)
        mem = den.audio_feature_map(self.audio_encoder(audio, audio_len, n_frames))
        if guidance > 0:  # conditional and silent-audio halves in one batch
            silent = self.audio_encoder(torch.zeros_like(audio), audio_len, n_frames)
            mem = torch.cat([mem, den.audio_feature_map(silent)], dim=0)
            style, frame_mask_2 = torch.cat([style, style], 0), torch.cat([frame_mask, frame_mask], 0)
        else:
            frame_mask_2 = frame_mask
        ctx = den.context(style.to(dev), T, frame_mask_2)
        caches = (
            None
            if den.training  # dropout active: the plain layers
            else [
                layer.sampling_cache(s_l, mem, ctx["self_mask"], ctx["cross_mask"])
                for layer, s_l in zip(den.layers, ctx["style"])
            ]
        )
        sched = make_ddim(self.train_steps, steps)
        coefs = ddim_coefficients(sched, variant)
        temb = den.time(sched.timesteps.to(dev))  # (steps, L*D)
        w_in, b_in = den.vertice_map.weight, den.vertice_map.bias
        w_out, b_out = den.motion_decoder.weight, den.motion_decoder.bias
        fold = w_in @ w_out  # (D,D)
        fold_b = w_in @ b_out  # (D,)
        z_T = F.linear(x_T, w_in)  # W_in x_T
        u = torch.zeros(B, T, den.dim, device=dev, dtype=z_T.dtype)
        beta, gamma = 0.0, 1.0
        n2 = mem.shape[0]
        for k, (a, b) in enumerate(coefs):
            h_in = torch.addmm(b_in + beta * fold_b, u.reshape(-1, den.dim), fold.t(), alpha=1.0)
            h_in = h_in.view(B, T, -1)
            if gamma != 0.0:
                h_in = h_in + gamma * z_T
            if n2 != B:
                h_in = torch.cat([h_in, h_in], dim=0)
            if caches is None:
                h = den.hidden(h_in, mem, temb[k].expand(n2, -1), ctx)
            else:
                h = den.ppe.dropout(h_in + ctx["pe"])
                for layer, cache, e_l in zip(den.layers, caches, temb[k].split(den.dim, dim=-1)):
                    h = layer.forward_cached(h, e_l.expand(n2, -1), cache)
            if n2 != B:
                h_c, h_u = h.chunk(2, dim=0)
                h = h_c + guidance * (h_c - h_u)
            u = a * h + b * u if b != 0.0 else a * h
            beta, gamma = a + b * beta, b * gamma
        x = F.linear(u, w_out, b_out * beta)
        if gamma != 0.0:
            x = x + gamma * x_T
        if smooth:
            x = smooth_frames(x, n_frames)
        return x * frame_mask[..., None] / self.offset_scale
