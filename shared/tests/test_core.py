"""The run contract, configs, safe I/O, runtime choices and the train dispatcher."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest
import torch
from vislab import config as cfgmod
from vislab import runtime
from vislab.cli import _pyproject_member, choose_member
from vislab.errors import ConfigError, InputError
from vislab.io import atomic_path, load_image, load_torch, save_torch, write_json
from vislab.run import method_main


# ---------------------------------------------------------------- config
def test_overrides_parse_yaml_scalars_and_nesting():
    ov = cfgmod.parse_overrides(["--trainer.max_steps", "20", "--lr=1e-3", "--flag", "--names=[a, b]", "--x.y.z=null"])
    assert ov == {"trainer": {"max_steps": 20}, "lr": 1e-3, "flag": True, "names": ["a", "b"], "x": {"y": {"z": None}}}
    with pytest.raises(ConfigError):
        cfgmod.parse_overrides(["positional"])


def test_resolve_merges_file_then_overrides_and_checks_keys(tmp_path):
    default = {"lr": 0.1, "model": {"width": 8, "depth": 2}, "trainer": {"max_steps": 5}}
    f = tmp_path / "user.yaml"
    f.write_text("model:\n  width: 16\n")
    cfg = cfgmod.resolve(default, f, ["--model.depth=3", "--trainer.strategy=ddp"])
    assert cfg == {"lr": 0.1, "model": {"width": 16, "depth": 3}, "trainer": {"max_steps": 5, "strategy": "ddp"}}
    assert default["model"]["width"] == 8  # not modified
    with pytest.raises(ConfigError, match="unknown key 'lrr'"):
        cfgmod.resolve(default, None, ["--lrr=1"])
    with pytest.raises(ConfigError, match="unknown key 'heads'"):
        cfgmod.resolve(default, None, ["--model.heads=1"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(InputError, match="malformed YAML"):
        cfgmod.resolve(default, bad)
    with pytest.raises(InputError, match="config file not found"):
        cfgmod.resolve(default, tmp_path / "missing.yaml")


# ---------------------------------------------------------------- io
def test_load_image_errors_name_the_file(tmp_path):
    from PIL import Image

    good = tmp_path / "ok.png"
    Image.fromarray(np.full((5, 7, 3), 200, np.uint8)).save(good)
    assert load_image(good).shape == (5, 7, 3)
    assert load_image(good, size=4).shape == (4, 4, 3)
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(InputError) as e:
        load_image(corrupt)
    assert "corrupt.png" in str(e.value) and "cannot read image" in str(e.value)
    with pytest.raises(InputError, match="not found"):
        load_image(tmp_path / "none.png")


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "model.pt"
    save_torch({"w": torch.ones(2)}, target)
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("crash while writing")
    assert torch.equal(load_torch(target)["w"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
    (tmp_path / "trunc.pt").write_bytes(target.read_bytes()[:20])
    with pytest.raises(InputError, match="cannot load checkpoint"):
        load_torch(tmp_path / "trunc.pt")
    write_json(tmp_path / "m.json", {"a": np.float32(0.5), "t": torch.tensor(2.0)})
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": 0.5, "t": 2.0}


# ---------------------------------------------------------------- runtime
def test_runtime_choices_on_cpu():
    if not torch.cuda.is_available():
        assert runtime.precision() == "32-true"
        assert runtime.accelerator() == "cpu"
        assert runtime.autocast_dtype() is None
    assert runtime.precision("cpu") == "32-true"
    assert runtime.peak_memory_mb("cpu") > 10
    runtime.setup(seed=3)
    a = torch.rand(3)
    runtime.setup(seed=3)
    assert torch.equal(a, torch.rand(3))
    m = torch.nn.Linear(2, 2)
    assert runtime.maybe_compile(m, enabled=False) is m
    assert os.environ.get("OMP_WAIT_POLICY") == "PASSIVE"


# ---------------------------------------------------------------- run contract
@pytest.fixture()
def fake_package(tmp_path, monkeypatch):
    """An importable package ``fakepkg`` with configs/default.yaml."""
    pkg = tmp_path / "site" / "fakepkg"
    (pkg / "configs").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "configs" / "default.yaml").write_text("steps: 3\nlr: 0.5\ntrainer:\n  max_epochs: 1\n")
    (pkg / "configs" / "paper.yaml").write_text("steps: 300\nlr: 0.01\ntrainer:\n  max_epochs: 100\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delenv("VISLAB_RUN_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    yield "fakepkg"
    sys.modules.pop("fakepkg", None)
    os.environ.pop("VISLAB_RUN_DIR", None)


def _train(run):
    from vislab.lightning import build_trainer

    assert build_trainer(None, {"max_steps": 1}).max_steps == 1
    (run.checkpoints / "last.ckpt").write_bytes(b"x")
    run.path("pics", "grid.png").write_bytes(b"png")
    run.finish(metric="acc", higher_is_better=True, before=0.25, after=0.9, steps=run.config["steps"])


def test_method_main_embedded_default_writes_the_contract(fake_package, tmp_path, capsys):
    assert method_main(fake_package, _train, []) == 0
    runs = list((tmp_path / "runs" / "fakepkg").iterdir())
    assert len(runs) == 1
    out = runs[0]
    m = json.loads((out / "metrics.json").read_text())
    assert {"package", "metric", "higher_is_better", "before", "after", "seconds"} <= set(m)
    assert m["package"] == "fakepkg" and m["after"] == 0.9 and m["steps"] == 3
    assert cfgmod.read_yaml(out / "config.yaml")["steps"] == 3
    assert (out / "pics" / "grid.png").is_file()
    assert str(out) in capsys.readouterr().err


def test_method_main_preset_overrides_and_print_config(fake_package, tmp_path, capsys):
    assert method_main(fake_package, _train, ["--preset", "paper", "--steps=7", "--print-config"]) == 0
    printed = cfgmod.yaml.safe_load(capsys.readouterr().out)
    assert printed == {"steps": 7, "lr": 0.01, "trainer": {"max_epochs": 100}}
    out = tmp_path / "given"
    assert method_main(fake_package, _train, ["--output-dir", str(out), "--trainer.max_epochs", "2"]) == 0
    assert cfgmod.read_yaml(out / "config.yaml")["trainer"]["max_epochs"] == 2


def test_method_main_user_errors_are_one_line(fake_package, tmp_path, capsys):
    assert method_main(fake_package, _train, ["--nope=1"]) == 2
    err = capsys.readouterr().err
    assert "fakepkg: error:" in err and "unknown key 'nope'" in err and "Traceback" not in err
    assert method_main(fake_package, _train, ["--config", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml: config file not found" in capsys.readouterr().err
    assert method_main(fake_package, _train, ["--output-dir", str(tmp_path / "empty"), "--resume"]) == 2
    assert "no last checkpoint" in capsys.readouterr().err

    def bad(run):
        raise InputError(tmp_path / "ckpt.pt", "not a checkpoint of this model")

    assert method_main(fake_package, bad, []) == 2
    assert "ckpt.pt: not a checkpoint of this model" in capsys.readouterr().err


def test_method_main_subcommands(fake_package):
    seen = []
    assert method_main(fake_package, _train, ["predict", "a", "b"], commands={"predict": lambda a: seen.append(a)}) == 0
    assert seen == [["a", "b"]]


# ---------------------------------------------------------------- dispatcher
def test_choose_member_order(tmp_path, monkeypatch):
    names = {"sags", "pvlr"}
    monkeypatch.delenv("VISLAB_PACKAGE", raising=False)
    monkeypatch.chdir(tmp_path)
    assert choose_member(["pvlr", "--x"], names) == ("pvlr", ["--x"])
    monkeypatch.setenv("VISLAB_PACKAGE", "sags")
    assert choose_member(["--x"], names) == ("sags", ["--x"])
    monkeypatch.delenv("VISLAB_PACKAGE")
    proj = tmp_path / "packages" / "sags" / "src"
    proj.mkdir(parents=True)
    (tmp_path / "packages" / "sags" / "pyproject.toml").write_text('[project]\nname = "sags"\n')
    assert _pyproject_member(proj, names) == "sags"
    monkeypatch.chdir(proj)
    assert choose_member([], names) == ("sags", [])
    monkeypatch.chdir(tmp_path)
    assert choose_member([], {"only"}) == ("only", [])
    assert choose_member([], names) == (None, [])


def test_last_checkpoint_is_written_when_max_steps_stops_mid_epoch(fake_package, tmp_path):
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader, TensorDataset
    from vislab.run import Run

    class Tiny(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(2, 1)

        def training_step(self, batch, i):
            return self.lin(batch[0]).pow(2).mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    run = Run(package=fake_package, out=tmp_path / "run", config={"trainer": {"max_steps": 3, "enable_progress_bar": False}})
    trainer = run.trainer()
    trainer.fit(Tiny(), DataLoader(TensorDataset(torch.randn(40, 2)), batch_size=4))
    ckpt = torch.load(run.out / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["global_step"] == 3
