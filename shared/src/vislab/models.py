"""One way to get a model: ``create_clip(spec)``, ``create_sd(spec)`` and ``load_run(run_dir)``.

A *spec* says where a model comes from. It is a string or a mapping (a config section); every
package's ``clip:`` / ``sd:`` config section is one. CLIP sources:

==============  ==================================================================  ===========================
``source``      what                                                                 keys
==============  ==================================================================  ===========================
``toy``         vislab's toy CLIP from the local cache (``vislab toy pretrain clip``)  ``preset``, ``toy`` (overrides, e.g. ``seed``)
``tiny``        a random-init tiny CLIP (tests, timing)                              ``backend``, ``seed``, ``tiny`` (sizes)
``hf``          a Hugging Face ``CLIPModel.save_pretrained`` folder                  ``path``
``open_clip``   an open_clip architecture name and a local checkpoint file           ``name``, ``checkpoint``, ``open_clip`` (kwargs)
``openai``      an OpenAI ``.pt`` (TorchScript archive or OpenAI-layout state dict)  ``path``
``embedded``    the architecture recorded in a trained checkpoint, random weights    written by :func:`embedded_clip_spec`
==============  ==================================================================  ===========================

String shorthands: ``"toy"``, ``"toy:fast"``, ``"tiny"``, a folder (``hf``), a file (``openai``), or an
open_clip name given together with ``checkpoint=``. The older spellings still work: ``source: path``
with ``path`` (+ ``checkpoint``), ``source: <folder or open_clip name>`` (+ ``checkpoint``) and
``toy_preset``.

Stable Diffusion sources: ``toy`` (``preset``, ``clip``, ``toy``), ``tiny`` (``seed``, ``tiny``),
``diffusers`` (``path``: a ``save_pretrained`` folder) and ``single_file`` (``path``: an original
``.ckpt`` / ``.safetensors`` checkpoint; ``config``: a local diffusers folder of the same architecture
whose configs and tokenizer are used, since nothing is downloaded; optional ``original_config``: the
original YAML). String shorthands: ``"toy"``, ``"toy:fast"``, ``"tiny"``, a folder, a file.

Loading never trains. A toy model that is not in the cache raises :class:`VislabError` saying how to
make it; training code that may build it on first use passes ``pretrain=True``.

``load_run(run_dir)`` restores the trained model of any package's output folder: it reads the package
from ``metrics.json`` (or the folder's place under ``runs/<package>/``) and calls that package's hook
``<package>.load(run_dir)``. A package joins by defining ``load(run_dir: Path, **kwargs)`` in its
top-level module that returns its trained model in eval mode, on the CPU, without training or
downloading anything (see :func:`load_run`).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vislab.errors import ConfigError, InputError, VislabError

CLIP_SOURCES = ("toy", "tiny", "hf", "open_clip", "openai", "embedded")
SD_SOURCES = ("toy", "tiny", "diffusers", "single_file")
_FILE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".safetensors")


# --------------------------------------------------------------------------------------------
# Specs
# --------------------------------------------------------------------------------------------
def _as_dict(spec: Any, fields: dict[str, Any]) -> dict[str, Any]:
    if spec is None:
        d: dict[str, Any] = {}
    elif isinstance(spec, (str, Path)):
        d = {"source": str(spec)}
    elif isinstance(spec, Mapping):
        d = dict(spec)
    else:
        raise ConfigError(f"a model spec is a string or a mapping, not {type(spec).__name__}")
    d.update({k: v for k, v in fields.items() if v is not None})
    if "toy_preset" in d:  # older spelling
        d.setdefault("preset", d.pop("toy_preset"))
    return d


def _looks_like_path(s: str) -> bool:
    return "/" in s or "\\" in s or s.startswith((".", "~")) or s.endswith(_FILE_SUFFIXES)


def _toy_shorthand(d: dict[str, Any]) -> bool:
    src = str(d.get("source", ""))
    if src == "toy" or src.startswith("toy:"):
        if ":" in src:
            d["preset"] = src.split(":", 1)[1]
        d["source"] = "toy"
        return True
    return False


def clip_spec(spec: Any = None, **fields: Any) -> dict[str, Any]:
    """The canonical form of a CLIP spec (see the module docstring); ``fields`` are merged over it.

    Paths are checked: a folder becomes ``hf``, a file ``openai`` (``open_clip`` with a ``name``), a
    missing path an :class:`InputError` naming it.
    """
    d = _as_dict(spec, fields)
    if not d.get("source"):
        raise ConfigError("the CLIP spec needs a source: toy, tiny, a local Hugging Face CLIP folder, an OpenAI .pt file, "
                          "or an open_clip architecture name with a checkpoint")
    if _toy_shorthand(d):
        d.setdefault("preset", "default")
        d["toy"] = {**dict(d.get("toy") or {}), **({"seed": d.pop("seed")} if "seed" in d else {})}
        return d
    src = str(d["source"])
    if src in ("tiny", "embedded"):
        return d
    if src == "hf":
        _need(d, "path", "a Hugging Face CLIP folder")
        return d
    if src == "openai":
        _need(d, "path", "an OpenAI .pt file")
        return d
    if src == "open_clip":
        _need(d, "name", "an open_clip architecture name such as ViT-B-16")
        _need(d, "checkpoint", "a local checkpoint file (nothing is downloaded)")
        return d
    # older spellings: source=path with path (+ checkpoint), or source=<folder | file | open_clip name>
    target = str(d.pop("path")) if src == "path" and d.get("path") else (None if src == "path" else src)
    if target is None:
        raise ConfigError("clip.source=path needs clip.path (a local Hugging Face CLIP folder, an OpenAI .pt file, "
                          "or an open_clip architecture name with clip.checkpoint)")
    ckpt = d.get("checkpoint")
    if ckpt is not None:
        return {**d, "source": "open_clip", "name": target, "checkpoint": str(ckpt)}
    p = Path(target).expanduser()
    if p.is_dir():
        return {**d, "source": "hf", "path": str(p)}
    if p.is_file():
        return {**d, "source": "openai", "path": str(p)}
    if _looks_like_path(target):
        raise InputError(p, "CLIP folder or file not found")
    raise ConfigError(f"clip source {target!r} is none of {', '.join(CLIP_SOURCES)}, a local folder or file, "
                      f"or an open_clip architecture name with a checkpoint (nothing is downloaded)")


def sd_spec(spec: Any = None, **fields: Any) -> dict[str, Any]:
    """The canonical form of a Stable Diffusion spec (see the module docstring)."""
    d = _as_dict(spec, fields)
    if not d.get("source"):
        raise ConfigError("the Stable Diffusion spec needs a source: toy, tiny, a local diffusers folder, "
                          "or a single-file checkpoint with a config folder")
    if _toy_shorthand(d):
        d.setdefault("preset", "default")
        return d
    src = str(d["source"])
    if src == "tiny":
        return d
    if src in ("diffusers", "single_file"):
        _need(d, "path", "a diffusers folder" if src == "diffusers" else "a .ckpt / .safetensors file")
        if src == "single_file":
            _need(d, "config", "a local diffusers folder of the same architecture (its configs and tokenizer)")
        return d
    target = str(d.pop("path")) if src == "path" and d.get("path") else src
    p = Path(target).expanduser()
    if p.is_dir():
        return {**d, "source": "diffusers", "path": str(p)}
    if p.is_file():
        d = {**d, "source": "single_file", "path": str(p)}
        _need(d, "config", "a local diffusers folder of the same architecture (its configs and tokenizer)")
        return d
    if _looks_like_path(target):
        raise InputError(p, "Stable Diffusion folder or file not found")
    raise ConfigError(f"Stable Diffusion source {target!r} is none of {', '.join(SD_SOURCES)}, a local diffusers folder, "
                      f"or a single-file checkpoint (nothing is downloaded)")


def _need(d: dict[str, Any], key: str, what: str) -> None:
    if d.get(key) in (None, ""):
        raise ConfigError(f"model source {d.get('source')!r} needs {key!r}: {what}")


# --------------------------------------------------------------------------------------------
# The toy cache, read-only unless asked to pretrain
# --------------------------------------------------------------------------------------------
def _cached(name: str, root: Path | None, what: str, how: str) -> Path:
    from vislab.toy.cache import cache_root, check_marker

    folder = (root or cache_root()) / "toy" / name
    if not folder.is_dir():
        raise VislabError(f"{what} is not in the cache ({folder} does not exist); loading never trains, so make it first: "
                          f"{how} (a few minutes on a CPU), or run a package's embedded default once")
    problem = check_marker(folder)
    if problem is not None:
        raise VislabError(f"{what} in the cache is incomplete ({folder}: {problem}); rebuild it with {how}")
    return folder


def _how(kind: str, preset: str, overrides: dict[str, Any], clip: Any = None) -> str:
    if not overrides and clip is None:
        return f"`vislab toy pretrain {kind} --preset {preset}`"
    args = ", ".join([repr(preset)] + ([f"clip={str(clip)!r}"] if clip is not None else []) + [f"{k}={v!r}" for k, v in overrides.items()])
    return f"`python -c \"from vislab.toy import toy_{kind}; toy_{kind}({args})\"`"


def toy_clip_path(preset: str = "default", *, pretrain: bool = False, root: Path | None = None, **overrides: Any) -> Path:
    """The cached toy CLIP folder. With ``pretrain=False`` (the default) a missing entry is an error
    saying how to make it; with ``pretrain=True`` it is trained on first use."""
    from vislab import toy

    if pretrain:
        return toy.toy_clip(preset, root=root, **overrides)
    return _cached(toy.clip_entry(preset, **overrides), root, f"the toy CLIP (preset {preset!r})", _how("clip", preset, overrides))


def toy_sd_path(preset: str = "default", *, pretrain: bool = False, root: Path | None = None, clip: str | Path | None = None,
                **overrides: Any) -> Path:
    """The cached toy Stable Diffusion folder (see :func:`toy_clip_path`)."""
    from vislab import toy

    if pretrain:
        return toy.toy_sd(preset, root=root, clip=clip, **overrides)
    return _cached(toy.sd_entry(preset, clip, **overrides), root, f"the toy Stable Diffusion (preset {preset!r})",
                   _how("sd", preset, overrides, clip))


def pretrain_toy(spec: Any, kind: str = "clip", root: Path | None = None) -> Path | None:
    """Make sure the toy model a spec names is in the cache, training it on first use (for training
    code, before it builds models with the never-training factories); ``None`` for other sources."""
    if kind == "clip":
        s = clip_spec(spec)
        return toy_clip_path(str(s["preset"]), pretrain=True, root=root, **dict(s.get("toy") or {})) if s["source"] == "toy" else None
    if kind == "sd":
        s = sd_spec(spec)
        if s["source"] != "toy":
            return None
        return toy_sd_path(str(s["preset"]), pretrain=True, root=root, clip=s.get("clip"), **dict(s.get("toy") or {}))
    raise ValueError(f"kind must be 'clip' or 'sd', not {kind!r}")


# --------------------------------------------------------------------------------------------
# Factories
# --------------------------------------------------------------------------------------------
def create_clip(spec: Any = None, *, pretrain: bool = False, device: Any = None, root: Path | None = None, **fields: Any):
    """A :class:`vislab.clip.ClipEncoder` from a spec (see the module docstring), on ``device`` (CPU by default).

    >>> create_clip("toy")                                             # doctest: +SKIP
    >>> create_clip("/models/clip-vit-base-patch16")                  # doctest: +SKIP
    >>> create_clip("ViT-B-16", checkpoint="/models/ViT-B-16.pt")      # doctest: +SKIP
    >>> create_clip({"source": "openai", "path": "/models/ViT-B-32.pt"})  # doctest: +SKIP
    """
    from vislab.clip.encoder import _load_openai, load_clip, tiny_clip

    s = clip_spec(spec, **fields)
    src = s["source"]
    if src == "toy":
        enc = load_clip(toy_clip_path(str(s["preset"]), pretrain=pretrain, root=root, **dict(s.get("toy") or {})))
    elif src == "tiny":
        enc = tiny_clip(str(s.get("backend", "hf")), seed=int(s.get("seed", 0)), **dict(s.get("tiny") or {}))
    elif src == "hf":
        p = Path(str(s["path"])).expanduser()
        if not p.is_dir():
            raise InputError(p, "Hugging Face CLIP folder not found" if not p.exists() else "a Hugging Face CLIP is a folder, not a file")
        enc = load_clip(p)
    elif src == "open_clip":
        enc = load_clip(str(s["name"]), str(s["checkpoint"]), **dict(s.get("open_clip") or {}))
    elif src == "openai":
        enc = _load_openai(str(s["path"]))
    elif src == "embedded":
        enc = _embedded_clip(s)
    else:  # pragma: no cover - clip_spec only returns the sources above
        raise ConfigError(f"unknown CLIP source {src!r}")
    return enc.to(device) if device is not None else enc


def embedded_clip_spec(clip, spec: Any = None) -> dict[str, Any]:
    """The spec that rebuilds ``clip``'s architecture with random weights and no files (for checkpoints
    that hold every CLIP weight themselves; ``create_clip`` of it, then ``load_state_dict``)."""
    s = clip_spec(spec) if spec is not None else {}
    if s.get("source") == "tiny":
        return dict(s)
    out: dict[str, Any] = {"source": "embedded", "backend": clip.backend,
                           "mean": clip.pixel_mean.flatten().tolist(), "std": clip.pixel_std.flatten().tolist()}
    if clip.backend == "hf":
        out["config"] = clip.model.config.to_dict()
    elif s.get("source") == "open_clip":
        out.update(name=str(s["name"]), open_clip=dict(s.get("open_clip") or {}))
    else:  # an OpenAI-layout model: its tensor shapes determine the architecture
        out["openai_shapes"] = {k: list(v.shape) for k, v in clip.model.state_dict().items()}
    return out


def _embedded_clip(s: dict[str, Any]):
    import torch

    from vislab.clip.encoder import ClipEncoder

    mean, std = tuple(s["mean"]), tuple(s["std"])
    if s["backend"] == "hf":
        from transformers import CLIPConfig, CLIPModel

        return ClipEncoder(CLIPModel(CLIPConfig.from_dict(s["config"])).eval(), "hf", mean=mean, std=std)
    if s.get("openai_shapes"):
        from open_clip.model import build_model_from_openai_state_dict

        zeros = {k: torch.zeros(shape) for k, shape in s["openai_shapes"].items()}
        model = build_model_from_openai_state_dict(zeros, quick_gelu=True, cast_dtype=None).float()
        return ClipEncoder(model.eval(), "open_clip", mean=mean, std=std)
    import open_clip

    model = open_clip.create_model(str(s["name"]), pretrained=None, **dict(s.get("open_clip") or {}))
    return ClipEncoder(model.eval(), "open_clip", mean=mean, std=std)


def create_sd(spec: Any = None, *, pretrain: bool = False, device: Any = None, dtype: Any = None, root: Path | None = None,
              **fields: Any):
    """:class:`vislab.diffusion.SDComponents` from a spec (see the module docstring), in fp32 unless ``dtype``."""
    from vislab.diffusion.components import load_sd, tiny_sd

    s = sd_spec(spec, **fields)
    src = s["source"]
    if src == "toy":
        path = toy_sd_path(str(s["preset"]), pretrain=pretrain, root=root, clip=s.get("clip"), **dict(s.get("toy") or {}))
        return load_sd(path, device=device, dtype=dtype)
    if src == "tiny":
        sd = tiny_sd(seed=int(s.get("seed", 0)), **dict(s.get("tiny") or {}))
        return sd.to(device, dtype) if (device is not None or dtype is not None) else sd
    if src == "diffusers":
        return load_sd(s["path"], device=device, dtype=dtype)
    return load_single_file_sd(s["path"], s["config"], s.get("original_config"), device=device, dtype=dtype)


def load_single_file_sd(path: str | Path, config: str | Path, original_config: str | Path | None = None,
                        device: Any = None, dtype: Any = None):
    """SD components from an original single-file checkpoint (``.ckpt`` / ``.safetensors``, keys as in
    CompVis' ``model.diffusion_model.*`` / ``first_stage_model.*`` / ``cond_stage_model.*``), converted by
    diffusers' ``from_single_file``. ``config``: a local diffusers folder of the same architecture (its
    ``model_index.json``, component configs and tokenizer; weights there are not read)."""
    import torch
    from diffusers import StableDiffusionPipeline

    from vislab.diffusion.components import SDComponents

    p = Path(path).expanduser()
    if not p.is_file():
        raise InputError(p, "single-file Stable Diffusion checkpoint not found" if not p.exists() else "expected a .ckpt / .safetensors file")
    c = Path(config).expanduser()
    if not (c / "model_index.json").is_file():
        raise InputError(c, "the config of a single-file checkpoint must be a local diffusers folder with model_index.json")
    kw: dict[str, Any] = {}
    if original_config is not None:
        oc = Path(original_config).expanduser()
        if not oc.is_file():
            raise InputError(oc, "original config YAML not found")
        kw["original_config"] = str(oc)
    try:
        pipe = StableDiffusionPipeline.from_single_file(str(p), config=str(c), local_files_only=True, safety_checker=None,
                                                        requires_safety_checker=False, **kw)
    except Exception as e:  # noqa: BLE001 - diffusers raises many kinds for a foreign file
        msg = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
        raise InputError(p, f"cannot read this single-file Stable Diffusion checkpoint with the configs of {c} "
                            f"({e.__class__.__name__}: {msg})") from None
    sd = SDComponents(pipe.tokenizer, pipe.text_encoder.eval(), pipe.vae.eval(), pipe.unet.eval(), pipe.scheduler)
    return sd.to(device, dtype or torch.float32)


# --------------------------------------------------------------------------------------------
# Restoring a trained run
# --------------------------------------------------------------------------------------------
def _members() -> set[str]:
    from importlib.metadata import entry_points

    return {ep.name for ep in entry_points(group="vislab.methods")}


def run_package(run_dir: str | Path) -> str:
    """The package that wrote ``run_dir``: ``metrics.json``'s ``package``, else the folder's place
    under ``runs/<package>/`` (an interrupted run has no metrics.json yet)."""
    from vislab.io import require_dir

    d = require_dir(run_dir, "run folder")
    m = d / "metrics.json"
    if m.is_file():
        try:
            pkg = json.loads(m.read_text()).get("package")
        except (OSError, ValueError) as e:
            raise InputError(m, f"unreadable metrics.json ({e.__class__.__name__})") from None
        if pkg:
            return str(pkg)
    members = _members()
    for parent in d.resolve().parents:
        if parent.name in members:
            return parent.name
    raise InputError(d, "cannot tell which package wrote this folder (no metrics.json with 'package', and it is not "
                        "under runs/<package>/); pass package=")


def load_run(run_dir: str | Path, package: str | None = None, **kwargs: Any):
    """The trained model of a package's output folder (eval mode, CPU), via the package's ``load`` hook.

    The hook convention: the package's top-level module defines ``load(run_dir: Path, **kwargs)``
    returning its trained model, built from ``run_dir``'s ``config.yaml`` and checkpoints alone; it must
    not train anything (toy models come from the cache, see :func:`create_clip`) and raises
    :class:`InputError` naming the file that is missing or wrong. ``kwargs`` go to the hook.
    """
    from vislab.io import require_dir

    d = require_dir(run_dir, "run folder")
    pkg = package or run_package(d)
    members = _members()
    if members and pkg not in members:
        raise VislabError(f"{d}: written by {pkg!r}, which is not an installed vislab package ({', '.join(sorted(members))})")
    try:
        mod = importlib.import_module(pkg)
    except ImportError as e:
        raise VislabError(f"{d}: package {pkg!r} cannot be imported ({e})") from None
    hook = getattr(mod, "load", None)
    if not callable(hook):
        raise VislabError(f"{d}: package {pkg!r} has no load(run_dir) hook to restore its trained model")
    return hook(d, **kwargs)


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    """``config.yaml`` of a run folder (an InputError naming it when missing or unreadable)."""
    from vislab.config import read_yaml
    from vislab.io import require_dir, require_file

    f = require_file(require_dir(run_dir, "run folder") / "config.yaml", "run config")
    cfg = read_yaml(f)
    if not isinstance(cfg, dict):
        raise InputError(f, "not a run config (expected a mapping)")
    return cfg


__all__ = ["create_clip", "create_sd", "clip_spec", "sd_spec", "embedded_clip_spec", "toy_clip_path", "toy_sd_path",
           "load_single_file_sd", "pretrain_toy", "load_run", "run_package", "read_run_config", "CLIP_SOURCES", "SD_SOURCES"]
