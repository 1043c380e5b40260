"""The paper's networks: two pixel-space diffusion models, the DDIM de-spoofing bridge,
the spoof noise and the two-stream DepthNet classifier.

Read top to bottom: :func:`build_unet` (``eps_G`` / ``eps_S``), :class:`DDIMBridge`
(x -> x_g), :func:`spoof_noise` (N = x - x_g), :class:`NoiseStandardizer`,
:class:`DepthNetStream` / :class:`TwoStreamDepthNet` (x, N -> depth map) and
:func:`liveness_score` (depth map -> score).

Images are float tensors in [-1, 1] everywhere in this file (``x = 2 * img - 1``).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

# --------------------------------------------------------------------------- diffusion models

#: ``google/ddpm-ema-celebahq-256``'s UNet2DModel config (ADM-style, 113.7 M parameters):
#: channels (128,128,256,256,512,512), 2 res blocks per level, self-attention at 16x16.
ADM_CELEBAHQ_256: dict[str, Any] = {
    "sample_size": 256,
    "in_channels": 3,
    "out_channels": 3,
    "block_out_channels": [128, 128, 256, 256, 512, 512],
    "layers_per_block": 2,
    "down_block_types": ["DownBlock2D", "DownBlock2D", "DownBlock2D", "DownBlock2D", "AttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D"],
    "norm_num_groups": 32,
    "norm_eps": 1e-6,
    "downsample_padding": 0,
    "flip_sin_to_cos": False,
    "freq_shift": 1,
    "act_fn": "silu",
    "time_embedding_type": "positional",
    "center_input_sample": False,
    "mid_block_scale_factor": 1,
}

#: The tiny CPU configuration (about 160 k parameters at any resolution).
TINY_UNET: dict[str, Any] = {
    "sample_size": 32,
    "in_channels": 3,
    "out_channels": 3,
    "block_out_channels": [16, 32],
    "layers_per_block": 1,
    "down_block_types": ["DownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "UpBlock2D"],
    "norm_num_groups": 8,
    "add_attention": False,
}

UNET_PRESETS = {"tiny": TINY_UNET, "adm256": ADM_CELEBAHQ_256}


def unet_config(preset: str | dict[str, Any], resolution: int | None = None, **overrides: Any) -> dict[str, Any]:
    """A UNet2DModel config from a preset name (``tiny`` / ``adm256``) or a dict, with overrides."""
    if isinstance(preset, str):
        if preset not in UNET_PRESETS:
            from vislab.errors import ConfigError

            raise ConfigError(f"unknown unet preset {preset!r} (choose from {', '.join(UNET_PRESETS)})")
        cfg = dict(UNET_PRESETS[preset])
    else:
        cfg = dict(preset)
    if resolution is not None:
        cfg["sample_size"] = int(resolution)
    cfg.update(overrides)
    return cfg


def build_unet(config: dict[str, Any]):
    """``eps_theta(x_t, t) -> eps`` as a diffusers ``UNet2DModel`` (random init).

    x_t: (B, 3, H, W) in the diffusion's data scale; t: (B,) long; output (B, 3, H, W).
    """
    from diffusers import UNet2DModel

    return UNet2DModel(**config)


def load_unet(path: str):
    """A ``UNet2DModel`` from a local diffusers folder (a pipeline folder with ``unet/`` or the unet folder itself).

    E.g. ``google/ddpm-ema-celebahq-256`` downloaded by the user. Errors name the folder.
    """
    from pathlib import Path

    from diffusers import UNet2DModel
    from vislab.errors import InputError

    p = Path(path).expanduser()
    if not p.is_dir():
        raise InputError(p, "diffusers UNet folder not found")
    sub = "unet" if (p / "unet" / "config.json").is_file() else None
    if sub is None and not (p / "config.json").is_file():
        raise InputError(p, "not a diffusers UNet2DModel folder (no config.json or unet/config.json)")
    try:
        return UNet2DModel.from_pretrained(str(p), subfolder=sub)
    except Exception as e:  # noqa: BLE001 - wrong class / corrupt weights
        raise InputError(p, f"cannot load UNet2DModel ({e.__class__.__name__}: {str(e)[:200]})") from None


def make_scheduler(num_train_timesteps: int = 1000, beta_schedule: str = "linear", beta_start: float = 1e-4, beta_end: float = 0.02):
    """The DDPM noise schedule of both models: T=1000, linear beta 1e-4 -> 0.02, eps-prediction, no clipping."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(
        num_train_timesteps=num_train_timesteps,
        beta_schedule=beta_schedule,
        beta_start=beta_start,
        beta_end=beta_end,
        prediction_type="epsilon",
        clip_sample=False,
    )


def predict_eps(unet: nn.Module, x_t: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
    """eps_theta(x_t, t) for a diffusers UNet2DModel; x_t (B,3,H,W), t scalar or (B,)."""
    if not torch.is_tensor(t):
        t = torch.full((x_t.shape[0],), int(t), device=x_t.device, dtype=torch.long)
    elif t.ndim == 0:
        t = t.expand(x_t.shape[0])
    return unet(x_t, t).sample


# --------------------------------------------------------------------------- DDIM bridge


def ddim_timesteps(t_star: int, steps: int) -> list[int]:
    """0 = tau_0 < tau_1 < ... < tau_K = t_star, uniformly spaced (rounded), strictly increasing."""
    if steps < 1:
        raise ValueError("steps must be >= 1")
    if t_star < 1:
        raise ValueError("t_star must be >= 1 timestep")
    taus = torch.linspace(0, t_star, steps + 1).round().long().tolist()
    out = [taus[0]]
    for t in taus[1:]:
        if t > out[-1]:
            out.append(t)
    return out


def ddim_move(x: torch.Tensor, eps: torch.Tensor, a_from: torch.Tensor, a_to: torch.Tensor, clamp: bool) -> torch.Tensor:
    """One deterministic DDIM (eta=0) move between noise levels.

    x0_hat = (x_tau - sqrt(1 - a_tau) eps) / sqrt(a_tau)   (optionally clamped to [-1, 1])
    x_tau' = sqrt(a_tau') x0_hat + sqrt(1 - a_tau') eps
    where a = alpha_bar. Works in both directions (encoding: tau' > tau).
    """
    x0 = (x - (1 - a_from).sqrt() * eps) / a_from.sqrt()
    if clamp:
        x0 = x0.clamp(-1, 1)
    return a_to.sqrt() * x0 + (1 - a_to).sqrt() * eps


class DDIMBridge(nn.Module):
    """The de-spoofing translator x -> x_g (genuine reconstruction).

    ``translator='ddib'`` (default, the paper's two-model bridge, DDIB of Su et al.): deterministic
    DDIM *encoding* with ``eps_S`` from t=0 to t* (eps evaluated at the current, lower tau),
    then DDIM *decoding* with ``eps_G`` from t* back to 0.
    ``translator='sdedit'``: the single-model ablation, both directions with ``eps_G``.

    Args:
        eps_g: genuine-face UNet2DModel. eps_s: spoof-face UNet2DModel (unused for sdedit).
        alphas_cumprod: (T,) alpha_bar of the training schedule.
        t_star: fraction of T (0 < t_star <= 1) where the encoder stops (t* = round(t_star * T) - 1 ... clipped to T-1).
        steps: K, DDIM steps per direction.
        clamp_encode / clamp_decode: clamp x0_hat to [-1, 1] (needed by weak, small models).

    forward(x (B,3,H,W) in [-1,1]) -> x_g (B,3,H,W).
    """

    def __init__(
        self,
        eps_g: nn.Module,
        eps_s: nn.Module | None,
        alphas_cumprod: torch.Tensor,
        t_star: float = 1.0,
        steps: int = 50,
        translator: str = "ddib",
        clamp_encode: bool = False,
        clamp_decode: bool = False,
    ):
        super().__init__()
        if translator not in ("ddib", "sdedit"):
            raise ValueError(f"translator must be 'ddib' or 'sdedit', got {translator!r}")
        if translator == "ddib" and eps_s is None:
            raise ValueError("the ddib translator needs the spoof model eps_s")
        if not 0 < t_star <= 1:
            raise ValueError(f"t_star is a fraction of T in (0, 1], got {t_star}")
        self.eps_g = eps_g
        self.eps_s = eps_s
        self.register_buffer("alphas_cumprod", alphas_cumprod.detach().float().clone(), persistent=False)
        self.t_star = float(t_star)
        self.steps = int(steps)
        self.translator = translator
        self.clamp_encode = bool(clamp_encode)
        self.clamp_decode = bool(clamp_decode)

    @property
    def num_train_timesteps(self) -> int:
        return int(self.alphas_cumprod.shape[0])

    @property
    def t_star_index(self) -> int:
        """t* as an integer timestep in [1, T-1]."""
        T = self.num_train_timesteps
        return max(1, min(T - 1, int(round(self.t_star * T))))

    def taus(self) -> list[int]:
        return ddim_timesteps(self.t_star_index, self.steps)

    def _alpha(self, tau: int, like: torch.Tensor) -> torch.Tensor:
        # alpha_bar at tau=0 of the bridge's endpoint is alpha_bar_0 (data level ~ 1 - beta_1)
        return self.alphas_cumprod[tau].to(like.device, like.dtype)

    @property
    def encoder(self) -> nn.Module:
        return self.eps_s if self.translator == "ddib" else self.eps_g

    @torch.no_grad()
    def encode(self, x: torch.Tensor, model: nn.Module | None = None) -> torch.Tensor:
        """DDIM inversion x (tau_0) -> x_{t*}; (B,3,H,W) -> (B,3,H,W)."""
        model = self.encoder if model is None else model
        taus = self.taus()
        h = x
        for lo, hi in zip(taus[:-1], taus[1:]):
            eps = predict_eps(model, h, lo)
            h = ddim_move(h, eps, self._alpha(lo, h), self._alpha(hi, h), self.clamp_encode)
        return h

    @torch.no_grad()
    def decode(self, z: torch.Tensor, model: nn.Module | None = None) -> torch.Tensor:
        """DDIM sampling x_{t*} -> x_g at tau_0; (B,3,H,W) -> (B,3,H,W)."""
        model = self.eps_g if model is None else model
        taus = self.taus()
        h = z
        for hi, lo in zip(reversed(taus[1:]), reversed(taus[:-1])):
            eps = predict_eps(model, h, hi)
            h = ddim_move(h, eps, self._alpha(hi, h), self._alpha(lo, h), self.clamp_decode)
        return h

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def describe(self) -> dict[str, Any]:
        """Everything that determines the output besides the weights (used in the cache key)."""
        return {
            "translator": self.translator,
            "t_star": self.t_star_index,
            "steps": self.steps,
            "clamp_encode": self.clamp_encode,
            "clamp_decode": self.clamp_decode,
            "T": self.num_train_timesteps,
        }

    def fingerprint(self, resolution: int | None = None) -> str:
        """``bridge_hash``: sha1 over both DMs' weights, t*, K, translator, clamps and resolution."""
        h = hashlib.sha1(json.dumps({**self.describe(), "resolution": resolution}, sort_keys=True).encode())
        models = [self.eps_g] + ([self.eps_s] if self.translator == "ddib" and self.eps_s is not None else [])
        for m in models:
            for name, t in sorted(m.state_dict().items()):
                h.update(name.encode())
                h.update(t.detach().cpu().contiguous().float().numpy().tobytes())
        h.update(self.alphas_cumprod.cpu().numpy().tobytes())
        return h.hexdigest()[:16]


def spoof_noise(x: torch.Tensor, x_g: torch.Tensor) -> torch.Tensor:
    """Spoof noise N = x - x_g; (B,3,H,W) each, same scale ([-1,1])."""
    return x - x_g


class NoiseStandardizer(nn.Module):
    """Per-channel standardisation of N with training-set statistics: (N - mu_c) / sigma_c.

    ``mode='standardize'`` (default), ``'raw'`` (identity) or ``'abs'`` (|N|, then standardised).
    Statistics are buffers (saved in checkpoints); :meth:`fit` computes them from a (B,3,H,W) tensor.
    """

    def __init__(self, channels: int = 3, mode: str = "standardize", eps: float = 1e-6):
        super().__init__()
        if mode not in ("standardize", "raw", "abs"):
            raise ValueError(f"noise mode must be standardize, raw or abs, got {mode!r}")
        self.mode = mode
        self.eps = eps
        self.register_buffer("mean", torch.zeros(channels))
        self.register_buffer("std", torch.ones(channels))

    def _pre(self, n: torch.Tensor) -> torch.Tensor:
        return n.abs() if self.mode == "abs" else n

    @torch.no_grad()
    def fit(self, noise: torch.Tensor) -> NoiseStandardizer:
        n = self._pre(noise.float())
        self.mean.copy_(n.mean(dim=(0, 2, 3)))
        self.std.copy_(n.std(dim=(0, 2, 3)).clamp_min(self.eps))
        return self

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        if self.mode == "raw":
            return noise
        n = self._pre(noise)
        return (n - self.mean.view(1, -1, 1, 1)) / self.std.view(1, -1, 1, 1)


# --------------------------------------------------------------------------- classifier


class CDConv2d(nn.Module):
    """3x3 convolution, vanilla (theta=0) or central difference (CDCN, theta=0.7).

    y = conv(x, w) - theta * x_center * sum(w)   (per output channel), padding 1.
    """

    def __init__(self, cin: int, cout: int, theta: float = 0.0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.theta = float(theta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if self.theta == 0:
            return y
        kdiff = self.conv.weight.sum(dim=(2, 3), keepdim=True)
        return y - self.theta * F.conv2d(x, kdiff)


def conv_bn_relu(cin: int, cout: int, theta: float = 0.0) -> nn.Sequential:
    """Conv3x3-BN-ReLU (the DepthNet unit)."""
    return nn.Sequential(CDConv2d(cin, cout, theta), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class DepthNetStream(nn.Module):
    """One stream of the two-stream DepthNet (Auxiliary/CDCN DepthNet layout).

    stem Conv(->w)-BN-ReLU; Block_k: Conv(->2w)-Conv(->3.06w)-Conv(->2w) + MaxPool 3x3 s2;
    multi-scale concat: each block output resized to the last block's size -> (B, 2w*n_blocks, H/2^n, W/2^n).
    Paper size: w=64, 3 blocks (128-196-128), 256 px input -> (B, 384, 32, 32).
    """

    def __init__(self, in_channels: int = 3, width: int = 64, blocks: int = 3, theta: float = 0.0):
        super().__init__()
        mid = max(1, round(width * 196 / 64))
        out = 2 * width
        self.stem = conv_bn_relu(in_channels, width, theta)
        self.blocks = nn.ModuleList()
        cin = width
        for _ in range(blocks):
            self.blocks.append(
                nn.Sequential(
                    conv_bn_relu(cin, out, theta),
                    conv_bn_relu(out, mid, theta),
                    conv_bn_relu(mid, out, theta),
                    nn.MaxPool2d(3, stride=2, padding=1),
                )
            )
            cin = out
        self.out_channels = out * blocks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        feats = []
        for b in self.blocks:
            h = b(h)
            feats.append(h)
        size = feats[-1].shape[-2:]
        return torch.cat([F.interpolate(f, size=size, mode="bilinear", align_corners=False) if f.shape[-2:] != size else f for f in feats], 1)


def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    """(B,3,H,W) RGB in [0,1] -> HSV in [0,1] (for the optional 6-channel RGB+HSV image stream)."""
    r, g, b = x.unbind(1)
    maxc, _ = x.max(1)
    minc, _ = x.min(1)
    delta = maxc - minc
    s = torch.where(maxc > 0, delta / maxc.clamp_min(1e-8), torch.zeros_like(maxc))
    d = delta.clamp_min(1e-8)
    h = torch.where(maxc == r, ((g - b) / d) % 6, torch.where(maxc == g, (b - r) / d + 2, (r - g) / d + 4))
    h = torch.where(delta > 0, h / 6, torch.zeros_like(h))
    return torch.stack([h, s, maxc], 1)


class TwoStreamDepthNet(nn.Module):
    """Two-stream DepthNet f(x, N) -> D_hat.

    Streams: image (RGB, or RGB+HSV) and standardised spoof noise, each a :class:`DepthNetStream`.
    Fusion: concat (B, 2*C, h, w) -> Conv(->128)-BN-ReLU -> Conv(->64)-BN-ReLU -> Conv(->1) (no BN/ReLU).
    ``streams='both'`` (paper), ``'rgb'`` (image only) or ``'noise'`` (noise only) for the ablations.

    forward(x (B,3,H,W) in [-1,1], n (B,3,H,W) standardised) -> D_hat (B,1,H/2^blocks,W/2^blocks).
    """

    def __init__(self, width: int = 64, blocks: int = 3, streams: str = "both", image_input: str = "rgb", theta: float = 0.0, head_width: int = 128):
        super().__init__()
        if streams not in ("both", "rgb", "noise"):
            raise ValueError(f"streams must be both, rgb or noise, got {streams!r}")
        if image_input not in ("rgb", "rgb_hsv"):
            raise ValueError(f"image_input must be rgb or rgb_hsv, got {image_input!r}")
        self.streams = streams
        self.image_input = image_input
        self.image_stream = DepthNetStream(6 if image_input == "rgb_hsv" else 3, width, blocks, theta) if streams in ("both", "rgb") else None
        self.noise_stream = DepthNetStream(3, width, blocks, theta) if streams in ("both", "noise") else None
        c = sum(s.out_channels for s in (self.image_stream, self.noise_stream) if s is not None)
        self.head = nn.Sequential(
            conv_bn_relu(c, head_width, theta),
            conv_bn_relu(head_width, head_width // 2, theta),
            nn.Conv2d(head_width // 2, 1, 3, padding=1),
        )

    def forward(self, x: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        feats = []
        if self.image_stream is not None:
            xi = x
            if self.image_input == "rgb_hsv":
                xi = torch.cat([x, rgb_to_hsv((x + 1) / 2) * 2 - 1], 1)
            feats.append(self.image_stream(xi))
        if self.noise_stream is not None:
            feats.append(self.noise_stream(n))
        return self.head(torch.cat(feats, 1))


def liveness_score(depth: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Score s = mean(D_hat) over the map, or sum(D_hat * M) / sum(M) with a face mask; (B,1,h,w) -> (B,)."""
    if mask is None:
        return depth.flatten(1).mean(1)
    m = mask.to(depth.dtype)
    if m.shape[-2:] != depth.shape[-2:]:
        m = F.interpolate(m, size=depth.shape[-2:], mode="area")
    return (depth * m).flatten(1).sum(1) / m.flatten(1).sum(1).clamp_min(1e-6)
