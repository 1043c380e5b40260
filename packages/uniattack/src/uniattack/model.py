"""UniAttackDetection (Fang, Liu et al., IJCAI 2024, arXiv:2401.17699), read top to bottom.

No official model code exists; components follow the paper's description ([P] paper, [R] reconstruction,
[D] decision; every [R]/[D] item is a switch in :class:`UniAttackConfig`).

Shapes: B batch, d_v visual width, d_t text width, d_e joint width, C_u = 2 unified classes
(real, spoof), C_s = 4 specific classes (live, physical, adversarial, digital), G teacher groups,
M student context vectors.

Forward:
  1. SLPI projector g: student context ctx (M, d_t) -> visual prompts V = g(ctx) (M, d_v)
  2. CLIP image tower with V appended to its tokens -> f_v (B, d_e)
  3. SLPI meta-net h: pi = h(f_v) (B, d_t); instance context ctx_i = ctx + pi_i
  4. student prompts [SOT, ctx_i, name, ".", EOT] -> text tower -> F_s (B, C_s, d_e) (L2-normalised)
     mapping phi: flatten F_s -> Linear(C_s d_e, C_u d_e) -> U^ (B, C_u, d_e) (L2-normalised)
  5. z_u = s cos(f_v, U^) (B, C_u), z_s = s cos(f_v, F_s) (B, C_s), s = CLIP's logit scale (frozen)
  L = CE(z_u, y_bin) + lambda_s CE(z_s, y_det) + lambda_ukm L_UKM(U^, T)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

# [R] the lab's FAS template set; {} in {real, spoof}
TEACHER_TEMPLATES = (
    "This is an example of a {} face",
    "This is a {} face",
    "This is how a {} face looks like",
    "A photo of a {} face",
    "Is not this a {} face ?",
    "A printout shown to be a {} face",
)
UNIFIED_CLASSES = ("real", "spoof")  # C_u: index 0 live, 1 attack
SPECIFIC_CLASSES = ("real face", "physical attack", "adversarial attack", "digital attack")  # C_s, the detailed labels 0-3
FAMILIES = ("live", "physical", "adversarial", "digital")


@dataclass
class UniAttackConfig:
    """Hyper-parameters of the UniAttack head (CLIP backbone given separately)."""

    n_ctx: int = 16  # M [D]
    n_teacher_groups: int = 6  # G [R], first G of TEACHER_TEMPLATES
    specific_classes: tuple[str, ...] = SPECIFIC_CLASSES  # [R]
    ctx_init_std: float = 0.02
    visual_prompts: bool = True  # SLPI projector g [R]
    slpi_depth: int = 1  # 1 = shallow (appended before ln_pre); J > 1 = MaPLe-style deep prompts in the first J blocks
    meta_net: bool = True  # SLPI sample-level interaction h [R]
    meta_reduction: int = 16  # h: d_e -> d_e / r -> d_t
    mapping: bool = True  # phi [R]; False (ablation): U^ = [F_s real, normalised mean of the attack classes' F_s]
    ukm_form: str = "cosine"  # cosine | contrastive [R]
    ukm_temperature: float = 0.07
    logit_scale: float | None = None  # None: CLIP's own exp(logit_scale) (~100 for OpenAI CLIP) [P]; a number overrides it
    input_norm: str = "clip"  # clip: CLIP mean/std [P]; image: per-image, per-channel standardisation (toy default [D])
    unified_head: str = "student"  # student: z_u from the mapped student prompts U^ [P]; teacher: z_u from the mean
    #                                fixed teacher prompts only (the plain-CLIP baseline, no TSP/UKM/SLPI in the decision)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> UniAttackConfig:
        d = dict(d or {})
        known = {k: d.pop(k) for k in list(d) if k in cls.__dataclass_fields__}
        if "specific_classes" in known:
            known["specific_classes"] = tuple(known["specific_classes"])
        return cls(**known, extra=d)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("extra")
        out["specific_classes"] = list(out["specific_classes"])
        return out


# --------------------------------------------------------------------------------------
# Teacher-Student Prompts (TSP)
# --------------------------------------------------------------------------------------


@torch.no_grad()
def teacher_features(clip: nn.Module, n_groups: int, classes: tuple[str, ...] = UNIFIED_CLASSES) -> torch.Tensor:
    """Fixed teacher prompts: G templates x C_u classes through the frozen text tower, L2-normalised.

    Returns T (G, C_u, d_e).
    """
    if not 1 <= n_groups <= len(TEACHER_TEMPLATES):
        raise ValueError(f"n_teacher_groups must be in 1..{len(TEACHER_TEMPLATES)}")
    texts = [t.format(c) for t in TEACHER_TEMPLATES[:n_groups] for c in classes]
    feats = clip.encode_text(clip.tokenize(texts)).float()
    return F.normalize(feats, dim=-1).view(n_groups, len(classes), -1)


class StudentPrompts(nn.Module):
    """Learnable student prompts over the specific classes (CoOp form, CoCoOp shift).

    ``[SOT, ctx_1..ctx_M, <class name>, ".", EOT, pad]``; ctx (M, d_t) shared, init N(0, 0.02).
    ``forward(shift)`` with shift (B, d_t) -> F_s (B, C_s, d_e) L2-normalised; without shift (C_s, d_e).
    Built on :class:`vislab.clip.PromptLearner`.
    """

    def __init__(self, clip: nn.Module, classnames: tuple[str, ...], n_ctx: int, init_std: float = 0.02):
        super().__init__()
        from vislab.clip import PromptLearner

        self.learner = PromptLearner(clip, list(classnames), n_ctx=n_ctx, init_std=init_std)

    @property
    def ctx(self) -> nn.Parameter:
        return self.learner.ctx

    def forward(self, shift: torch.Tensor | None = None) -> torch.Tensor:
        return self.learner(shift, normalize=True).float()


class InteractionProjector(nn.Module):
    """SLPI projector g: Linear(d_t, d_v) on each student context vector -> visual prompt tokens (M, d_v)."""

    def __init__(self, text_width: int, vision_width: int, depth: int = 1):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(text_width, vision_width) for _ in range(max(1, depth)))

    def forward(self, ctx: torch.Tensor) -> list[torch.Tensor]:
        """ctx (M, d_t) -> list of ``depth`` prompt sets (M, d_v) (one per prompted block)."""
        return [g(ctx) for g in self.layers]


class MetaNet(nn.Module):
    """SLPI sample-level interaction h: Linear(d_e, d_e/r) -> ReLU -> Linear(d_e/r, d_t); pi = h(f_v) (B, d_t)."""

    def __init__(self, embed_dim: int, text_width: int, reduction: int = 16):
        super().__init__()
        hidden = max(1, embed_dim // reduction)
        self.net = nn.Sequential(nn.Linear(embed_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, text_width))

    def forward(self, f_v: torch.Tensor) -> torch.Tensor:
        return self.net(f_v)


class UnifiedMapping(nn.Module):
    """phi: flatten F_s (B, C_s d_e) -> Linear -> (B, C_u, d_e), L2-normalised -> U^."""

    def __init__(self, n_specific: int, n_unified: int, embed_dim: int):
        super().__init__()
        self.n_unified, self.embed_dim = n_unified, embed_dim
        self.fc = nn.Linear(n_specific * embed_dim, n_unified * embed_dim)

    def forward(self, f_s: torch.Tensor) -> torch.Tensor:
        B = f_s.shape[0]
        u = self.fc(f_s.reshape(B, -1)).view(B, self.n_unified, self.embed_dim)
        return F.normalize(u, dim=-1)


# --------------------------------------------------------------------------------------
# Image tower with SLPI visual prompts
# --------------------------------------------------------------------------------------


def encode_image_with_prompts(clip: nn.Module, pixels: torch.Tensor, prompts: list[torch.Tensor] | None) -> torch.Tensor:
    """f_v (B, d_e) from CLIP-normalised pixels with visual prompt tokens.

    ``prompts`` [V_1 .. V_J] each (M, d_v): V_1 is appended after [CLS + patches + positions] before
    ``ln_pre`` (shallow SLPI); for J > 1 the prompt slots are replaced by V_j at the input of block j
    (MaPLe-style deep prompts). ``None``: plain CLIP.
    """
    if not prompts:
        return clip.encode_image(pixels)
    if len(prompts) == 1:
        return clip.encode_image(pixels, prompt_tokens=prompts[0])
    ln_pre, blocks, _ = clip._vision_blocks()
    M = prompts[0].shape[0]
    h = ln_pre(clip.image_embeddings(pixels, prompts[0]))
    for j, blk in enumerate(blocks):
        if 0 < j < len(prompts):
            h = torch.cat([h[:, :-M], prompts[j].to(h.dtype).unsqueeze(0).expand(h.shape[0], -1, -1)], dim=1)
        h = blk(h)
    return clip.pool_image(h)


# --------------------------------------------------------------------------------------
# The whole model
# --------------------------------------------------------------------------------------


class UniAttack(nn.Module):
    """UniAttackDetection on a CLIP encoder (``vislab.clip.ClipEncoder`` interface).

    ``forward(pixels in [0,1])`` -> dict: ``z_u`` (B, 2) [0 live, 1 attack], ``z_s`` (B, C_s),
    ``u_hat`` (B, C_u, d_e), ``f_s`` (B, C_s, d_e), ``f_v`` (B, d_e).
    """

    def __init__(self, clip: nn.Module, config: UniAttackConfig | dict | None = None, finetune_image_encoder: bool = False):
        super().__init__()
        cfg = config if isinstance(config, UniAttackConfig) else UniAttackConfig.from_dict(config)
        if cfg.ukm_form not in ("cosine", "contrastive"):
            raise ValueError(f"ukm_form must be cosine or contrastive, not {cfg.ukm_form!r}")
        if cfg.input_norm not in ("clip", "image"):
            raise ValueError(f"input_norm must be clip or image, not {cfg.input_norm!r}")
        if cfg.unified_head not in ("student", "teacher"):
            raise ValueError(f"unified_head must be student or teacher, not {cfg.unified_head!r}")
        self.cfg = cfg
        self.clip = clip
        self.finetune_image_encoder = finetune_image_encoder
        d_v, d_t, d_e = int(clip.vision_width), int(clip.text_width), int(clip.embed_dim)
        self.student = StudentPrompts(clip, cfg.specific_classes, cfg.n_ctx, cfg.ctx_init_std)
        self.projector = InteractionProjector(d_t, d_v, cfg.slpi_depth) if cfg.visual_prompts else None
        self.meta = MetaNet(d_e, d_t, cfg.meta_reduction) if cfg.meta_net else None
        self.mapping = UnifiedMapping(len(cfg.specific_classes), len(UNIFIED_CLASSES), d_e) if cfg.mapping else None
        self.register_buffer("teacher", teacher_features(clip, cfg.n_teacher_groups))  # (G, C_u, d_e), fixed
        self.set_trainable()

    def set_trainable(self) -> None:
        for p in self.clip.parameters():
            p.requires_grad_(False)
        if self.finetune_image_encoder:
            for name, p in self.clip.named_parameters():
                if "vision" in name.lower() or "visual" in name.lower():
                    p.requires_grad_(True)

    def train(self, mode: bool = True):
        super().train(mode)
        if not self.finetune_image_encoder:
            self.clip.eval()
        return self

    def head_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if not n.startswith("clip.") and p.requires_grad]

    def encoder_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if n.startswith("clip.") and p.requires_grad]

    @property
    def logit_scale(self) -> torch.Tensor:
        if self.cfg.logit_scale is not None:
            return torch.tensor(float(self.cfg.logit_scale))
        return self.clip.logit_scale.detach().float()

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] -> encoder input: CLIP mean/std, or per-image per-channel standardisation
        (``input_norm: image``; removes a global colour cast / exposure, keeps the fine texture cues)."""
        if self.cfg.input_norm == "image":
            m = pixels.mean((-2, -1), keepdim=True)
            return (pixels - m) / (pixels.std((-2, -1), keepdim=True) + 1e-3)
        return self.clip.normalize(pixels)

    def forward(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.normalize(pixels)
        ctx = self.student.ctx
        vprompts = self.projector(ctx) if self.projector is not None else None
        f_v = encode_image_with_prompts(self.clip, x, vprompts).float()  # (B, d_e)
        if self.meta is not None:
            f_s = self.student(self.meta(f_v))  # (B, C_s, d_e), normalised; B x C_s prompts through the text tower
        else:  # no sample-level shift: the same C_s prompts for every image, encoded once
            f_s = self.student(None).unsqueeze(0).expand(f_v.shape[0], -1, -1)
        if self.cfg.mapping:
            u_hat = self.mapping(f_s)  # (B, C_u, d_e), normalised
        else:
            u_hat = torch.stack([f_s[:, 0], F.normalize(f_s[:, 1:].mean(1), dim=-1)], dim=1)
        img = F.normalize(f_v, dim=-1)
        s = self.logit_scale
        if self.cfg.unified_head == "teacher":  # baseline: CLIP zero-shot head from the fixed teacher prompts
            t = F.normalize(self.teacher.mean(0), dim=-1)  # (C_u, d_e)
            z_u = s * img @ t.t()
        else:
            z_u = s * torch.einsum("bd,bcd->bc", img, u_hat)
        z_s = s * torch.einsum("bd,bcd->bc", img, f_s)
        return {"z_u": z_u, "z_s": z_s, "u_hat": u_hat, "f_s": f_s, "f_v": f_v}

    @torch.no_grad()
    def scores(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        """P(live) (B,), P(attack) (B,) and the specific-class probabilities (B, C_s), in float64: with
        s = 100 a logit margin above ~100 saturates a float32 softmax to exactly 0 / 1, and tied scores
        would hide the ranking from AUC / EER and the threshold search."""
        out = self.forward(pixels)
        p = torch.softmax(out["z_u"].double(), -1)
        return {"p_live": p[:, 0], "p_attack": p[:, 1], "p_family": torch.softmax(out["z_s"].double(), -1)}


__all__ = [
    "UniAttack",
    "UniAttackConfig",
    "StudentPrompts",
    "InteractionProjector",
    "MetaNet",
    "UnifiedMapping",
    "teacher_features",
    "encode_image_with_prompts",
    "TEACHER_TEMPLATES",
    "SPECIFIC_CLASSES",
    "UNIFIED_CLASSES",
    "FAMILIES",
]
