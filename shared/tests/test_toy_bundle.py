"""The bundled default toy CLIP/SD: rebuilt bit-identical to the pretrained cache, refused when altered."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("diffusers")

from vislab.errors import InputError  # noqa: E402
from vislab.toy import bundle, clip_entry, sd_entry  # noqa: E402
from vislab.toy.cache import cache_root  # noqa: E402


def _tensor_hashes(path: Path, keys: list[str] | None = None) -> dict[str, str]:
    from safetensors.torch import load_file

    sd = load_file(path)
    return {k: hashlib.sha256(sd[k].numpy().tobytes()).hexdigest() for k in (keys or sorted(sd))}


def test_bundle_covers_the_default_entries():
    m = bundle.load_manifest()
    for name in (clip_entry(), clip_entry(seed=1), sd_entry()):  # seed 1: incantations' judge
        assert name in m["entries"], f"{name}: run 'vislab toy pack' after changing a default preset"
    size = sum(f["bytes"] for e in m["entries"].values() for f in e["files"].values())
    assert size < 22e6


def test_rebuild_matches_pretrained_cache(tmp_path, monkeypatch):
    pretrained = cache_root() / "toy"
    if not all((pretrained / n).is_dir() for n in (clip_entry(), clip_entry(seed=1), sd_entry())):
        pytest.skip("the pretrained default toy CLIPs/SD are not in the cache")
    monkeypatch.setenv("VISLAB_CACHE", str(tmp_path))
    from vislab.toy import toy_clip, toy_sd

    sd_dir = toy_sd()  # rebuilds the CLIP first, then the SD, both from the bundle
    clip_dir = tmp_path / "toy" / clip_entry()
    assert sd_dir == tmp_path / "toy" / sd_entry()
    assert not (clip_dir / "world_samples.png").exists()  # not pretrained: the pictures are not shipped
    judge = toy_clip(seed=1)
    key = ["text_model.embeddings.token_embedding.weight"]
    assert _tensor_hashes(judge / "model.safetensors", key) == _tensor_hashes(pretrained / judge.name / "model.safetensors", key)
    for rel, keys in [
        (clip_dir.name + "/model.safetensors", ["text_model.embeddings.token_embedding.weight", "logit_scale",
                                                "vision_model.encoder.layers.2.mlp.fc2.weight"]),
        (sd_dir.name + "/text_encoder/model.safetensors", None),
        (sd_dir.name + "/unet/diffusion_pytorch_model.safetensors", None),
        (sd_dir.name + "/vae/diffusion_pytorch_model.safetensors", None),
    ]:
        assert _tensor_hashes(tmp_path / "toy" / rel, keys) == _tensor_hashes(pretrained / rel, keys), rel
    for rel in ["tokenizer.json", "config.json", "toy_metrics.json"]:
        assert (clip_dir / rel).read_bytes() == (pretrained / clip_dir.name / rel).read_bytes(), rel
    for rel in ["tokenizer/tokenizer.json", "scheduler/scheduler_config.json", "model_index.json"]:
        assert (sd_dir / rel).read_bytes() == (pretrained / sd_dir.name / rel).read_bytes(), rel


def test_corrupt_bundle_file_is_refused(tmp_path):
    name = sd_entry()
    shutil.copytree(bundle.BUNDLE_DIR, tmp_path / "b")
    f = tmp_path / "b" / name / "vae" / "diffusion_pytorch_model.safetensors"
    data = bytearray(f.read_bytes())
    data[-1] ^= 1  # one flipped bit in the last tensor
    f.write_bytes(bytes(data))
    with pytest.raises(InputError, match="diffusion_pytorch_model.safetensors.*SHA-256"):
        bundle.restore_sd(name, tmp_path / "unused", tmp_path / "out", bundle_dir=tmp_path / "b")
    assert not (tmp_path / "out").exists()
    (tmp_path / "b" / name / "toy_metrics.json").unlink()
    with pytest.raises(InputError, match="toy_metrics.json.*missing"):
        bundle.verify(name, tmp_path / "b")


def test_other_configs_still_pretrain():
    assert not bundle.has(clip_entry("fast")) and not bundle.has(clip_entry(steps=10))
    m = json.loads((bundle.BUNDLE_DIR / bundle.MANIFEST).read_text())
    assert m["entries"][clip_entry()]["token_embedding_rows"] < 1000
