"""vislab.models: every factory branch on tiny random-init models saved in the real formats, the toy
cache read without training, load_run dispatch; vislab.pictures."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from vislab.errors import ConfigError, InputError, VislabError
from vislab.models import (
    clip_spec,
    create_clip,
    create_sd,
    embedded_clip_spec,
    load_run,
    run_package,
    sd_spec,
)

TEXTS = ["a red circle", "a green star"]


def _same_text_features(a, b) -> None:
    with torch.no_grad():
        torch.testing.assert_close(a.encode_text(TEXTS), b.encode_text(TEXTS))
        px = torch.rand(2, 3, a.image_size, a.image_size, generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(a.encode_image(a.normalize(px)), b.encode_image(b.normalize(px)))


# ------------------------------------------------------------------------------------- specs
def test_clip_spec_vocabularies(tmp_path):
    folder = tmp_path / "clip"
    folder.mkdir()
    pt = tmp_path / "ViT-B-32.pt"
    pt.write_bytes(b"x")
    assert clip_spec("toy") == {"source": "toy", "preset": "default", "toy": {}}
    assert clip_spec("toy:fast")["preset"] == "fast"
    assert clip_spec({"source": "toy", "toy_preset": "fast", "seed": 1}) == {"source": "toy", "preset": "fast", "toy": {"seed": 1}}
    assert clip_spec(str(folder))["source"] == "hf"
    assert clip_spec({"source": "path", "path": str(folder)}) == {"source": "hf", "path": str(folder)}  # cfpl/uniattack spelling
    assert clip_spec(str(pt))["source"] == "openai"
    s = clip_spec({"source": "ViT-B-16", "checkpoint": str(pt)})  # pvlr spelling
    assert (s["source"], s["name"], s["checkpoint"]) == ("open_clip", "ViT-B-16", str(pt))
    assert clip_spec("ViT-B-16", checkpoint=str(pt))["source"] == "open_clip"
    with pytest.raises(InputError, match="not found"):
        clip_spec(str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="nothing is downloaded"):
        clip_spec("ViT-B-16")
    with pytest.raises(ConfigError, match="needs a source"):
        clip_spec({})


def test_sd_spec_vocabularies(tmp_path):
    f = tmp_path / "model.safetensors"
    f.write_bytes(b"x")
    assert sd_spec("toy:fast") == {"source": "toy", "preset": "fast"}
    assert sd_spec(str(tmp_path))["source"] == "diffusers"
    assert sd_spec(str(f), config=str(tmp_path))["source"] == "single_file"
    with pytest.raises(ConfigError, match="config"):
        sd_spec(str(f))
    with pytest.raises(InputError, match="not found"):
        sd_spec("./no/such/sd")


# ------------------------------------------------------------------------------------- CLIP branches
def test_tiny_and_hf_folder(tmp_path):
    ref = create_clip("tiny", seed=3)
    folder = ref.save(tmp_path / "clip")  # CLIPModel.save_pretrained + tokenizer
    for spec in (str(folder), {"source": "hf", "path": str(folder)}, {"source": "path", "path": str(folder)}):
        _same_text_features(create_clip(spec), ref)
    with pytest.raises(InputError, match="config.json"):
        create_clip({"source": "hf", "path": str(tmp_path)})


def test_open_clip_name_and_checkpoint(tmp_path):
    import open_clip

    cfg = {"embed_dim": 32, "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 16},
           "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 4, "layers": 2}}
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "vislab-test-tiny.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(tmp_path / "cfg")
    torch.manual_seed(0)
    model = open_clip.create_model("vislab-test-tiny", pretrained=None).eval()
    plain, training = tmp_path / "tiny.pt", tmp_path / "epoch_1.pt"
    torch.save(model.state_dict(), plain)
    torch.save({"epoch": 1, "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, training)  # open_clip's training format
    from vislab.clip import ClipEncoder

    ref = ClipEncoder(model, "open_clip")
    _same_text_features(create_clip("vislab-test-tiny", checkpoint=str(plain)), ref)
    _same_text_features(create_clip({"source": "open_clip", "name": "vislab-test-tiny", "checkpoint": str(training)}), ref)
    other = tmp_path / "other.pt"
    torch.save({"visual.conv1.weight": torch.zeros(3, 3, 3, 3)}, other)
    with pytest.raises(InputError, match="does not match"):
        create_clip("vislab-test-tiny", checkpoint=str(other))


def test_openai_pt_archive_and_state_dict(tmp_path):
    # OpenAI's architecture: 64-wide heads, QuickGELU; the file is a TorchScript archive (or its state dict)
    from open_clip.model import build_model_from_openai_state_dict

    src = create_clip("tiny", backend="open_clip", seed=1, tiny={"text_width": 64, "vision_width": 64, "heads": 1})
    model = build_model_from_openai_state_dict(dict(src.model.state_dict()), quick_gelu=True, cast_dtype=None).float().eval()
    from vislab.clip import ClipEncoder

    ref = ClipEncoder(model, "open_clip")
    archive = tmp_path / "ViT-tiny.pt"
    img, ids = torch.zeros(1, 3, 32, 32), torch.zeros(1, 32, dtype=torch.long)
    with pytest.warns():  # tracing warns about data-dependent branches
        torch.jit.trace(model, (img, ids), check_trace=False, strict=False).save(str(archive))
    state = tmp_path / "state.pt"
    torch.save(model.state_dict(), state)
    for spec in (str(archive), {"source": "openai", "path": str(state)}):
        _same_text_features(create_clip(spec), ref)
    bad = tmp_path / "bad.pt"
    torch.save({"w": torch.zeros(2)}, bad)
    with pytest.raises(InputError, match="OpenAI-layout"):
        create_clip(str(bad))


@pytest.mark.parametrize("backend", ["hf", "openai"])
def test_embedded_spec_rebuilds_the_architecture(backend):
    tiny = {"text_width": 64, "vision_width": 64, "heads": 1}
    src = create_clip("tiny", backend="hf" if backend == "hf" else "open_clip", seed=2, tiny=tiny)
    if backend == "openai":  # an OpenAI-architecture model (QuickGELU), as create_clip builds from a .pt
        from open_clip.model import build_model_from_openai_state_dict
        from vislab.clip import ClipEncoder

        src = ClipEncoder(build_model_from_openai_state_dict(dict(src.model.state_dict()), cast_dtype=None).float().eval(), "open_clip")
    spec = embedded_clip_spec(src, {"source": "hf", "path": "/x"} if backend == "hf" else {"source": "openai", "path": "/x.pt"})
    json.dumps(spec)  # storable in a checkpoint's hyper-parameters
    rebuilt = create_clip(spec)
    rebuilt.model.load_state_dict(src.model.state_dict(), strict=False)
    _same_text_features(rebuilt, src)


# ------------------------------------------------------------------------------------- toy cache: never trains
def test_missing_toy_model_says_how_to_make_it(tmp_path, monkeypatch):
    import vislab.toy.clip_model as cm
    import vislab.toy.sd_model as sm

    def no_training(*a, **k):
        raise AssertionError("loading must not train")

    monkeypatch.setattr(cm, "pretrain_clip", no_training)
    monkeypatch.setattr(sm, "pretrain_sd", no_training)
    with pytest.raises(VislabError, match=r"vislab toy pretrain clip --preset fast"):
        create_clip("toy:fast", root=tmp_path)
    with pytest.raises(VislabError, match=r"toy_clip\('default', seed=1\)"):
        create_clip({"source": "toy", "seed": 1}, root=tmp_path)
    with pytest.raises(VislabError, match=r"vislab toy pretrain sd --preset default"):
        create_sd("toy", root=tmp_path)
    assert not (tmp_path / "toy").exists()  # nothing was started


def test_cached_toy_model_loads(tmp_path):
    from vislab.toy import clip_entry, sd_entry
    from vislab.toy.cache import write_marker

    ref = create_clip("tiny", seed=4)
    entry = ref.save(tmp_path / "toy" / clip_entry("fast"))
    write_marker(entry)
    _same_text_features(create_clip("toy:fast", root=tmp_path), ref)
    (entry / "model.safetensors").write_bytes(b"torn")  # an interrupted copy
    with pytest.raises(VislabError, match="incomplete"):
        create_clip("toy:fast", root=tmp_path)
    sd_ref = create_sd("tiny", seed=1)
    sd_dir = sd_ref.save(tmp_path / "toy" / sd_entry("fast"))
    write_marker(sd_dir)
    sd = create_sd({"source": "toy", "preset": "fast"}, root=tmp_path)
    torch.testing.assert_close(sd.unet.conv_in.weight, sd_ref.unet.conv_in.weight)


# ------------------------------------------------------------------------------------- SD branches
def test_sd_tiny_and_diffusers_folder(tmp_path):
    ref = create_sd("tiny", seed=2)
    folder = ref.save(tmp_path / "sd")
    for spec in (str(folder), {"source": "diffusers", "path": str(folder)}):
        sd = create_sd(spec)
        for a, b in zip(sd.modules().values(), ref.modules().values()):
            for (ka, va), (kb, vb) in zip(sorted(a.state_dict().items()), sorted(b.state_dict().items())):
                assert ka == kb
                torch.testing.assert_close(va, vb)
    with pytest.raises(InputError, match="missing subfolder"):
        create_sd({"source": "diffusers", "path": str(tmp_path)})


# The original (CompVis LDM) key layout of SD 1.x single files, written from diffusers' documented mapping
# (diffusers reads these files; writing them is only needed to test that path).
def _resnet_to_ldm(key: str) -> str:
    for new, old in (("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"), ("conv2", "out_layers.3"),
                     ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection")):
        key = key.replace(f".{new}.", f".{old}.")
    return key


def to_ldm_checkpoint(sd) -> dict:
    """An original (CompVis LDM) single-file state dict of SD 1.x components, from their diffusers modules:
    ``model.diffusion_model.*`` (UNet), ``first_stage_model.*`` (VAE), ``cond_stage_model.transformer.*`` (text)."""
    unet, lpb = sd.unet, sd.unet.config.layers_per_block
    out = {}
    glob = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2", "conv_in": "input_blocks.0.0",
            "conv_norm_out": "out.0", "conv_out": "out.2"}
    for k, v in unet.state_dict().items():
        parts = k.split(".")
        head = ".".join(parts[:2]) if parts[0] == "time_embedding" else parts[0]
        if head in glob:
            new = glob[head] + k[len(head):]
        elif parts[0] == "down_blocks":
            b, kind, j = int(parts[1]), parts[2], int(parts[3])
            rest = ".".join(parts[4:])
            if kind == "resnets":
                new = _resnet_to_ldm(f"input_blocks.{1 + b * (lpb + 1) + j}.0.{rest}")
            elif kind == "attentions":
                new = f"input_blocks.{1 + b * (lpb + 1) + j}.1.{rest}"
            else:  # downsamplers.0.conv.*
                new = f"input_blocks.{1 + b * (lpb + 1) + lpb}.0.op.{parts[-1]}"
        elif parts[0] == "mid_block":
            kind, j, rest = parts[1], int(parts[2]), ".".join(parts[3:])
            new = _resnet_to_ldm(f"middle_block.{2 * j}.{rest}") if kind == "resnets" else f"middle_block.1.{rest}"
        elif parts[0] == "up_blocks":
            b, kind, j = int(parts[1]), parts[2], int(parts[3])
            rest = ".".join(parts[4:])
            if kind == "resnets":
                new = _resnet_to_ldm(f"output_blocks.{b * (lpb + 1) + j}.0.{rest}")
            elif kind == "attentions":
                new = f"output_blocks.{b * (lpb + 1) + j}.1.{rest}"
            else:
                has_attn = hasattr(unet.up_blocks[b], "attentions")
                new = f"output_blocks.{b * (lpb + 1) + lpb}.{2 if has_attn else 1}.conv.{parts[-1]}"
        else:
            raise KeyError(k)
        out["model.diffusion_model." + new] = v
    n_up = len(sd.vae.config.up_block_types)
    for k, v in sd.vae.state_dict().items():
        new = k.replace("conv_norm_out", "norm_out").replace("conv_shortcut", "nin_shortcut")
        p = new.split(".")
        if p[1] in ("down_blocks", "up_blocks"):
            b = int(p[2]) if p[1] == "down_blocks" else n_up - 1 - int(p[2])
            stem = "down" if p[1] == "down_blocks" else "up"
            if p[3] == "resnets":
                new = f"{p[0]}.{stem}.{b}.block.{'.'.join(p[4:])}"
            else:
                new = f"{p[0]}.{stem}.{b}.{'downsample' if stem == 'down' else 'upsample'}.conv.{p[-1]}"
        elif p[1] == "mid_block":
            if p[2] == "resnets":
                new = f"{p[0]}.mid.block_{int(p[3]) + 1}.{'.'.join(p[4:])}"
            else:
                rest = ".".join(p[4:])
                for a, b_ in (("group_norm", "norm"), ("to_q", "q"), ("to_k", "k"), ("to_v", "v"), ("to_out.0", "proj_out")):
                    if rest.startswith(a + "."):
                        rest = b_ + rest[len(a):]
                new = f"{p[0]}.mid.attn_1.{rest}"
        out["first_stage_model." + new] = v
    for k, v in sd.text_encoder.state_dict().items():
        out["cond_stage_model.transformer." + (k if k.startswith("text_model.") else "text_model." + k)] = v
    return out


def test_single_file_sd_checkpoint(tmp_path):
    import shutil

    from safetensors.torch import save_file

    ref = create_sd("tiny", seed=5)
    folder = ref.save(tmp_path / "sd")
    configs = tmp_path / "sd-configs"  # the architecture's configs and tokenizer, no weights
    shutil.copytree(folder, configs, ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))
    f = tmp_path / "v1-tiny.safetensors"
    save_file({k: v.contiguous() for k, v in to_ldm_checkpoint(ref).items()}, str(f))
    sd = create_sd({"source": "single_file", "path": str(f), "config": str(configs)})
    for name in ("unet", "vae", "text_encoder"):
        a, b = getattr(sd, name).state_dict(), getattr(ref, name).state_dict()
        assert set(a) == set(b), name
        assert all(torch.equal(a[k], b[k]) for k in b), name
    assert type(sd.scheduler).__name__ == "DDPMScheduler" and sd.tokenizer("a star").input_ids[0] == 49406


def test_single_file_sd_refuses_a_foreign_file(tmp_path):
    folder = create_sd("tiny").save(tmp_path / "sd")
    f = tmp_path / "foreign.safetensors"
    from safetensors.torch import save_file

    save_file({"some.weight": torch.zeros(2)}, str(f))
    with pytest.raises(InputError, match="single-file"):
        create_sd(str(f), config=str(folder))
    with pytest.raises(InputError, match="model_index.json"):
        create_sd(str(f), config=str(tmp_path))


# ------------------------------------------------------------------------------------- load_run
def test_load_run_dispatches_to_the_package_hook(tmp_path, monkeypatch):
    import sys
    import types

    import vislab.models as vm

    calls = []
    fake = types.ModuleType("fakepkg")
    fake.load = lambda run_dir, **kw: calls.append((run_dir, kw)) or "model"
    monkeypatch.setitem(sys.modules, "fakepkg", fake)
    monkeypatch.setattr(vm, "_members", lambda: {"fakepkg", "other"})
    run = tmp_path / "runs" / "fakepkg" / "20260101-000000"
    run.mkdir(parents=True)
    assert run_package(run) == "fakepkg"  # interrupted run: no metrics.json, told by its place
    (run / "metrics.json").write_text(json.dumps({"package": "fakepkg"}))
    assert load_run(run, device="cpu") == "model"
    assert calls == [(run, {"device": "cpu"})]
    (run / "metrics.json").write_text(json.dumps({"package": "notinstalled"}))
    with pytest.raises(VislabError, match="not an installed vislab package"):
        load_run(run)
    lone = tmp_path / "lone"
    lone.mkdir()
    with pytest.raises(InputError, match="pass package="):
        load_run(lone)
    with pytest.raises(InputError, match="not found"):
        load_run(tmp_path / "nothing")


# ------------------------------------------------------------------------------------- pictures
def test_pictures(tmp_path):
    from PIL import Image
    from vislab import pictures as P

    chw = torch.zeros(3, 4, 5)
    chw[0] = 1.0
    u = P.to_uint8(chw)
    assert u.shape == (4, 5, 3) and u[0, 0].tolist() == [255, 0, 0]
    assert P.to_uint8(torch.full((2, 2), -1.0), value_range=(-1, 1)).max() == 0
    g = P.image_grid(torch.rand(5, 3, 8, 8), ncol=3, pad=1)
    assert g.shape == (2 * 9 + 1, 3 * 9 + 1, 3) and g.dtype == np.uint8
    assert (g[-2, -2] == 255).all()  # the empty sixth cell stays white
    out = P.save_grid(tmp_path / "g.png", np.random.rand(4, 8, 8, 3), ncol=2, scale=2)
    assert Image.open(out).size == (2 * (2 * 9 + 1), 2 * (2 * 9 + 1))
    P.save_image_rows(tmp_path / "rows.png", {"before": torch.rand(2, 3, 8, 8), "after": torch.rand(3, 3, 8, 8)}, titles=["a", "b", "c"])
    P.save_captioned_grid(tmp_path / "cap.png", torch.rand(3, 3, 8, 8), ["x", "y", "z"], ncol=2)
    csv_path = tmp_path / "metrics.csv"
    csv_path.write_text("step,train/loss,val/mAP\n0,1.0,\n1,0.5,\n1,,30\n")
    assert P.read_csv_series(csv_path, "val/mAP") == ([1.0], [30.0])
    assert P.plot_csv_curves(tmp_path / "c.png", csv_path, ["train/loss"], hlines={"before": 0.9}) is not None
    assert P.plot_csv_curves(tmp_path / "none.png", csv_path, ["nothing"]) is None
    P.save_animation([np.zeros((8, 8, 3), np.uint8), np.ones((8, 8, 3))], tmp_path / "a.gif", fps=5)
    assert Image.open(tmp_path / "a.gif").n_frames == 2
    for name in ("rows.png", "cap.png", "c.png"):
        assert Image.open(tmp_path / name).size[0] > 50
    assert not list(tmp_path.glob(".*.tmp")) and not (tmp_path / "none.png").exists()
