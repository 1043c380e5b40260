"""The run contract, predict, bad input, resume and DDP of cfpl."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from vislab.testing import assert_run_contract, run_module

SMALL_ARGS = [
    "--clip.tiny.image_size", "32", "--clip.tiny.context_length", "24",
    "--data.batch_size", "8", "--data.steps_per_epoch", "3", "--data.toy.identities", "2", "--data.toy.size", "32",
    "--baseline.steps", "10", "--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false",
]


def _write_faces(folder, n=4, size=32):
    from vislab.faces.toy import ToyFaces

    ds = ToyFaces(domains=["M"], attacks=["print"], identities=1, frames=1, size=size, with_depth=False)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(min(n, len(ds))):
        p = folder / f"face{i}_{ds[i]['attack']}.png"
        Image.fromarray((ds[i]["image"].permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(p)
        paths.append(p)
    return paths


def test_embedded_run_contract(trained_run):
    out, metrics = trained_run
    m = assert_run_contract(out)
    assert m["metric"] == "hter" and m["higher_is_better"] is False
    assert 0.0 <= m["after"] <= 1.0 and 0.0 <= m["auc_after"] <= 1.0
    assert "baseline_clip_linear_probe" in m and "hter" in m["baseline_clip_linear_probe"]
    assert m["protocol"] == "O-C-I@M"
    for name in ("roc.png", "score_histograms.png"):
        assert (out / name).is_file()
    ck = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ck["cfpl_meta"]["format"] == "cfpl-v1" and "threshold" in ck["cfpl_meta"]


def test_checkpoint_round_trip(trained_run):
    from cfpl.build import load_checkpoint

    out, _ = trained_run
    m1, _ = load_checkpoint(out / "checkpoints" / "last.ckpt")
    m2, _ = load_checkpoint(out / "checkpoints" / "last.ckpt")
    x = torch.rand(2, 3, 32, 32)
    assert torch.allclose(m1.live_score(x), m2.live_score(x))
    sd = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    assert torch.equal(sd["model.classifier.weight"], m1.classifier.weight)


def test_predict_writes_csv(trained_run, tmp_path):
    from cfpl.commands import predict_main

    out, _ = trained_run
    paths = _write_faces(tmp_path / "imgs", 3)
    csv_path = tmp_path / "pred.csv"
    assert predict_main(["--checkpoint", str(out / "checkpoints" / "last.ckpt"), str(tmp_path / "imgs"), "--out", str(csv_path)]) == 0
    rows = csv_path.read_text().strip().splitlines()
    assert rows[0].startswith("image,p_live") and len(rows) == 1 + len(paths)
    p = float(rows[1].split(",")[1])
    assert 0.0 <= p <= 1.0
    # a face box crops before scoring
    assert predict_main(["--checkpoint", str(out / "checkpoints" / "last.ckpt"), str(paths[0]), "--box", "0,0,16,16", "--out", str(csv_path)]) == 0
    assert csv_path.read_text().strip().splitlines()[1].endswith("box")
    assert predict_main(["--checkpoint", str(out / "checkpoints" / "last.ckpt"), str(paths[0]), "--detect", "--out", str(csv_path)]) == 0
    assert csv_path.read_text().strip().splitlines()[1].split(",")[-1] in ("detected", "no face detected: whole image")


def test_bad_inputs(trained_run, tmp_path):
    from cfpl.cli import main

    out, _ = trained_run
    ckpt = str(out / "checkpoints" / "last.ckpt")
    img = _write_faces(tmp_path / "ok", 1)[0]
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"not a png at all")
    wrong = tmp_path / "wrong.ckpt"
    torch.save({"state_dict": {"x": torch.zeros(1)}}, wrong)
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"\x00\x01garbage")
    (tmp_path / "empty").mkdir()
    existing = tmp_path / "keep.csv"
    existing.write_text("old\n")
    cases = [
        (["predict", "--checkpoint", str(tmp_path / "missing.ckpt"), str(img)], "not found"),
        (["predict", "--checkpoint", str(wrong), str(img)], "not a cfpl checkpoint"),
        (["predict", "--checkpoint", str(garbage), str(img)], "cannot load"),
        (["predict", "--checkpoint", ckpt, str(corrupt), "--out", str(existing)], "cannot read image"),
        (["predict", "--checkpoint", ckpt, str(tmp_path / "empty")], "no images"),
        (["predict", "--checkpoint", ckpt, str(tmp_path / "nope.png")], "not found"),
        (["--data.source", "flip", "--data.root", str(tmp_path / "empty"), "--output-dir", str(tmp_path / "r")], "not a FLIP data folder"),
        (["--data.source", "lab", "--data.protocol", "O-X@M", "--data.root", str(tmp_path), "--output-dir", str(tmp_path / "r2")], "unknown domain"),
        (["--no_such_key", "1"], "unknown"),
    ]
    for argv, msg in cases:
        import contextlib
        import io

        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            rc = main(argv)
        assert rc == 2, argv
        assert msg in err.getvalue(), (argv, err.getvalue())
    assert existing.read_text() == "old\n"  # nothing half-written over an existing output


def test_wrong_architecture_checkpoint(trained_run, tmp_path):
    from cfpl.build import load_checkpoint
    from vislab.errors import InputError

    out, _ = trained_run
    ck = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    ck["cfpl_meta"]["cfpl"]["n_queries"] = 7
    bad = tmp_path / "arch.ckpt"
    torch.save(ck, bad)
    with pytest.raises(InputError, match="does not fit"):
        load_checkpoint(bad)


def test_help_and_predict_help():
    from cfpl.cli import main

    with pytest.raises(SystemExit) as e:
        main(["predict", "--help"])
    assert e.value.code == 0
    r = run_module("cfpl", ["--help"], timeout=120)
    assert r.returncode == 0 and "predict" in r.stdout


def test_loss_drops_when_overfitting_one_batch(clip):
    from cfpl.model import CFPL
    from cfpl.module import CFPLModule

    torch.manual_seed(0)
    model = CFPL(clip, dict(n_queries=4, qformer_heads=2, pm_reduction=4, qformer_dropout=0.0, dsp=False))
    module = CFPLModule(model, optim={"lr": 3e-3, "weight_decay": 0.0})
    opt = torch.optim.Adam(model.head_parameters(), lr=3e-3)
    batch = {"image": torch.rand(8, 3, 32, 32), "live": torch.tensor([1, 0] * 4)}
    module.log = lambda *a, **k: None
    losses = []
    for _ in range(40):
        loss = module.training_step(batch, 0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0]


def test_resume_continues(tmp_path):
    out = tmp_path / "run"
    r1 = run_module("cfpl", [*SMALL_ARGS, "--baseline.enabled", "false", "--output-dir", str(out)], timeout=300)
    assert r1.returncode == 0, r1.stderr[-2000:]
    step1 = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["global_step"]
    r2 = run_module("cfpl", [*SMALL_ARGS, "--baseline.enabled", "false", "--trainer.max_epochs", "2", "--output-dir", str(out), "--resume"], timeout=300)
    assert r2.returncode == 0, r2.stderr[-2000:]
    step2 = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["global_step"]
    assert step1 == 3 and step2 == 6
    assert json.loads((out / "metrics.json").read_text())["steps"] == 6


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path):
    out = tmp_path / "ddp"
    r = run_module("cfpl", [*SMALL_ARGS, "--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu",
                            "--output-dir", str(out)], timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert_run_contract(out)
