"""Training: fast_dev_run, loss drops, the embedded default contract on a reduced budget, predict, bad input, DDP."""

from __future__ import annotations

import pytest
import torch
from vislab.lightning import build_trainer
from vislab.testing import assert_run_contract, make_run, read_metrics, run_module

TINY = {"clip": {"source": "tiny"}, "data": {"n_train": 64, "n_val": 64, "batch_size": 32}, "ablations": []}


def _module_and_data(tmp_path):
    from pvlr.train import make_datamodule, make_module

    cfg = make_run("pvlr", tmp_path, TINY).config
    dm = make_datamodule(cfg)
    return make_module(cfg, dm.classnames), dm


def test_fast_dev_run(tmp_path):
    module, dm = _module_and_data(tmp_path)
    build_trainer(None, {"fast_dev_run": True}).fit(module, datamodule=dm)


def test_loss_drops_when_overfitting_one_batch(tmp_path):
    from pvlr.losses import asymmetric_loss

    torch.manual_seed(0)
    module, dm = _module_and_data(tmp_path)
    x, y = next(iter(dm.train_dataloader()))
    opt = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-2)
    first = None
    for _ in range(80):
        loss = asymmetric_loss(module(x), y)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.75 * first


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from pvlr.train import train

    out = tmp_path_factory.mktemp("run")
    run = make_run("pvlr", out, {**TINY, "data": {"n_train": 512, "n_val": 128}, "trainer": {"max_epochs": 6},
                                 "ablations": ["kap_only"]})
    train(run)
    return out


def test_embedded_default_contract_and_learning(trained):
    m = assert_run_contract(trained)
    assert m["metric"] == "val_mAP" and m["higher_is_better"]
    assert m["after"] > m["before"] + 5, m
    assert "kap_only" in m["ablations"]
    assert (trained / "checkpoints" / "last.ckpt").is_file()


def test_predict_and_round_trip(trained, tmp_path):
    from PIL import Image
    from pvlr.predict import load_module, predict_main
    from vislab.toy.world import ToyDataset

    img = ToyDataset(1, resolution=32, seed=5, split="all")[0]["image"]
    f = tmp_path / "x.png"
    Image.fromarray((img.permute(1, 2, 0).numpy() * 255).astype("uint8")).save(f)
    assert predict_main(["--checkpoint", str(trained / "checkpoints" / "last.ckpt"), str(f), "--threshold", "0.0",
                         "--csv", str(tmp_path / "p.csv")]) == 0
    assert (tmp_path / "p.csv").read_text().startswith("image,label,score")
    a = load_module(trained / "checkpoints" / "last.ckpt")
    b = load_module(trained / "checkpoints" / "last.ckpt")
    x = img[None]
    assert torch.allclose(a(x), b(x))


def test_load_run_restores_the_trained_model(trained):
    from pvlr.predict import load_module
    from vislab.models import load_run

    module = load_run(trained)
    assert not module.training
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(module(x), load_module(trained / "checkpoints" / "last.ckpt")(x))


def test_fit_on_a_config_returns_the_trained_model_and_writes_nothing(tmp_path, monkeypatch):
    from pvlr.train import fit

    cfg = make_run("pvlr", tmp_path / "cfg", {**TINY, "trainer": {"max_steps": 3}}).config
    monkeypatch.chdir(tmp_path)
    before = set(tmp_path.rglob("*"))
    module = fit(cfg)
    assert module.global_step == 3 and not module.training
    assert set(tmp_path.rglob("*")) == before


def test_bad_input_is_one_clear_line(trained, tmp_path, capsys):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    img = tmp_path / "img.png"
    img.write_bytes(b"garbage")
    ckpt = str(trained / "checkpoints" / "last.ckpt")
    cases = [
        (["predict", "--checkpoint", str(tmp_path / "missing.ckpt"), str(img)], "missing.ckpt: checkpoint not found"),
        (["predict", "--checkpoint", str(bad), str(img)], "bad.ckpt"),
        (["predict", "--checkpoint", ckpt, str(img)], "img.png: cannot read image"),
        (["--data.source", "voc", "--data.root", str(tmp_path / "nope")], "nope: voc dataset root not found"),
    ]
    from pvlr.cli import main

    for args, msg in cases:  # in-process: main() is what the script runs
        rc = main(args)
        err = capsys.readouterr().err
        assert rc == 2 and msg in err and "Traceback" not in err, (args, err[-1500:])


def test_cli_help():
    r = run_module("pvlr", ["--help"])
    assert r.returncode == 0 and "pvlr predict" in r.stdout


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path):
    out = tmp_path / "ddp"
    r = run_module("pvlr", ["--clip.source", "tiny", "--data.n_train", "64", "--data.n_val", "32", "--ablations", "[]",
                            "--trainer.max_epochs", "1", "--trainer.strategy", "ddp", "--trainer.devices", "2",
                            "--trainer.accelerator", "cpu", "--output-dir", str(out)], timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert read_metrics(out)["package"] == "pvlr"
