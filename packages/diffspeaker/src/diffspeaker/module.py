"""LightningModule of DiffSpeaker (one training stage), evaluation and checkpoint loading."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from vislab.errors import InputError, VislabError

from diffspeaker.data import Geometry, collate
from diffspeaker.losses import diffspeaker_loss
from diffspeaker.metrics import aggregate, lip_vertex_error, upper_face_dynamics_deviation
from diffspeaker.model import DiffSpeaker, clip_noise

CKPT_MARK = "diffspeaker_format"
FORMAT_VERSION = 1


class DiffSpeakerModule(pl.LightningModule):
    """DDPM training of :class:`DiffSpeaker` (x0 target, vertex + velocity loss), DDIM validation.

    ``model``: denoiser/diffusion sizes (n_feats, n_styles included); ``audio``: backbone config dict
    (random init) or ``audio_path``: a local transformers folder (its config is stored, so the
    checkpoint is self-contained); ``optim``: lr, weight_decay; ``loss``: w_vert, w_vel;
    ``sampling``: steps, val_steps, guidance, p_uncond, smooth, eval_seed.
    """

    def __init__(
        self,
        model: dict[str, Any],
        audio: dict[str, Any] | None = None,
        optim: dict[str, Any] | None = None,
        loss: dict[str, Any] | None = None,
        sampling: dict[str, Any] | None = None,
        audio_path: str | None = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.model = DiffSpeaker(model, audio_config=audio, audio_path=audio_path)
        self.hparams["audio"] = self.model.audio_config()
        self.hparams["audio_path"] = None  # weights now live in this module's state dict
        self.optim_cfg = {"lr": 1e-4, "weight_decay": 0.01, **(optim or {})}
        self.loss_cfg = {"w_vert": 1.0, "w_vel": 1.0, **(loss or {})}
        self.sampling = {
            "steps": 50,
            "val_steps": 50,
            "guidance": 0.0,
            "p_uncond": 0.0,
            "smooth": False,
            "eval_seed": 1234,
            "ddim_variant": "standard",
            **(sampling or {}),
        }
        self.geometry: Geometry | None = None

    # ----------------------------------------------------------------- training
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        pred, x0 = self.model.training_prediction(batch, self.sampling["p_uncond"])
        tpl = batch["template"][:, None]
        terms = diffspeaker_loss(
            pred + tpl, x0 + tpl, batch["frame_mask"], self.loss_cfg["w_vert"], self.loss_cfg["w_vel"]
        )
        if not torch.isfinite(terms["loss"]):
            raise VislabError(
                f"training loss became {terms['loss'].item()} at step {self.global_step}; lower optim.lr or set model.offset_scale"
            )
        bs = batch["audio"].shape[0]
        self.log("train/loss", terms["loss"], prog_bar=True, batch_size=bs)
        self.log("train/vertex", terms["vertex"], batch_size=bs)
        self.log("train/velocity", terms["velocity"], batch_size=bs)
        return terms["loss"]

    def configure_optimizers(self):
        params = [p for p in self.model.parameters() if p.requires_grad]
        return torch.optim.AdamW(
            params, lr=float(self.optim_cfg["lr"]), weight_decay=float(self.optim_cfg["weight_decay"])
        )

    # ----------------------------------------------------------------- evaluation
    def generate(
        self,
        batch: dict[str, Any],
        style: torch.Tensor | None = None,
        steps: int | None = None,
        seed: int | None = None,
    ) -> torch.Tensor:
        """DDIM sample vertices (B,T,3V) for a collated batch (template added, padding = template).

        Every clip starts from its own noise (seeded by ``seed`` and its name), so results do not
        depend on the batch a clip is in."""
        seed = int(self.sampling["eval_seed"] if seed is None else seed)
        n_frames = batch["n_frames"].tolist()
        noise = clip_noise(n_frames, self.model.denoiser.motion_decoder.out_features, seed, batch.get("name"))
        offs = self.model.sample(
            batch["audio"].to(self.device),
            batch["audio_len"],
            n_frames,
            (batch["style"] if style is None else style).to(self.device),
            steps=int(steps or self.sampling["steps"]),
            guidance=float(self.sampling["guidance"]),
            smooth=bool(self.sampling["smooth"]),
            frame_mask=batch["frame_mask"].to(self.device),
            variant=str(self.sampling["ddim_variant"]),
            noise=noise,
        )
        return offs + batch["template"].to(self.device)[:, None]

    def evaluate_batch(
        self, batch: dict[str, Any], steps: int | None = None, seed: int | None = None
    ) -> list[dict[str, Any]]:
        """Per sequence: LVE and FDD averaged over the styles it is generated with (its own style for
        seen subjects; every training style for unseen ones, ``batch['seen']`` False)."""
        if self.geometry is None:
            raise VislabError("evaluation needs the dataset geometry (lip and upper-face regions)")
        g = self.geometry
        B = batch["audio"].shape[0]
        n_styles = batch["style"].shape[1]
        seen = batch.get("seen", [True] * B)
        runs: dict[int, list[tuple[float, float]]] = {i: [] for i in range(B)}
        preds: dict[int, np.ndarray] = {}
        style_sets = (
            [batch["style"]] if all(seen) else [torch.eye(n_styles)[k].expand(B, -1) for k in range(n_styles)]
        )
        for style in style_sets:
            out = self.generate(batch, style, steps, seed).cpu()
            for i in range(B):
                if len(style_sets) > 1 and seen[i] and not torch.equal(style[i], batch["style"][i]):
                    continue
                T = int(batch["n_frames"][i])
                p, y = out[i, :T].numpy(), batch["vertices"][i, :T].numpy()
                tpl = batch["template"][i].numpy()
                runs[i].append(
                    (lip_vertex_error(p, y, g.lip_idx), upper_face_dynamics_deviation(p, y, tpl, g.upper_idx))
                )
                preds.setdefault(i, p)
        return [
            {
                "name": batch["name"][i],
                "frames": int(batch["n_frames"][i]),
                "LVE": float(np.mean([r[0] for r in runs[i]])),
                "FDD": float(np.mean([r[1] for r in runs[i]])),
                "pred": preds[i],
            }
            for i in range(B)
        ]

    def _eval_step(self, batch: dict[str, Any], stage: str, steps: int) -> None:
        res = self.evaluate_batch(batch, steps)
        bs = len(res)
        self.log(
            f"{stage}/LVE",
            float(np.mean([r["LVE"] for r in res])),
            batch_size=bs,
            sync_dist=True,
            prog_bar=stage == "val",
        )
        self.log(f"{stage}/FDD", float(np.mean([r["FDD"] for r in res])), batch_size=bs, sync_dist=True)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, "val", int(self.sampling["val_steps"]))

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, "test", int(self.sampling["steps"]))

    # ----------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CKPT_MARK] = FORMAT_VERSION
        if self.geometry is not None:
            checkpoint["diffspeaker_geometry"] = self.geometry.to_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if checkpoint.get("diffspeaker_geometry") is not None:
            self.geometry = Geometry.from_dict(checkpoint["diffspeaker_geometry"])


@torch.no_grad()
def evaluate(
    module: DiffSpeakerModule,
    dataset,
    steps: int | None = None,
    seed: int | None = None,
    batch_size: int = 8,
    progress: str | None = None,
) -> dict[str, Any]:
    """LVE/FDD over a dataset, aggregated as the official evaluation (style mean, then plain mean over
    sequences; the frame-weighted mean beside it). Returns metrics plus per-sequence predictions."""
    from vislab.run import track

    was_training = module.training
    module.eval()
    chunks = [list(range(i, min(i + batch_size, len(dataset)))) for i in range(0, len(dataset), batch_size)]
    it = track(chunks, progress) if progress else chunks
    results = []
    for idx in it:
        results += module.evaluate_batch(collate([dataset[i] for i in idx]), steps, seed)
    module.train(was_training)
    lve = aggregate([[r["LVE"]] for r in results], [r["frames"] for r in results])
    fdd = aggregate([[r["FDD"]] for r in results], [r["frames"] for r in results])
    return {
        "LVE": lve["mean"],
        "LVE_weighted": lve["weighted"],
        "FDD": fdd["mean"],
        "FDD_weighted": fdd["weighted"],
        "results": results,
    }


def load_checkpoint(path: str | Path, map_location: str = "cpu") -> DiffSpeakerModule:
    """A trained :class:`DiffSpeakerModule` from a Lightning checkpoint written by ``diffspeaker``.

    A missing/corrupt file, a checkpoint of another package or a state dict that does not fit the
    stored architecture raise InputError naming the file.
    """
    from vislab.io import load_torch

    ck = load_torch(path, "checkpoint", map_location=map_location)
    p = Path(path)
    if (
        not isinstance(ck, dict)
        or CKPT_MARK not in ck
        or "state_dict" not in ck
        or "hyper_parameters" not in ck
    ):
        raise InputError(
            p,
            "not a diffspeaker checkpoint (no diffspeaker hyper-parameters; was it written by `diffspeaker train`?)",
        )
    hp = dict(ck["hyper_parameters"])
    try:
        module = DiffSpeakerModule(**{k: hp.get(k) for k in ("model", "audio", "optim", "loss", "sampling")})
        module.load_state_dict(ck["state_dict"], strict=True)
    except (RuntimeError, KeyError, TypeError, ValueError) as e:
        raise InputError(
            p,
            f"checkpoint does not match the diffspeaker architecture ({e.__class__.__name__}: {str(e)[:200]})",
        ) from None
    module.on_load_checkpoint(ck)
    return module.eval()


def save_checkpoint(module: DiffSpeakerModule, path: str | Path) -> Path:
    """Write ``module`` as a checkpoint :func:`load_checkpoint` reads (atomic)."""
    from vislab.io import save_torch

    ck = {
        "state_dict": module.state_dict(),
        "hyper_parameters": dict(module.hparams),
        CKPT_MARK: FORMAT_VERSION,
    }
    module.on_save_checkpoint(ck)
    return save_torch(ck, path)


def test_seeds(runs: int) -> list[int]:
    """Seeds of the official repeated test: 1234 first, then 0, 10, 20, ..."""
    return [1234] + [10 * i for i in range(runs - 1)]


# --------------------------------------------------------------------------- official checkpoints

OFFICIAL_DATASETS = {
    "vocaset": {"period": 30, "fps": 30.0, "dim": 512, "smooth": True},
    "biwi": {"period": 25, "fps": 25.0, "dim": 1024, "smooth": False},
}


def convert_official_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename the keys of a theEricMa/DiffSpeaker Lightning checkpoint to this package's layout.

    audio_encoder.* -> model.audio_encoder.backbone.* (pos-conv weight_g/weight_v -> the weight-norm
    parametrizations of newer torch/transformers); denoiser.transformer_decoder.layers.N.{multihead_attn,
    linear1, linear2} -> model.denoiser.layers.N.{cross_attn, ff.0, ff.3}; time_embedding -> time.mlp;
    obj_vector -> style.embedding; the PPE table is dropped (computed on the fly).
    """
    out: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        if k.startswith("audio_encoder."):
            nk = "model.audio_encoder.backbone." + k[len("audio_encoder.") :]
            nk = nk.replace("conv.weight_g", "conv.parametrizations.weight.original0").replace(
                "conv.weight_v", "conv.parametrizations.weight.original1"
            )
        elif k.startswith("denoiser."):
            r = k[len("denoiser.") :]
            if r.startswith("PPE."):
                continue
            for a, b in (
                (".multihead_attn.", ".cross_attn."),
                (".linear1.", ".ff.0."),
                (".linear2.", ".ff.3."),
                ("transformer_decoder.layers.", "layers."),
                ("time_embedding.", "time.mlp."),
                ("obj_vector.", "style.embedding."),
            ):
                r = r.replace(a, b)
            nk = "model.denoiser." + r
        else:
            continue
        out[nk] = v
    return out


def from_official_checkpoint(
    path: str | Path,
    dataset: str = "vocaset",
    audio_config: dict[str, Any] | None = None,
    geometry: Geometry | None = None,
    heads: int = 4,
) -> DiffSpeakerModule:
    """A :class:`DiffSpeakerModule` from an official DiffSpeaker ``.ckpt`` (VOCASET or BIWI model).

    Sizes (3V, D, ff, layers, styles) are read from the weights; period/fps/smoothing follow the
    dataset's official config; the sampler is the official (diffusers 0.11) DDIM step. ``audio_config``
    defaults to wav2vec2-base sizes (the official code loads HuBERT into the Wav2Vec2 class too).
    """
    from vislab.io import load_torch
    from vislab.run import load_preset

    p = Path(path)
    ck = load_torch(p, "official checkpoint", foreign=True)
    sd = ck.get("state_dict", ck) if isinstance(ck, dict) else None
    if (
        not isinstance(sd, dict)
        or "denoiser.motion_decoder.weight" not in sd
        or "audio_encoder.feature_projection.projection.weight" not in sd
    ):
        raise InputError(
            p, "not an official DiffSpeaker checkpoint (no denoiser.motion_decoder / audio_encoder weights)"
        )
    if dataset not in OFFICIAL_DATASETS:
        raise VislabError(f"dataset must be vocaset or biwi, got {dataset!r}")
    ds = OFFICIAL_DATASETS[dataset]
    paper = load_preset("diffspeaker", "paper")
    n_feats, dim = sd["denoiser.motion_decoder.weight"].shape
    layers = len({k.split(".")[3] for k in sd if k.startswith("denoiser.transformer_decoder.layers.")})
    model = {
        **paper["model"],
        "n_feats": int(n_feats),
        "dim": int(dim),
        "heads": heads,
        "layers": layers,
        "period": ds["period"],
        "ff": int(sd["denoiser.transformer_decoder.layers.0.linear1.weight"].shape[0]),
        "n_styles": int(sd["denoiser.obj_vector.weight"].shape[0]),
    }
    sampling = {**paper["sampling"], "smooth": ds["smooth"], "ddim_variant": "official"}
    module = DiffSpeakerModule(
        model, audio_config or paper["audio"]["config"], paper["optim"], paper["loss"], sampling
    )
    new = convert_official_state_dict(sd)
    own = module.state_dict()
    missing = [k for k in own if k not in new]
    unexpected = [k for k in new if k not in own]
    bad = [k for k in new if k in own and new[k].shape != own[k].shape]
    if missing or unexpected or bad:
        raise InputError(
            p,
            f"weights do not fit (missing {missing[:3]}, unexpected {unexpected[:3]}, wrong shape {bad[:3]})",
        )
    module.load_state_dict(new, strict=True)
    module.geometry = geometry
    return module.eval()


def load(run_dir: str | Path, checkpoint: str = "last.ckpt") -> DiffSpeakerModule:
    """The trained model of a ``diffspeaker`` output folder (``checkpoints/<checkpoint>``), eval mode, CPU
    (``vislab.models.load_run``'s hook). The checkpoint holds the architecture and the face geometry."""
    from vislab.io import require_dir

    return load_checkpoint(require_dir(run_dir, "diffspeaker run folder") / "checkpoints" / checkpoint)
