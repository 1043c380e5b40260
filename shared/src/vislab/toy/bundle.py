"""The toy CLIP and toy SD of the ``default`` presets, shipped in the package and verified by hash.

Pretraining both default models takes over ten minutes on a 2-core CPU. The package therefore
carries their weights, and those of the ``seed=1`` default CLIP (incantations' judge), in
``vislab/toy/bundled/`` (about 21 MB) with ``manifest.json``, which
records the SHA-256 of every bundle file and the cache entry (``clip-default-<hash>``,
``sd-default-<hash>``) each one reproduces. On a cache miss for exactly such an entry,
:func:`vislab.toy.toy_clip` / :func:`vislab.toy.toy_sd` rebuild the cache folder from the bundle
in seconds instead of pretraining; any other preset or config (``fast``, other seeds or steps)
still pretrains.

What is stored and how the folder is rebuilt:

- toy CLIP: every tensor in fp32 except the token embedding, of which only the rows that differ
  from the model's seeded initialisation are kept with their indices (AdamW with no weight decay
  on embeddings never moves a row whose token the captions never use: 35 of 49,408 rows move).
  The rebuild seeds torch as pretraining does, builds the ``CLIPModel``, writes the kept rows
  back and checks the SHA-256 of the whole embedding against the manifest.
- toy SD: UNet and VAE safetensors verbatim; the text encoder is the toy CLIP's text tower.
- Tokenizers are written by the same code as pretraining; the JSON configs, ``toy_metrics.json``
  and ``failure_modes.json`` are copied. The pictures (``samples.png`` etc.) are not shipped.

A bundle file whose SHA-256 differs from the manifest is an error naming the file (never a
silent pretraining). If the rebuilt tensors differ from the recorded hashes (a torch or
transformers version that initialises differently), the rebuild is abandoned with a message and
the model is pretrained as before.

``vislab toy pack`` (:func:`pack`) regenerates the bundle from the pretrained cache entries.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

BUNDLE_DIR = Path(__file__).parent / "bundled"
MANIFEST = "manifest.json"
FORMAT = 1
EMBED = "text_model.embeddings.token_embedding.weight"
ROWS, VALUES = "token_embedding.rows", "token_embedding.values"

# small files copied verbatim from the pretrained entry (those that exist)
CLIP_COPY = ["config.json", "preprocessor_config.json", "tokenizer_config.json", "toy_metrics.json"]
SD_COPY = [
    "model_index.json", "scheduler/scheduler_config.json", "text_encoder/config.json",
    "tokenizer/tokenizer_config.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
    "vae/config.json", "vae/diffusion_pytorch_model.safetensors", "toy_metrics.json", "failure_modes.json",
]
CLIP_WEIGHTS = "model.safetensors"
SD_TEXT_WEIGHTS = "text_encoder/model.safetensors"


class BundleMismatch(RuntimeError):
    """The rebuilt tensors differ from the recorded ones (another torch/transformers init)."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tensors_sha256(tensors: dict[str, Any]) -> str:
    """SHA-256 over the sorted names, dtypes, shapes and raw bytes of a state dict."""
    h = hashlib.sha256()
    for k in sorted(tensors):
        t = tensors[k].detach().contiguous().cpu()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(-1).view(__import__("torch").uint8).numpy().tobytes())
    return h.hexdigest()


def load_manifest(bundle_dir: Path | None = None) -> dict[str, Any]:
    """The bundle's manifest (``{"entries": {}}`` if the package carries no bundle)."""
    f = (bundle_dir or BUNDLE_DIR) / MANIFEST
    if not f.is_file():
        return {"format": FORMAT, "entries": {}}
    return json.loads(f.read_text())


def has(name: str, bundle_dir: Path | None = None) -> bool:
    """Whether the bundle reproduces the cache entry ``name``."""
    return name in load_manifest(bundle_dir).get("entries", {})


def verify(name: str, bundle_dir: Path | None = None) -> dict[str, Any]:
    """Check the SHA-256 of every bundle file of entry ``name``; return the entry's manifest record.

    Raises :class:`vislab.errors.InputError` naming the first missing or altered file."""
    from vislab.errors import InputError

    bundle_dir = bundle_dir or BUNDLE_DIR
    entry = load_manifest(bundle_dir)["entries"][name]
    for rel, rec in entry["files"].items():
        p = bundle_dir / name / rel
        if not p.is_file():
            raise InputError(p, "toy model bundle file is missing (reinstall vislab or run 'vislab toy pack')")
        digest = sha256_file(p)
        if digest != rec["sha256"]:
            raise InputError(p, f"toy model bundle file has SHA-256 {digest[:16]}…, the manifest records "
                                f"{rec['sha256'][:16]}… (corrupt or altered; reinstall vislab or run 'vislab toy pack')")
    return entry


def _init_clip(cfg: dict[str, Any]):
    """The toy CLIP as pretraining initialises it (torch seeded with the preset's seed)."""
    import torch
    from transformers import CLIPModel

    from vislab.toy.clip_model import clip_config

    torch.manual_seed(cfg["seed"])
    return CLIPModel(clip_config(cfg))


# ---------------------------------------------------------------------------- rebuild


def restore_clip(name: str, cfg: dict[str, Any], out: Path, bundle_dir: Path | None = None) -> dict[str, Any]:
    """Write the toy CLIP cache folder ``name`` into ``out`` from the bundle (no training)."""
    import torch
    from safetensors.torch import load_file

    from vislab.clip import clip_tokenizer
    from vislab.toy.clip_model import tokenize

    bundle_dir = bundle_dir or BUNDLE_DIR
    entry = verify(name, bundle_dir)
    src = bundle_dir / name
    stored = load_file(src / "clip.safetensors")
    rows, values = stored.pop(ROWS), stored.pop(VALUES)
    model = _init_clip(cfg)
    state = model.state_dict()
    with torch.no_grad():
        emb = state[EMBED].clone()
        emb[rows] = values
    if tensors_sha256({EMBED: emb}) != entry["token_embedding_sha256"]:
        raise BundleMismatch("the seeded token-embedding initialisation differs from the one the bundle was packed with")
    stored[EMBED] = emb
    missing = set(state) - set(stored)
    if missing:
        raise BundleMismatch(f"bundle lacks {len(missing)} tensors, e.g. {sorted(missing)[0]}")
    model.load_state_dict(stored, strict=True)
    if tensors_sha256(model.state_dict()) != entry["tensors_sha256"]:
        raise BundleMismatch("the rebuilt toy CLIP's tensors differ from the pretrained ones")
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok = clip_tokenizer(model_max_length=cfg["context_length"])
    # pretraining tokenizes with fixed padding and truncation before saving; the fast tokenizer
    # keeps that setting and writes it into tokenizer.json, so do the same for identical files
    tokenize(tok, ["a"], cfg["context_length"])
    tok.save_pretrained(out)
    for rel in CLIP_COPY:
        if (src / rel).is_file():
            shutil.copyfile(src / rel, out / rel)
    return {}


def restore_sd(name: str, clip_dir: Path, out: Path, bundle_dir: Path | None = None) -> dict[str, Any]:
    """Write the toy SD cache folder ``name`` into ``out`` from the bundle and the toy CLIP ``clip_dir``."""
    from safetensors.torch import load_file
    from transformers import CLIPTextModel, CLIPTokenizer
    from transformers.utils import logging as hf_logging

    bundle_dir = bundle_dir or BUNDLE_DIR
    entry = verify(name, bundle_dir)
    src = bundle_dir / name
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # a CLIPModel checkpoint loaded as CLIPTextModel reports the vision keys
    try:
        text_encoder = CLIPTextModel.from_pretrained(clip_dir, local_files_only=True)
    finally:
        hf_logging.set_verbosity(verbosity)
    out.mkdir(parents=True, exist_ok=True)
    text_encoder.save_pretrained(out / "text_encoder")
    if tensors_sha256(load_file(out / SD_TEXT_WEIGHTS)) != entry["text_encoder_sha256"]:
        raise BundleMismatch(f"the text tower of {clip_dir} is not the toy SD's text encoder")
    CLIPTokenizer.from_pretrained(clip_dir, local_files_only=True).save_pretrained(out / "tokenizer")
    for rel in SD_COPY:
        if (src / rel).is_file():
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / rel, out / rel)
    for rel, sha in entry["weights_sha256"].items():  # UNet/VAE: bytes verified above; tensors load
        if tensors_sha256(load_file(out / rel)) != sha:
            raise BundleMismatch(f"{rel} does not hold the recorded tensors")
    return {}


def build_or_pretrain(name: str, restore, pretrain, out: Path) -> dict[str, Any] | None:
    """``restore(out)`` when the bundle holds ``name`` (one progress line), else ``pretrain(out)``."""
    from vislab.run import console

    if not has(name):
        return pretrain(out)
    t0 = time.time()
    try:
        restore(out)
    except BundleMismatch as e:
        console().print(f"[yellow]toy cache[/yellow]: cannot rebuild {name} from the bundled weights ({e}); pretraining it instead")
        for p in list(out.iterdir()):
            shutil.rmtree(p) if p.is_dir() else p.unlink()
        return pretrain(out)
    console().print(f"toy cache: rebuilt {name} from the bundled weights (SHA-256 verified) in {time.time() - t0:.1f} s")
    return {}


# ---------------------------------------------------------------------------- pack


# the CLIP configs packed besides the preset's own: incantations judges with an independently
# pretrained toy CLIP (``toy_clip("default", seed=1)``)
EXTRA_CLIPS: list[dict[str, Any]] = [{"seed": 1}]


def pack(preset: str = "default", root: Path | None = None, bundle_dir: Path | None = None,
         extra_clips: list[dict[str, Any]] | None = None) -> Path:
    """Write the bundle of ``preset``'s toy CLIP and toy SD, plus the CLIPs of ``extra_clips``
    (overrides; default :data:`EXTRA_CLIPS`), read from the pretrained cache entries the current
    code asks for, into ``bundle_dir`` (default: the package's ``bundled/``)."""
    import torch
    from safetensors.torch import load_file, save_file

    from vislab.errors import ConfigError
    from vislab.toy import clip_entry, clip_preset, sd_entry
    from vislab.toy.cache import cache_root, check_marker

    bundle_dir = bundle_dir or BUNDLE_DIR
    base = (root or cache_root()) / "toy"
    clip_name, sd_name = clip_entry(preset), sd_entry(preset)
    extras = EXTRA_CLIPS if extra_clips is None else extra_clips
    extra_names = [clip_entry(preset, **o) for o in extras]
    for n in (clip_name, sd_name, *extra_names):
        problem = check_marker(base / n) if (base / n).is_dir() else "absent"
        if problem:
            raise ConfigError(f"cannot pack {base / n}: {problem} (run 'vislab toy pretrain clip|sd --preset {preset}' first)")
    stage = Path(str(bundle_dir) + ".new")
    shutil.rmtree(stage, ignore_errors=True)
    entries: dict[str, Any] = {}

    # toy CLIPs: sparse token embedding
    for name, overrides in [(clip_name, {}), *zip(extra_names, extras)]:
        src = base / name
        weights = load_file(src / CLIP_WEIGHTS)
        init = _init_clip(clip_preset(preset, **overrides)).state_dict()[EMBED]
        emb = weights[EMBED]
        rows = (emb != init).any(dim=1).nonzero().flatten().to(torch.int64)
        rest = {k: v.to(torch.float32).contiguous() for k, v in weights.items() if k != EMBED}
        (stage / name).mkdir(parents=True)
        save_file({**rest, ROWS: rows, VALUES: emb[rows].contiguous()}, stage / name / "clip.safetensors")
        for rel in CLIP_COPY:
            if (src / rel).is_file():
                shutil.copyfile(src / rel, stage / name / rel)
        entries[name] = {
            "kind": "clip", "preset": preset, "overrides": overrides, "token_embedding_rows": len(rows),
            "token_embedding_sha256": tensors_sha256({EMBED: emb}), "tensors_sha256": tensors_sha256(weights),
        }
    full = load_file(base / clip_name / CLIP_WEIGHTS)

    # toy SD: UNet/VAE verbatim, text encoder = the CLIP's text tower
    src = base / sd_name
    te = load_file(src / SD_TEXT_WEIGHTS)
    if any(not torch.equal(v, full[k]) for k, v in te.items() if k in full) or not set(te) <= set(full):
        raise ConfigError(f"{src / SD_TEXT_WEIGHTS} is not the text tower of {base / clip_name}; cannot pack")
    for rel in SD_COPY:
        if (src / rel).is_file():
            (stage / sd_name / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / rel, stage / sd_name / rel)
    entries[sd_name] = {
        "kind": "sd", "preset": preset, "clip": clip_name, "text_encoder_sha256": tensors_sha256(te),
        "weights_sha256": {rel: tensors_sha256(load_file(src / rel)) for rel in SD_COPY if rel.endswith(".safetensors")},
    }
    for name, entry in entries.items():
        files = sorted(p for p in (stage / name).rglob("*") if p.is_file())
        entry["files"] = {str(p.relative_to(stage / name)): {"sha256": sha256_file(p), "bytes": p.stat().st_size} for p in files}
    (stage / MANIFEST).write_text(json.dumps({"format": FORMAT, "entries": entries}, indent=1, sort_keys=True) + "\n")
    if bundle_dir.exists():
        shutil.rmtree(bundle_dir)
    stage.rename(bundle_dir)
    return bundle_dir
