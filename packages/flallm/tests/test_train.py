"""Lightning stages, the embedded default on a tiny budget, save/load, translate, CLI and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from vislab.errors import InputError
from vislab.testing import assert_run_contract, run_module


def test_fast_dev_run_stage1_and_stage2(cfg, tok, splits):
    import pytorch_lightning as pl
    from flallm.data import FeatureDataModule, SignDataModule
    from flallm.module import Stage1Module, Stage2Module
    from flallm.train import extract_features

    s1 = Stage1Module(cfg, tok)
    dm = SignDataModule(splits, cfg["data"], tok, 4, 4)
    kw = dict(fast_dev_run=True, accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    pl.Trainer(**kw).fit(s1, dm)
    s2 = Stage2Module(cfg, tok)
    s2.load_visual_from(s1)
    feats = {k: extract_features(s2, splits[k][:4], cfg, k) for k in ("train", "dev")}
    assert feats["train"][0]["feats"].shape[-1] == cfg["model"]["visual"]["temporal_dim"]
    pl.Trainer(**kw).fit(s2, FeatureDataModule(feats, tok, 2, 2))


def test_stage1_loss_drops_when_overfitting_one_batch(cfg, tok, splits):
    from flallm.data import SignVideoDataset, VideoCollator
    from flallm.module import Stage1Module

    torch.manual_seed(0)
    m = Stage1Module(cfg, tok)
    ds = SignVideoDataset(splits["train"][:8], cfg["data"], train=False)
    batch = VideoCollator(tok)([ds[i] for i in range(8)])
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        opt.zero_grad()
        loss = m.loss(batch)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0], losses


def test_embedded_default_tiny_budget_and_save_load(finished_run, splits, tmp_path):
    from flallm.data import SignVideoDataset, VideoCollator
    from flallm.module import Stage2Module, load_module

    out, result = finished_run
    m = assert_run_contract(out)
    assert m["metric"] == "dev_bleu4" and m["higher_is_better"]
    for k in ("dev_after_stage1", "dev_after_stage2", "dev_stage2_only", "test_stage2_only", "test_after_stage2"):
        assert set(m[k]) == {"bleu1", "bleu2", "bleu3", "bleu4", "rouge_l"}
    assert m["constant_reference"]["sentence"] in {s["text"] for s in splits["train"]}
    assert (out / "checkpoints" / "toy_backbone_seed0.pth").is_file()  # the ImageNet-style init of every arm
    for f in ("stage1.ckpt", "last.ckpt"):
        assert (out / "checkpoints" / f).is_file()
    assert (out / "dev_translations.png").is_file() and (out / "curves.png").is_file()
    # reload from the file alone and translate identically
    ck = out / "checkpoints" / "last.ckpt"
    a, b = load_module(ck), load_module(ck)
    assert isinstance(a, Stage2Module)
    ds = SignVideoDataset(splits["dev"][:3], a.config["data"], train=False)
    batch = VideoCollator(a.tok)([ds[i] for i in range(3)])
    assert a.translate_batch(batch) == b.translate_batch(batch)
    sd_a, sd_b = a.state_dict(), b.state_dict()
    assert all(torch.equal(sd_a[k], sd_b[k]) for k in sd_a)
    s1 = load_module(out / "checkpoints" / "stage1.ckpt")
    assert s1.stage == 1 and len(s1.translate_batch(batch)) == 3


def _gif(path, frames):
    Image.fromarray(frames[0]).save(path, save_all=True, append_images=[Image.fromarray(f) for f in frames[1:]], duration=40)
    return path


def test_translate_command(finished_run, splits, tmp_path, capsys):
    from flallm.cli import main

    out, _ = finished_run
    g = _gif(tmp_path / "a.gif", splits["dev"][0]["frames"])
    d = tmp_path / "frames"
    d.mkdir()
    for i, f in enumerate(splits["dev"][1]["frames"]):
        Image.fromarray(f).save(d / f"{i:04d}.png")
    rc = main(["translate", "--checkpoint", str(out / "checkpoints" / "last.ckpt"), str(g), str(d),
               "--output", str(tmp_path / "t.json"), "--pictures", str(tmp_path / "pics")])
    assert rc == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith(str(g) + "\t")
    assert (tmp_path / "t.json").is_file() and len(list((tmp_path / "pics").glob("*.png"))) == 2


def test_bad_inputs_exit_cleanly(finished_run, tmp_path, capsys):
    from flallm.cli import main

    out, _ = finished_run
    ck = str(out / "checkpoints" / "last.ckpt")
    g = _gif(tmp_path / "ok.gif", [np.zeros((32, 32, 3), np.uint8)] * 4)
    (tmp_path / "bad.mp4").write_bytes(b"garbage")
    torch.save({"state_dict": {}}, tmp_path / "foreign.ckpt")
    (tmp_path / "frames").mkdir()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "frames" / "0001.png")
    (tmp_path / "frames" / "0000.png").write_bytes(b"\x89PNG corrupt")
    (tmp_path / "trunc.ckpt").write_bytes(open(ck, "rb").read()[:1000])
    cases = [
        (["translate", "--checkpoint", str(tmp_path / "missing.ckpt"), str(g)], "not found"),
        (["translate", "--checkpoint", str(tmp_path / "foreign.ckpt"), str(g)], "not a flallm checkpoint"),
        (["translate", "--checkpoint", str(tmp_path / "trunc.ckpt"), str(g)], "cannot load"),
        (["translate", "--checkpoint", ck, str(g), str(tmp_path / "bad.mp4")], "bad.mp4: cannot read video"),
        (["translate", "--checkpoint", ck, str(tmp_path / "frames")], "0000.png: cannot read image"),
        (["translate", "--checkpoint", ck, str(tmp_path / "nothing.gif")], "video not found"),
        (["--output-dir", str(tmp_path / "r"), "--data.source", "phoenix14t", "--data.root", str(tmp_path / "none")], "not found"),
        (["--output-dir", str(tmp_path / "r2"), "--stage1.nope", "1"], "unknown key"),
    ]
    for argv, msg in cases:
        rc = main(argv)
        err = capsys.readouterr().err
        assert rc == 2 and msg in err and "Traceback" not in err, (argv, err)
    # the wrong architecture: a stage-2 checkpoint whose weights do not fit its config
    ckd = torch.load(ck, map_location="cpu", weights_only=False)
    ckd["flallm"]["config"]["model"]["visual"]["temporal_dim"] = 7
    torch.save(ckd, tmp_path / "arch.ckpt")
    from flallm.module import load_module

    with pytest.raises(InputError, match="does not match"):
        load_module(tmp_path / "arch.ckpt")
    assert not (tmp_path / "t.json").exists()


def test_help():
    from flallm.cli import main

    with pytest.raises(SystemExit) as e:
        main(["translate", "--help"])
    assert e.value.code == 0
    assert main(["--help"]) == 0
    with pytest.raises(SystemExit) as e:
        main(["trim", "--help"])
    assert e.value.code == 0


def test_resume_continues_stage2(finished_run, tiny_overrides, tmp_path):
    """--resume after stage 1 finished: stage 1 is not redone, stage 2 continues from last.ckpt."""
    import shutil

    from flallm.train import train
    from vislab.testing import make_run

    src, _ = finished_run
    out = tmp_path / "resumed"
    shutil.copytree(src, out)
    s1_before = (out / "checkpoints" / "stage1.ckpt").stat().st_mtime_ns
    step0 = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["global_step"]
    ov = tiny_overrides
    ov["stage2"]["epochs"] = 2
    ov["baseline_stage2_only"] = False
    run = make_run("flallm", out, ov)
    run.resume = True
    train(run)
    assert (out / "checkpoints" / "stage1.ckpt").stat().st_mtime_ns == s1_before
    ck = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ck["flallm"]["stage"] == 2 and ck["epoch"] == 1 and ck["global_step"] == 2 * step0
    # the resumed run reports the score measured before training, not an unmeasured 0.0
    first = json.loads((src / "metrics.json").read_text())
    (out / "checkpoints" / "before.json").write_text(json.dumps({"dev": {**first["dev_before"], "bleu4": 12.5}}))
    run = make_run("flallm", out, ov)
    run.resume = True
    train(run)
    m = json.loads((out / "metrics.json").read_text())
    assert m["before"] == 12.5 and m["dev_before"]["bleu4"] == 12.5 and "read back" in m["before_source"]
    assert first["before_source"] == "measured at the start of the run"


def test_load_run_restores_the_best_stage2_model(finished_run, splits):
    from flallm.data import SignVideoDataset, VideoCollator
    from flallm.module import Stage2Module, load_module
    from vislab.models import load_run

    out, _ = finished_run
    a = load_run(out)
    assert isinstance(a, Stage2Module) and not a.training
    b = load_module(out / "checkpoints" / "stage2-best.ckpt")
    ds = SignVideoDataset(splits["dev"][:2], a.config["data"], train=False)
    batch = VideoCollator(a.tok)([ds[i] for i in range(2)])
    assert a.translate_batch(batch) == b.translate_batch(batch)


@pytest.mark.slow
def test_fit_returns_the_trained_model_without_a_run_folder(tiny_overrides, tmp_path, monkeypatch):
    from flallm.module import Stage2Module
    from flallm.train import fit
    from vislab.config import deep_merge
    from vislab.run import load_preset

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VISLAB_CACHE", str(tmp_path / "cache"))
    cfg = deep_merge(load_preset("flallm"), {**tiny_overrides, "baseline_stage2_only": False})
    model = fit(cfg)
    assert isinstance(model, Stage2Module) and not model.training and model.stage1.stage == 1
    assert model.global_step > 0 and model.stage1.global_step > 0
    assert {p.name for p in tmp_path.iterdir()} == {"cache"}  # only the toy backbone, in the cache


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path):
    out = tmp_path / "ddp"
    r = run_module("flallm", ["--output-dir", str(out), "--trainer.strategy", "ddp", "--trainer.devices", "2",
                              "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false",
                              "--data.synthetic.n_train", "16", "--data.synthetic.n_dev", "8", "--data.synthetic.n_test", "8",
                              "--stage1.epochs", "1", "--stage2.epochs", "1", "--stage1.batch_size", "4", "--stage2.batch_size", "4",
                              "--baseline_stage2_only", "false", "--pictures.n_clips", "1"], timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert_run_contract(out)


@pytest.mark.slow
def test_embedded_default_reproduces_factorization(tmp_path):
    """The full embedded default: stage 2 clearly above chance and far above the constant-output reference."""
    from flallm.train import train
    from vislab.testing import make_run

    out = tmp_path / "default"
    train(make_run("flallm", out, {"trainer": {"enable_progress_bar": False}}))
    m = assert_run_contract(out)
    assert m["before"] < 5.0
    assert m["after"] >= 30.0
    const = m["constant_reference"]["test"]["bleu4"]
    assert m["test_after_stage2"]["bleu4"] >= const + 15.0
    assert m["test_stage2_only"]["bleu4"] > const  # the stage-2-only baseline learns something, it does not collapse
    assert m["dev_after_stage1"]["bleu4"] >= 15.0


def test_train_on_a_phoenix14t_layout(tmp_path, tiny_overrides):
    """The whole pipeline on a tiny fake PHOENIX-2014-T folder (real layout, German language code by dataset)."""
    from flallm.train import train
    from flallm.world import make_split
    from vislab.testing import make_run

    root = tmp_path / "PHOENIX-2014-T"
    ann = root / "annotations" / "manual"
    ann.mkdir(parents=True)
    for k, (split, n) in enumerate((("train", 4), ("dev", 2), ("test", 2))):
        lines = ["name|video|start|end|speaker|orth|translation"]
        for i, s in enumerate(make_split(n, seed=10 + k)):
            name = f"{split}{i}"
            d = root / "features" / "fullFrame-210x260px" / split / name
            d.mkdir(parents=True)
            for j, f in enumerate(s["frames"]):
                Image.fromarray(f).save(d / f"images{j + 1:04d}.png")
            lines.append(f"{name}|{name}/1/*.png|-1|-1|Signer01|X|{s['text']}")
        (ann / f"PHOENIX-2014-T.{split}.corpus.csv").write_text("\n".join(lines) + "\n")
    ov = tiny_overrides
    ov["data"].update(source="phoenix14t", root=str(root), lang=None)
    ov["stage1"]["batch_size"] = ov["stage2"]["batch_size"] = 2
    ov["baseline_stage2_only"] = False
    out = tmp_path / "run"
    train(make_run("flallm", out, ov))
    m = assert_run_contract(out)
    assert "dev_after_stage2" in m
    from flallm.module import load_module

    assert load_module(out / "checkpoints" / "last.ckpt").tok.lang == "de_DE"


def test_ablation_arms_on_a_tiny_budget(tiny_overrides, tmp_path):
    """Every arm trains, is selected on dev and scored on test; the table holds mean/std and paired differences."""
    from flallm.train import train
    from vislab.testing import make_run

    ov = tiny_overrides
    ov["ablation"] = {"seeds": [0, 1]}
    out = tmp_path / "ablation"
    train(make_run("flallm", out, ov))
    m = assert_run_contract(out, pictures=False)
    a = m["ablation"]
    assert set(a["table"]) == {"constant", "stage1", "factorised", "imagenet_frozen", "end_to_end"}
    assert a["table"]["factorised"]["bleu4"]["n"] == 2 and a["paired_bleu4"]["factorised - end_to_end"]["n"] == 2
    for r in a["per_seed"]:
        assert r["factorised"]["best_epoch"] >= 0 and "bleu4" in r["end_to_end"]["test"]
    assert (out / "ablation.png").is_file()


def test_freeze_switch_and_baseline_weights(cfg, tok, tmp_path):
    """stage2.freeze_visual false trains the encoder (and its BN statistics); the stage-2-only arm starts from
    model.visual.weights instead of dropping them."""
    from flallm.module import Stage2Module
    from flallm.pretrain import save_pretrained_tiny_backbone

    w = tmp_path / "backbone.pth"
    save_pretrained_tiny_backbone(w, n_images=64, epochs=1)
    c = {**cfg, "model": {**cfg["model"], "visual": {**cfg["model"]["visual"], "weights": str(w)}}}
    frozen = Stage2Module(c, tok)
    sd = torch.load(w, weights_only=True)
    assert torch.equal(frozen.visual.backbone.net.net[0].weight, sd["net.0.weight"])
    assert not any(p.requires_grad for p in frozen.visual.parameters())
    free = Stage2Module({**c, "stage2": {**c["stage2"], "freeze_visual": False}}, tok).train()
    assert free.visual.training and all(p.requires_grad for p in free.visual.parameters())
    x = torch.rand(2, 3, 3, 32, 32)
    batch = {"frames": x, "lengths": torch.tensor([3, 2])}
    emb, _ = free.encode(batch)
    emb.sum().backward()
    assert free.visual.backbone.net.net[0].weight.grad is not None
