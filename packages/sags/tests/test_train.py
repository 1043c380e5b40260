"""The Lightning fit, checkpoints, the run contract and the command line."""

import copy

import numpy as np
import pytest
import torch
from sags.cli import main
from vislab.config import dump_yaml
from vislab.testing import assert_run_contract, make_run, read_metrics, run_module

TINY = {
    "synthetic": {"size": 32, "n_train": 4, "n_test": 2, "spacing": 0.08},
    "strategy": {"refine_start_iter": 2, "refine_stop_iter": 50, "refine_every": 3},
    "trainer": {"enable_progress_bar": False},
}


def _tiny(extra=None):
    cfg = copy.deepcopy(TINY)
    for k, v in (extra or {}).items():
        cfg.setdefault(k, {}).update(v)
    return cfg


@pytest.fixture(scope="module")
def tiny_parts():
    from sags.train import build_data, make_module

    run_cfg = make_run("sags", __import__("pathlib").Path("/tmp/unused"), _tiny()).config
    return run_cfg, build_data(run_cfg), make_module


def test_fast_dev_run(tiny_parts):
    import pytorch_lightning as pl
    from sags.data import SplatDataModule

    cfg, (data, val, splats, _), make_module = tiny_parts
    m = make_module(cfg, splats, data)
    tr = pl.Trainer(
        fast_dev_run=True,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    tr.fit(m, SplatDataModule(data, 8, val))
    assert tr.global_step == 1  # one optimiser step per batch although six Adams step
    assert not torch.equal(m.splats["means"], splats["means"])
    res = tr.test(m, SplatDataModule(data, 8, val), verbose=False)
    assert 5 < res[0]["test/psnr"] < 60


def test_loss_drops_and_densifies(tiny_parts):
    import pytorch_lightning as pl
    from sags.data import SplatDataModule

    cfg, (data, val, splats, _), make_module = tiny_parts
    m = make_module(cfg, splats, data)
    losses = []

    class Rec(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            losses.append(float(outputs["loss"] if isinstance(outputs, dict) else outputs))

    tr = pl.Trainer(
        max_steps=24,
        overfit_batches=1,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        limit_val_batches=0,
        callbacks=[Rec()],
    )
    tr.fit(m, SplatDataModule(data, 8, val))
    assert len(losses) == 24
    assert np.mean(losses[-4:]) < 0.9 * np.mean(losses[:4]), losses
    assert len(m.splats["means"]) != len(splats["means"])  # DefaultStrategy grew / pruned
    # the Adam states follow the parameters through densification
    for k, opt in m._raw_optimizers().items():
        assert opt.param_groups[0]["params"][0] is m.splats[k]
        st = opt.state[m.splats[k]]
        assert st["exp_avg"].shape == m.splats[k].shape
    # means LR decayed exponentially towards 1 %
    assert m._raw_optimizers()["means"].param_groups[0]["lr"] < m.lr["means"] * m.hparams.scene_scale


def test_embedded_default_reduced_and_resume(tmp_path):
    from sags.gaussians import load_ply
    from sags.train import train

    out = tmp_path / "run"
    run = make_run("sags", out, _tiny({"trainer": {"max_steps": 6}}))
    (out / "config.yaml").write_text(dump_yaml(run.config))  # start_run writes it on the CLI path
    m = train(run)
    meta = assert_run_contract(out)
    assert (
        meta["metric"] == "mIoU" and 0 <= meta["after"] <= 1 and "psnr_after" in meta and "mIoU_noGD" in meta
    )
    for f in (
        "point_cloud.ply",
        "cameras.json",
        "segmentation/labels.npy",
        "segmentation/object.ply",
        "segmentation/background.ply",
        "segmentation/mask_overlays.png",
        "renders_gt_before_after_depth.png",
    ):
        assert (out / f).is_file(), f
    s = load_ply(out / "point_cloud.ply")
    assert s["shN"].shape[1] == 15 and not s["shN"].any()  # SH 3 with zero bands (INRIA's loader)
    from vislab.models import load_run

    assert torch.equal(load_run(out)["means"], s["means"])  # sags.load, the run folder's hook
    assert len(load_run(out, segmented=True)["means"]) == len(np.load(out / "segmentation/labels.npy"))
    lab = np.load(out / "segmentation/labels.npy")
    assert lab.dtype == np.int8 and len(lab) >= len(s["means"])
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["global_step"] == 6 and torch.equal(ckpt["splats"]["means"], s["means"])
    # resume: continue to 9 steps from last.ckpt
    run2 = make_run("sags", out, _tiny({"trainer": {"max_steps": 9}}))
    run2.resume = True
    train(run2)
    ckpt2 = torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt2["global_step"] == 9
    assert m is not None and read_metrics(out)["metric"] == "mIoU"


def test_checkpoint_round_trip(tiny_parts, tmp_path):
    from sags.module import GaussianSplatModule

    cfg, (data, val, splats, _), make_module = tiny_parts
    m = make_module(cfg, splats, data)
    ck = {"state_dict": m.state_dict(), "hyper_parameters": dict(m.hparams)}
    m.on_save_checkpoint(ck)
    torch.save(ck, tmp_path / "a.ckpt")
    ck2 = torch.load(tmp_path / "a.ckpt", weights_only=False)
    m2 = make_module(cfg, {k: v[:5] for k, v in splats.items()}, data)
    m2.on_load_checkpoint(ck2)
    for k in splats:
        assert torch.equal(m2.splats[k].detach(), splats[k].float())
    from vislab.errors import VislabError

    with pytest.raises(VislabError, match="splats"):
        m2.on_load_checkpoint({"state_dict": {}})
    assert isinstance(m2, GaussianSplatModule)


def test_help_and_bad_inputs(capsys, tmp_path, scene, sphere_click):
    assert main(["--help"]) == 0
    assert "segment" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["segment", "--help"])
    assert e.value.code == 0
    # --resume without a checkpoint, unknown config key
    assert main(["--output-dir", str(tmp_path / "r"), "--resume"]) == 2
    assert main(["--output-dir", str(tmp_path / "r"), "--nosuch.key", "1"]) == 2
    assert "error" in capsys.readouterr().err
    from sags.cameras import save_cameras_json
    from sags.gaussians import save_ply

    save_ply(scene.splats, tmp_path / "scene.ply")
    save_cameras_json(scene.train_cams, tmp_path / "cameras.json")
    base = [
        "segment",
        "--ply",
        str(tmp_path / "scene.ply"),
        "--cameras",
        str(tmp_path / "cameras.json"),
        "--provider",
        "floodfill",
        "--vote-denominator",
        "valid",
    ]
    x, y = sphere_click[0]
    out = tmp_path / "seg"
    assert main([*base, "--points", f"{x},{y}", "--out", str(out)]) == 0
    for f in (
        "labels.npy",
        "votes.npy",
        "object.ply",
        "background.ply",
        "mask_overlays.png",
        "segmentation.json",
        "masks/000.png",
        "renders/000.png",
    ):
        assert (out / f).is_file(), f
    before = (out / "labels.npy").read_bytes()
    capsys.readouterr()
    assert main([*base, "--points", "200,3", "--out", str(out)]) == 2  # outside the image
    assert main([*base, "--points", "1,1", "--out", str(out)]) == 2  # empty space (black sky)
    assert main([*base, "--points", "x;y", "--out", str(out)]) == 2
    assert (
        main(
            [
                "segment",
                "--ply",
                str(tmp_path / "no.ply"),
                "--cameras",
                str(tmp_path / "cameras.json"),
                "--points",
                "3,3",
                "--out",
                str(out),
            ]
        )
        == 2
    )
    (tmp_path / "corrupt.ply").write_bytes(
        b"ply\nformat binary_little_endian 1.0\nelement vertex 10\nproperty float x\nend_header\n\x00"
    )
    assert (
        main(
            [
                "segment",
                "--ply",
                str(tmp_path / "corrupt.ply"),
                "--cameras",
                str(tmp_path / "cameras.json"),
                "--points",
                "3,3",
                "--out",
                str(out),
            ]
        )
        == 2
    )
    assert (
        main(
            [
                *base[:5],
                "--provider",
                "sam",
                "--sam-checkpoint",
                str(tmp_path / "none.pth"),
                "--points",
                f"{x},{y}",
                "--out",
                str(out),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "outside" in err and "empty space" in err and "not found" in err and "Traceback" not in err
    assert (out / "labels.npy").read_bytes() == before  # nothing already written was lost
    # edits and queries on the result (labels.npy matches scene.ply, the scene after GD)
    lab = ["--labels", str(out / "labels.npy")]
    x_ply, r_ply, scene_gd = str(tmp_path / "x.ply"), str(tmp_path / "r.ply"), str(out / "scene.ply")
    assert main(["edit", "remove", "--ply", str(tmp_path / "scene.ply"), *lab, "--out", x_ply]) == 2
    assert main(["edit", "remove", "--ply", scene_gd, *lab, "--out", x_ply]) == 0
    assert main(["edit", "rotate", "--ply", scene_gd, *lab, "--degrees", "90", "--out", r_ply]) == 0
    from sags.gaussians import load_ply

    n_obj = int((np.load(out / "labels.npy") == 1).sum())
    assert len(load_ply(x_ply)["means"]) == len(load_ply(scene_gd)["means"]) - n_obj
    # sags eval: score labels against a ground-truth mask image of view 1
    from PIL import Image

    Image.fromarray(((scene.train_inst[1] == 1).numpy() * 255).astype(np.uint8)).save(tmp_path / "gt1.png")
    ev = ["eval", "--ply", scene_gd, *lab, "--cameras", str(tmp_path / "cameras.json"), "--views", "1"]
    assert main([*ev, "--gt-masks", str(tmp_path / "gt1.png"), "--out", str(tmp_path / "ev.json")]) == 0
    import json

    assert json.loads((tmp_path / "ev.json").read_text())["mIoU"] > 0.6
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(tmp_path / "small.png")
    assert main([*ev, "--gt-masks", str(tmp_path / "small.png")]) == 2  # wrong mask size
    obj = str(out / "object.ply")
    assert main(["collide", "--a", obj, "--b", obj, "--point=-0.45,0,0.22", "--point=3,3,3"]) == 0
    assert '"overlap": true' in capsys.readouterr().out


def test_cli_subprocess_help():
    r = run_module("sags", ["--help"], timeout=300)
    assert r.returncode == 0 and "sags segment" in r.stdout


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path):
    out = tmp_path / "ddp"
    args = [
        "--output-dir",
        str(out),
        "--trainer.strategy",
        "ddp",
        "--trainer.devices",
        "2",
        "--trainer.accelerator",
        "cpu",
        "--trainer.max_steps",
        "4",
        "--synthetic.size",
        "32",
        "--synthetic.n_train",
        "4",
        "--synthetic.n_test",
        "2",
        "--synthetic.spacing",
        "0.08",
        "--strategy.refine_start_iter",
        "1",
        "--strategy.refine_every",
        "2",
        "--trainer.enable_progress_bar",
        "false",
    ]
    r = run_module("sags", args, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    meta = assert_run_contract(out)
    assert meta["metric"] == "mIoU"
