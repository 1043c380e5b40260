"""Build the CLIP backbone and the UniAttack model from a config; load trained checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vislab.errors import InputError


def build_model(config: dict[str, Any], clip=None):
    from uniattack.model import UniAttack

    if clip is None:  # training: vislab makes the toy CLIP on first use; loading passes the recorded CLIP
        from vislab.models import create_clip

        clip = create_clip(config["clip"], pretrain=True)
    return UniAttack(clip, config.get("model") or {}, finetune_image_encoder=bool(config.get("finetune_image_encoder", False)))


def checkpoint_meta(config: dict[str, Any], clip=None) -> dict[str, Any]:
    """What a checkpoint records besides its weights; with ``clip``, also ``clip_embedded`` (the CLIP's
    architecture, :func:`vislab.models.embedded_clip_spec`), so loading needs neither the CLIP files nor the toy cache."""
    from vislab.models import embedded_clip_spec

    extra = {} if clip is None else {"clip_embedded": embedded_clip_spec(clip, config["clip"])}
    return {**extra, "format": "uniattack-v1", "clip": dict(config["clip"]), "finetune_image_encoder": bool(config.get("finetune_image_encoder", False))}


def loaded_clip(meta: dict[str, Any], clip_path: str | None = None):
    """The CLIP of a trained checkpoint, built without training anything: the architecture recorded in
    ``clip_embedded`` (random weights, the checkpoint's own weights go over them); else the recorded
    ``clip`` spec, where a toy CLIP must already be in the cache (an error saying how to make it otherwise). ``clip_path`` replaces the recorded
    CLIP location (for a checkpoint moved between machines)."""
    from vislab.models import create_clip

    if clip_path is not None:
        return create_clip({**dict(meta["clip"]), "source": "path", "path": clip_path})
    if meta.get("clip_embedded") and meta.get("clip_weights") is not False:
        return create_clip(meta["clip_embedded"])
    return create_clip(meta["clip"])


def load_checkpoint(path: str | Path, clip_path: str | None = None):
    """Rebuild a trained UniAttack from a checkpoint written by ``uniattack`` training."""
    from vislab.io import load_torch

    ck = load_torch(path, "checkpoint")
    if not isinstance(ck, dict) or "uniattack_meta" not in ck or "state_dict" not in ck:
        raise InputError(path, "not a uniattack checkpoint (no uniattack_meta/state_dict; was it written by `uniattack`?)")
    meta = ck["uniattack_meta"]
    cfg = {"clip": meta["clip"], "model": meta.get("uniattack"), "finetune_image_encoder": meta.get("finetune_image_encoder", False)}
    state = {k[len("model."):]: v for k, v in ck["state_dict"].items() if k.startswith("model.")}
    clip = loaded_clip(meta, clip_path)
    # the CLIP gets the checkpoint's weights before the model is built on it: what the model derives from
    # the CLIP at construction (prompt token embeddings, teacher text features) then matches training
    clip_state = {k[len("clip."):]: v for k, v in state.items() if k.startswith("clip.")}
    if clip_state:
        try:
            clip.load_state_dict(clip_state, strict=False)
        except RuntimeError as e:
            raise InputError(path, f"checkpoint does not fit the recorded CLIP ({str(e).splitlines()[0][:200]})") from None
    model = build_model(cfg, clip=clip)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:
        raise InputError(path, f"checkpoint does not fit the UniAttack architecture ({str(e).splitlines()[0][:200]})") from None
    if missing or unexpected:
        raise InputError(path, f"checkpoint does not fit the UniAttack architecture (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return model.eval(), meta


def load(run_dir: str | Path, checkpoint: str | None = None):
    """The trained :class:`uniattack.model.UniAttack` of a ``uniattack`` output folder, eval mode, CPU;
    ``vislab.models.load_run``'s hook. ``checkpoint``: a file name under ``checkpoints/``; by default
    ``best.ckpt`` (lowest dev ACER, the evaluated weights), else ``last.ckpt``. Its ``checkpoint_meta`` attribute
    holds the checkpoint's record (``threshold``, ``protocol``, ``clip``, ...). The checkpoint holds every
    weight and the CLIP's architecture, so neither the original CLIP files nor the toy cache are needed;
    nothing is trained."""
    from vislab.io import require_dir

    ckdir = require_dir(run_dir, "uniattack run folder") / "checkpoints"
    if checkpoint is None:
        checkpoint = "best.ckpt" if (ckdir / "best.ckpt").is_file() else "last.ckpt"
    model, meta = load_checkpoint(ckdir / checkpoint)
    model.checkpoint_meta = meta
    return model.cpu()
