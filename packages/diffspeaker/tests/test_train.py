"""Training, the run contract, save/load, animate, bad input, DDP."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from diffspeaker.cli import main
from diffspeaker.data import TalkingFaceDataModule, collate
from diffspeaker.losses import diffspeaker_loss
from diffspeaker.module import DiffSpeakerModule, load_checkpoint
from vislab.testing import assert_run_contract, make_run, read_metrics, run_module

SMALL_MODEL = {
    "dim": 32,
    "ff": 64,
    "heads": 4,
    "layers": 1,
    "dropout": 0.1,
    "period": 30,
    "train_steps": 1000,
    "time_sin_dim": 64,
}


def _small(train_clips=8):
    dm = TalkingFaceDataModule(train_clips=train_clips, test_clips=2, batch_size=4, seconds=1.0)
    from vislab.run import load_preset

    cfg = load_preset("diffspeaker")
    module = DiffSpeakerModule(
        {**cfg["model"], **SMALL_MODEL, "n_feats": dm.n_feats, "n_styles": 3},
        cfg["audio"]["config"],
        cfg["optim"],
        cfg["loss"],
        {**cfg["sampling"], "steps": 5, "val_steps": 3},
    )
    module.geometry = dm.geometry
    return dm, module


def test_embedded_default_learns(trained_run):
    out, m = trained_run
    metrics = assert_run_contract(out)
    assert metrics["metric"] == "LVE" and metrics["higher_is_better"] is False
    assert metrics["after"] < metrics["before"] / 2
    assert metrics["after"] * 3 < metrics["template_only_LVE"]  # beats the static template by >= 3x
    assert "FDD_after" in metrics and np.isfinite(metrics["FDD_after"])
    op = metrics["mean_lip_opening_by_style"]
    assert op["style0"]["pred"] < op["style1"]["pred"] < op["style2"]["pred"]  # k_style ordering shows
    for name in ("loss_curve.png", "lip_opening.png", "mesh_frames.png"):
        assert (out / name).is_file()
    assert (out / "checkpoints" / "last.ckpt").is_file() and (out / "config.yaml").is_file()


def test_fast_dev_run():
    import pytorch_lightning as pl

    dm, module = _small()
    trainer = pl.Trainer(
        fast_dev_run=True,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, dm)
    trainer.validate(module, dm, verbose=False)
    assert "val/LVE" in trainer.callback_metrics


def test_loss_drops_when_overfitting_one_batch():
    torch.manual_seed(0)
    dm, module = _small()
    batch = collate([dm.train_set[i] for i in range(4)])
    opt = module.configure_optimizers()
    losses = []
    module.train()
    for _ in range(40):
        pred, x0 = module.model.training_prediction(batch)
        tpl = batch["template"][:, None]
        loss = diffspeaker_loss(pred + tpl, x0 + tpl, batch["frame_mask"])["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-8:]) < 0.5 * np.mean(losses[:4])


def test_save_load_round_trip(trained_run):
    out, _ = trained_run
    ck = out / "checkpoints" / "last.ckpt"
    module = load_checkpoint(ck)
    assert module.geometry is not None and module.geometry.template.shape == (300, 3)
    dm = TalkingFaceDataModule(train_clips=3, test_clips=2, seconds=1.0)
    batch = collate([dm.test_set[0]])
    a = module.generate(batch, steps=5, seed=3)
    b = load_checkpoint(ck).generate(batch, steps=5, seed=3)
    assert torch.allclose(a, b)
    sd = torch.load(ck, map_location="cpu", weights_only=False)["state_dict"]
    assert torch.equal(
        sd["model.denoiser.motion_decoder.weight"], module.model.denoiser.motion_decoder.weight
    )


def test_load_run_restores_the_trained_model(trained_run):
    from vislab.models import load_run

    out, _ = trained_run
    module = load_run(out)
    assert isinstance(module, DiffSpeakerModule) and not module.training
    dm = TalkingFaceDataModule(train_clips=3, test_clips=2, seconds=1.0)
    batch = collate([dm.test_set[0]])
    ref = load_checkpoint(out / "checkpoints" / "last.ckpt")
    assert torch.allclose(module.generate(batch, steps=5, seed=3), ref.generate(batch, steps=5, seed=3))


def test_fit_without_a_run_trains_and_writes_nothing(tmp_path, monkeypatch):
    from diffspeaker.train import fit
    from vislab.run import load_preset

    monkeypatch.chdir(tmp_path)
    dm, module = _small(4)
    cfg = load_preset("diffspeaker")
    cfg["trainer"] = {**cfg["trainer"], "max_steps": 2, "enable_progress_bar": False}
    w0 = module.model.denoiser.motion_decoder.weight.detach().clone()
    trained = fit(cfg, dm, module)
    assert trained is module and module.global_step == 2 and not module.training
    assert not torch.equal(w0, module.model.denoiser.motion_decoder.weight)
    assert not any(tmp_path.iterdir())


def test_animate_writes_npy_and_video(trained_run, tmp_path, capsys):
    out, _ = trained_run
    t = np.arange(int(1.5 * 22050)) / 22050
    wave = (0.4 * np.sin(2 * np.pi * 150 * t) * (np.sin(2 * np.pi * 2 * t) > 0)).astype(np.float32)
    sf.write(str(tmp_path / "speech.wav"), np.stack([wave, wave], 1), 22050)  # stereo, 22.05 kHz
    rc = main(
        [
            "animate",
            "--checkpoint",
            str(out / "checkpoints" / "last.ckpt"),
            "--audio",
            str(tmp_path / "speech.wav"),
            "--output-dir",
            str(tmp_path / "anim"),
            "--steps",
            "5",
            "--video",
            "gif",
            "--size",
            "96",
            "--style",
            "2",
        ]
    )
    assert rc == 0
    err = capsys.readouterr().err
    assert "resampled from 22050" in err and "mono" in err and "frames/s" in err
    v = np.load(tmp_path / "anim" / "speech.npy")
    assert v.shape == (44, 300, 3) and np.isfinite(v).all()  # S=74 audio frames -> int(74/50*30)
    assert (tmp_path / "anim" / "speech.gif").stat().st_size > 0
    # a user template (.obj) with the right vertex count is used instead of the stored one
    tpl = load_checkpoint(out / "checkpoints" / "last.ckpt").geometry.template + np.array(
        [0, 0, 5.0], np.float32
    )
    (tmp_path / "face.obj").write_text("".join(f"v {a} {b} {c}\n" for a, b, c in tpl) + "f 1 2 21\n")
    rc = main(
        [
            "animate",
            "--checkpoint",
            str(out / "checkpoints" / "last.ckpt"),
            "--audio",
            str(tmp_path / "speech.wav"),
            "--template",
            str(tmp_path / "face.obj"),
            "--output-dir",
            str(tmp_path / "anim2"),
            "--steps",
            "3",
            "--size",
            "64",
            "--video",
            "mp4",
        ]
    )
    assert rc == 0 and np.load(tmp_path / "anim2" / "speech.npy")[..., 2].mean() > 4
    assert (tmp_path / "anim2" / "speech.mp4").stat().st_size > 0  # H.264 with the audio muxed in


def test_bad_inputs(trained_run, tmp_path, capsys):
    out, _ = trained_run
    ck = str(out / "checkpoints" / "last.ckpt")
    sf.write(
        str(tmp_path / "ok.wav"),
        (0.3 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32),
        16000,
    )
    ok = str(tmp_path / "ok.wav")
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    torch.save({"state_dict": {"w": torch.zeros(1)}}, tmp_path / "other.ckpt")
    wrong = torch.load(ck, map_location="cpu", weights_only=False)
    wrong["state_dict"] = {k: v for k, v in wrong["state_dict"].items() if "motion_decoder" not in k}
    torch.save(wrong, tmp_path / "wrongarch.ckpt")
    np.save(tmp_path / "small.npy", np.zeros((10, 3), np.float32))
    sf.write(str(tmp_path / "silent.wav"), np.zeros(16000, np.float32), 16000)
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF....WAVEjunk")
    out_dir = tmp_path / "o"
    out_dir.mkdir()
    (out_dir / "ok.npy").write_bytes(b"keep me")
    cases = [
        (["--checkpoint", str(tmp_path / "missing.ckpt"), "--audio", ok], "not found"),
        (["--checkpoint", str(tmp_path / "junk.ckpt"), "--audio", ok], "cannot load checkpoint"),
        (["--checkpoint", str(tmp_path / "other.ckpt"), "--audio", ok], "not a diffspeaker checkpoint"),
        (["--checkpoint", str(tmp_path / "wrongarch.ckpt"), "--audio", ok], "does not match"),
        (
            ["--checkpoint", ck, "--audio", ok, "--template", str(tmp_path / "small.npy")],
            "template has 10 vertices",
        ),
        (["--checkpoint", ck, "--audio", str(tmp_path / "silent.wav")], "silent"),
        (["--checkpoint", ck, "--audio", str(tmp_path / "corrupt.wav")], "cannot read audio"),
        (["--checkpoint", ck, "--audio", ok, "--style", "7"], "out of range"),
    ]
    for args, msg in cases:
        rc = main(["animate", *args, "--output-dir", str(out_dir), "--video", "none", "--steps", "2"])
        err = capsys.readouterr().err
        assert rc == 2 and msg in err and "Traceback" not in err, (args, err)
    assert (out_dir / "ok.npy").read_bytes() == b"keep me"  # nothing half-written or clobbered
    assert main(["--data.source", "nope", "--output-dir", str(tmp_path / "r")]) == 2
    assert main(["--model.not_a_key", "1", "--output-dir", str(tmp_path / "r2")]) == 2


def test_resume_continues(tmp_path):
    small = {
        "data": {"train_clips": 8, "test_clips": 2, "seconds": 1.0},
        "model": {"dim": 32, "ff": 64},
        "sampling": {"steps": 3, "val_steps": 2},
        "eval": {"video": False},
        "trainer": {"max_steps": 4, "enable_progress_bar": False, "check_val_every_n_epoch": 100},
    }
    from diffspeaker.train import train

    train(make_run("diffspeaker", tmp_path, small))
    assert read_metrics(tmp_path)["train_steps"] == 4
    small["trainer"]["max_steps"] = 6
    run = make_run("diffspeaker", tmp_path, small)
    run.resume = True
    train(run)
    assert read_metrics(tmp_path)["train_steps"] == 6


def test_help():
    r = run_module("diffspeaker", ["--help"], timeout=120)
    assert r.returncode == 0 and "animate" in r.stdout


def test_animate_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["animate", "--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and "--checkpoint" in out and "--template" in out


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path):
    args = [
        "--output-dir",
        str(tmp_path),
        "--trainer.strategy",
        "ddp",
        "--trainer.devices",
        "2",
        "--trainer.accelerator",
        "cpu",
        "--trainer.max_steps",
        "3",
        "--data.train_clips",
        "8",
        "--data.test_clips",
        "2",
        "--data.seconds",
        "1.0",
        "--sampling.steps",
        "3",
        "--eval.video",
        "false",
        "--trainer.enable_progress_bar",
        "false",
    ]
    r = run_module("diffspeaker", args, timeout=600, OMP_NUM_THREADS="1")
    assert r.returncode == 0, r.stderr[-3000:]
    m = assert_run_contract(tmp_path)
    assert m["train_steps"] == 3
