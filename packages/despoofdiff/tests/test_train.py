"""The whole pipeline on a reduced budget: run contract, resume, predict, round trip, loss drops, DDP."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image
from vislab.testing import assert_run_contract, make_run, read_metrics, run_module


def test_embedded_default_reduced_budget(tiny_run):
    out, m = tiny_run
    assert_run_contract(out)
    assert m["metric"] == "test_acer" and m["higher_is_better"] is False
    assert 0 <= m["before"] <= 1 and 0 <= m["after"] <= 1
    for k in ("cross_hter_before", "cross_hter_after", "test_auc_after", "spoof_noise", "bridge_hash"):
        assert k in m
    assert "test_video_acer" in m["after_all"] and "cross_video_hter" in m["after_all"]  # frames averaged per video
    for pic in ("despoof_test.png", "despoof_cross.png", "roc.png", "dm_samples.png"):
        assert (out / pic).is_file()
    assert m["crossfit_folds"] == 2  # two pairs of diffusion models, each fitted outside its fold
    for fold in ("f0", "f1"):
        for stage in ("dm_genuine", "dm_spoof"):
            assert (out / "checkpoints" / "crossfit" / fold / stage / "last.ckpt").is_file()
    assert (out / "checkpoints" / "last.ckpt").is_file() and (out / "checkpoints" / "despoofdiff.ckpt").is_file()
    cached = list((out / "cache" / "noise" / m["bridge_hash"]).rglob("*.npy"))
    assert len(cached) == sum(1 for _ in cached) > 0


def test_resume_continues_and_reuses_the_noise_cache(tiny_run, tiny_cfg, tmp_path):
    import shutil

    src, m0 = tiny_run
    out = tmp_path / "resumed"
    shutil.copytree(src, out)
    cfg = {**tiny_cfg, "classifier": {**tiny_cfg["classifier"], "steps": 5}}
    run = make_run("despoofdiff", out, cfg)
    run.resume = True
    from despoofdiff.train import train

    m = train(run)
    assert m["bridge_hash"] == m0["bridge_hash"]  # DMs restored exactly from their last.ckpt
    ck = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ck["global_step"] == 5  # continued from step 3 to 5
    ck_dm = torch.load(out / "checkpoints" / "crossfit" / "f1" / "dm_genuine" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ck_dm["global_step"] == tiny_cfg["diffusion"]["steps"]  # not retrained


def test_crossfit_folds_keep_identities_together():
    from despoofdiff.data import FaceItems
    from despoofdiff.train import crossfit_folds
    from vislab.errors import ConfigError

    class Items(torch.utils.data.Dataset):
        def __init__(self, ids):
            self.ids = ids

        def __len__(self):
            return len(self.ids)

        def __getitem__(self, i):
            return {"image": torch.zeros(3, 4, 4), "live": i % 2, "identity": self.ids[i]}

    ids = [3, 3, 1, 1, 2, 2, 3, 1, 0, 0]
    f = crossfit_folds(FaceItems(Items(ids), 4), 2)
    for k in set(ids):
        assert len({int(f[i]) for i in range(len(ids)) if ids[i] == k}) == 1  # one person, one fold
    assert set(f.tolist()) == {0, 1}
    with pytest.raises(ConfigError, match="crossfit"):
        crossfit_folds(FaceItems(Items([5, 5]), 4), 2)
    # videos of one class each: live and spoof videos are dealt separately, so every fold's complement has both
    f = crossfit_folds(FaceItems(Items([10, 11, 12, 13]), 4), 2)  # items 0, 2 spoof; 1, 3 live
    assert sorted(f[[0, 2]].tolist()) == [0, 1] and sorted(f[[1, 3]].tolist()) == [0, 1]
    sub = FaceItems(Items(ids), 4).subset([0, 2, 3])
    assert sub.lives().tolist() == [0, 0, 1] and len(sub) == 3


def _write_faces(folder, n=3, size=24):
    from vislab.faces import ToyFaces

    folder.mkdir(parents=True, exist_ok=True)
    ds = ToyFaces(domains=["O"], attacks=("print",), identities=2, frames=1, size=size)
    paths = []
    for i in range(n):
        p = folder / f"face{i}_{ds[i]['attack']}.png"
        Image.fromarray((ds[i]["image"].permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(p)
        paths.append(p)
    return paths


def test_predict_writes_scores_and_pictures(tiny_run, tmp_path):
    from despoofdiff.cli import main

    out, _ = tiny_run
    imgs = _write_faces(tmp_path / "in")
    pred = tmp_path / "pred"
    assert main(["predict", "--checkpoint", str(out / "checkpoints" / "last.ckpt"), *map(str, imgs), "--output-dir", str(pred)]) == 0
    rows = list(csv.DictReader(open(pred / "scores.csv")))
    assert len(rows) == 3 and all(np.isfinite(float(r["score"])) for r in rows)
    for p in imgs:
        pic = Image.open(pred / f"{p.stem}_despoof.png")
        assert pic.width > 3 * pic.height  # image | x_g | N | depth side by side
    j = json.loads((pred / "scores.json").read_text())
    assert j["threshold"] == pytest.approx(read_metrics(out)["after_all"]["threshold"], abs=1e-6)
    # a run folder works as --checkpoint too, and a folder of images as input
    assert main(["predict", "--checkpoint", str(out), str(tmp_path / "in"), "--output-dir", str(tmp_path / "pred2")]) == 0


def test_save_load_round_trip(tiny_run):
    from despoofdiff.commands import load_module

    out, _ = tiny_run
    a = load_module(out / "checkpoints" / "despoofdiff.ckpt")
    b = load_module(out / "checkpoints" / "last.ckpt")
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    ra, rb = a.predict_images(x), b.predict_images(x)
    assert torch.equal(ra["x_g"], rb["x_g"]) and torch.equal(ra["depth"], rb["depth"])
    assert a.bridge.fingerprint(16) == read_metrics(out)["bridge_hash"]


def test_losses_drop_when_overfitting_one_batch():
    from despoofdiff.model import unet_config
    from despoofdiff.module import ClassifierModule, DiffusionModule

    torch.manual_seed(0)
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    dm = DiffusionModule(unet_config("tiny", 16), "genuine", lr=3e-3)
    opt = dm.configure_optimizers()
    losses = []
    for _ in range(25):
        torch.manual_seed(1)  # same t and noise every step: a fixed objective
        loss = dm.training_step(x, 0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]

    cm = ClassifierModule({"width": 8, "blocks": 2, "head_width": 16}, {"t_star": 0.3, "steps": 2}, unet_config("tiny", 16), unet_config("tiny", 16), 16, lr=1e-2)
    batch = {"x": x, "noise": torch.randn(4, 3, 16, 16) * 0.1, "depth": torch.rand(4, 1, 4, 4) * torch.tensor([1.0, 0, 1, 0]).view(4, 1, 1, 1), "live": torch.tensor([1, 0, 1, 0])}
    opt = cm.configure_optimizers()["optimizer"]
    losses = []
    for _ in range(25):
        loss = cm.training_step(batch, 0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]
    # only the classifier trains: the bridge's diffusion models stay frozen
    assert not any(p.requires_grad for p in cm.bridge.parameters())


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path):
    out = tmp_path / "ddp"
    args = ["--output-dir", str(out), "--data.resolution", "16", "--data.toy.identities", "4", "--data.toy.frames", "1",
            "--diffusion.steps", "2", "--diffusion.batch_size", "8", "--bridge.steps", "2", "--classifier.steps", "2",
            "--classifier.batch_size", "8", "--ablations", "[]", "--pictures", "1",
            "--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false"]
    r = run_module("despoofdiff", args, timeout=1200, OMP_NUM_THREADS="1")
    assert r.returncode == 0, r.stderr[-3000:]
    m = assert_run_contract(out)
    assert m["metric"] == "test_acer"
