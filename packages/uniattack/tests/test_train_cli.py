"""Run contract, predict with attack family, bad input, resume and DDP of uniattack."""

import contextlib
import io

import numpy as np
import pytest
import torch
from PIL import Image
from vislab.testing import assert_run_contract, run_module

SMALL_ARGS = [
    "--clip.tiny.image_size", "32", "--data.batch_size", "8", "--data.steps_per_epoch", "3", "--data.toy.identities", "4",
    "--data.toy.size", "32", "--data.toy.frames", "1", "--unseen.enabled", "false", "--baseline.enabled", "false", "--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false",
]


def _write_faces(folder, n=3):
    from vislab.faces.toy import ToyFaces

    ds = ToyFaces(domains=["U"], attacks=["print", "adv_sign", "faceswap"], identities=1, frames=1, size=32, with_depth=False)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(min(n, len(ds))):
        p = folder / f"face{i}.png"
        Image.fromarray((ds[i]["image"].permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(p)
        paths.append(p)
    return paths


def test_run_contract(trained_run):
    out, m = trained_run
    m = assert_run_contract(out)
    assert m["metric"] == "acer" and m["higher_is_better"] is False
    assert set(m["after_detail"]["apcer_per_family"]) == {"physical", "adversarial", "digital"}
    assert "unseen_attack_run" in m and m["unseen_attack_run"]["protocol"] == "p2.1"
    assert set(m["unseen_attack_run"]["after"]["apcer_per_family"]) == {"physical"}  # p2.1 tests unseen physical attacks
    base = m["baseline_run"]  # plain CLIP (teacher-prompt head) on the same protocol, init and steps
    assert base["model"]["unified_head"] == "teacher" and base["steps"] == m["steps"]
    assert set(base["after"]["apcer_per_family"]) == {"physical", "adversarial", "digital"}
    for name in ("roc.png", "score_histograms.png", "confusion.png"):
        assert (out / name).is_file()


def test_checkpoint_round_trip(trained_run):
    from uniattack.build import load_checkpoint

    out, _ = trained_run
    m1, meta = load_checkpoint(out / "checkpoints" / "last.ckpt")
    m2, _ = load_checkpoint(out / "checkpoints" / "last.ckpt")
    x = torch.rand(2, 3, 32, 32)
    assert torch.allclose(m1.scores(x)["p_live"], m2.scores(x)["p_live"])
    assert meta["protocol"] == "p1" and 0.0 <= meta["threshold"] <= 1.0
    sd = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    assert torch.equal(sd["model.student.learner.ctx"], m1.student.ctx)


def test_predict_csv_with_family(trained_run, tmp_path):
    from uniattack.commands import predict_main

    out, _ = trained_run
    _write_faces(tmp_path / "imgs", 3)
    csv_path = tmp_path / "p.csv"
    assert predict_main(["--checkpoint", str(out / "checkpoints" / "last.ckpt"), str(tmp_path / "imgs"), "--out", str(csv_path)]) == 0
    rows = [r.split(",") for r in csv_path.read_text().strip().splitlines()]
    assert rows[0][:5] == ["image", "p_attack", "p_live", "decision", "attack_family"] and len(rows) == 4
    for r in rows[1:]:
        assert r[4] in ("physical", "adversarial", "digital")
        assert abs(float(r[1]) + float(r[2]) - 1) < 1e-5
        assert abs(sum(float(v) for v in r[5:9]) - 1) < 1e-4


def test_bad_inputs(trained_run, tmp_path):
    from uniattack.cli import main

    out, _ = trained_run
    ckpt = str(out / "checkpoints" / "last.ckpt")
    img = _write_faces(tmp_path / "ok", 1)[0]
    corrupt = tmp_path / "c.jpg"
    corrupt.write_bytes(b"\xff\xd8 truncated")
    wrong = tmp_path / "w.ckpt"
    torch.save({"state_dict": {}}, wrong)
    (tmp_path / "empty").mkdir()
    keep = tmp_path / "keep.csv"
    keep.write_text("old\n")
    cases = [
        (["predict", "--checkpoint", str(tmp_path / "none.ckpt"), str(img)], "not found"),
        (["predict", "--checkpoint", str(wrong), str(img)], "not a uniattack checkpoint"),
        (["predict", "--checkpoint", ckpt, str(corrupt), "--out", str(keep)], "cannot read image"),
        (["predict", "--checkpoint", ckpt, str(tmp_path / "empty")], "no images"),
        (["predict", "--checkpoint", ckpt, str(img), "--box", "5,5,1,1"], "empty"),
        (["--data.protocol", "p9", "--output-dir", str(tmp_path / "r")], "p1, p2.1, p2.2"),
        (["--data.source", "uniattackdata", "--data.root", str(tmp_path / "nope"), "--output-dir", str(tmp_path / "r2")], "not found"),
    ]
    for argv, msg in cases:
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            rc = main(argv)
        assert rc == 2, argv
        assert msg in err.getvalue(), (argv, err.getvalue())
    assert keep.read_text() == "old\n"


def test_wrong_architecture(trained_run, tmp_path):
    from uniattack.build import load_checkpoint
    from vislab.errors import InputError

    out, _ = trained_run
    ck = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    ck["uniattack_meta"]["uniattack"]["n_ctx"] = 6
    torch.save(ck, tmp_path / "a.ckpt")
    with pytest.raises(InputError, match="does not fit"):
        load_checkpoint(tmp_path / "a.ckpt")


def test_help():
    from uniattack.cli import main

    with pytest.raises(SystemExit) as e:
        main(["predict", "--help"])
    assert e.value.code == 0
    r = run_module("uniattack", ["--help"], timeout=120)
    assert r.returncode == 0 and "predict" in r.stdout


def test_loss_drops_overfitting_one_batch(clip):
    from uniattack.model import UniAttack
    from uniattack.module import UniAttackModule

    torch.manual_seed(0)
    module = UniAttackModule(UniAttack(clip, dict(n_ctx=4, n_teacher_groups=3)))
    module.log = lambda *a, **k: None
    opt = torch.optim.Adam(module.model.head_parameters(), lr=5e-3)
    batch = {"image": torch.rand(8, 3, 32, 32), "label": torch.tensor([0, 1, 2, 3] * 2)}
    losses = []
    for _ in range(40):
        loss = module.training_step(batch, 0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_resume(tmp_path):
    out = tmp_path / "run"
    r1 = run_module("uniattack", [*SMALL_ARGS, "--output-dir", str(out)], timeout=400)
    assert r1.returncode == 0, r1.stderr[-2000:]
    r2 = run_module("uniattack", [*SMALL_ARGS, "--trainer.max_epochs", "2", "--output-dir", str(out), "--resume"], timeout=400)
    assert r2.returncode == 0, r2.stderr[-2000:]
    ck = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ck["global_step"] == 6


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path):
    out = tmp_path / "ddp"
    args = [*SMALL_ARGS]
    args[args.index("--baseline.enabled") + 1] = "true"  # the rank-0 side run after the DDP workers have exited
    r = run_module("uniattack", [*args, "--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu",
                                 "--output-dir", str(out)], timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    m = assert_run_contract(out)
    assert m["baseline_run"]["steps"] == 3
