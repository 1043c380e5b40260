"""The typed config schema (vislab.schema) and the run contract's checks before anything runs."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from vislab.errors import ConfigError, InputError
from vislab.run import check_output_dir, method_main
from vislab.schema import check_trainer, schema_from_text, validate

DEFAULT = """\
seed: 0
threads: null            # torch threads (null: torch's default)
data:
  source: toy            # toy | coco (COCO 2014 folder) | voc
  root: null
  batch_size: 32
  num_workers: 0
  every: 4               # evaluate every N steps; 0 = never
  name: a b              # free text | with a bar
optim:
  # learning rate of the head
  lr: 3.0e-3
  betas: [0.9, 0.999]
  shift: 0.5             # may be negative
kwargs: {}               # passed to the library
flag: true
seeds: [0, 1]
trainer:
  max_epochs: 3
"""


@pytest.fixture(scope="module")
def schema():
    return schema_from_text("demo", DEFAULT, presets=[{"data": {"root": "x", "batch_size": None}}])


def test_fields_types_help_and_choices(schema):
    f = schema.fields
    assert f["data.source"].choices == ("toy", "coco", "voc")
    assert f["data.name"].choices is None  # "free text" is not one word: an open string
    assert f["optim.lr"].kind == "float" and f["optim.lr"].help == "learning rate of the head"
    assert f["data.batch_size"].minimum == 1 and f["data.batch_size"].nullable  # a preset sets it to null
    assert f["data.num_workers"].minimum == 0
    assert f["data.every"].minimum == 0  # the comment says what 0 means: 0 allowed, negatives not
    assert f["optim.shift"].minimum is None
    assert f["threads"].nullable and f["kwargs"].open
    text = schema.help_text()
    assert "--optim.lr float >= 0 (default 0.003)  learning rate of the head" in text
    assert "--data.source {toy,coco,voc} (default toy)" in text


@pytest.mark.parametrize(
    "config, message",
    [
        ({"optim": {"lr": "abc"}}, "optim.lr: expected float >= 0, got str 'abc'"),
        ({"data": {"batch_size": 0}}, "data.batch_size: must be >= 1, got 0"),
        ({"data": {"batch_size": 2.5}}, "data.batch_size: expected int"),
        ({"data": {"source": "cocoa"}}, "'cocoa' is not one of toy, coco, voc (did you mean 'coco'?)"),
        ({"data": {"sourse": "toy"}}, "data.sourse: unknown key (did you mean 'source'?)"),
        ({"flag": "maybe"}, "flag: expected bool"),
        ({"seeds": [0, "x"]}, "seeds: expected list[int]"),
        ({"optim": {"betas": 0.9}}, "optim.betas: expected list[float]"),
        ({"seed": None}, "seed: expected int >= 0, got null"),
        ({"trainer": {"max_stepz": 5}}, "trainer.max_stepz: not a pytorch_lightning.Trainer keyword (did you mean 'max_steps'?)"),
        ({"trainer": {"max_steps": "abc"}}, "trainer.max_steps: str 'abc' does not match"),
        ({"trainer": {"max_steps": 0}}, "zero training budget"),
        ({"trainer": {"max_epochs": -5}}, "trainer.max_epochs: must be -1 (no limit) or >= 1, got -5"),
        ({"trainer": {"accumulate_grad_batches": 0}}, "trainer.accumulate_grad_batches: must be >= 1"),
        ({"trainer": "fast"}, "trainer: expected a mapping"),
    ],
)
def test_bad_values_are_refused_with_the_key(schema, config, message):
    with pytest.raises(ConfigError) as e:
        validate(schema, config)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_good_values_pass_and_are_coerced(schema):
    cfg = validate(schema, {"optim": {"lr": 1, "shift": -2.0}, "data": {"batch_size": None, "root": "/x"},
                            "kwargs": {"anything": 1}, "trainer": {"max_steps": 20.0, "strategy": "ddp", "devices": 2,
                                                                  "precision": "bf16-mixed", "checkpoint": {"every_n_train_steps": 5}}})
    assert cfg["optim"]["lr"] == 1.0 and isinstance(cfg["optim"]["lr"], float)
    assert cfg["trainer"]["max_steps"] == 20 and isinstance(cfg["trainer"]["max_steps"], int)
    assert check_trainer({"max_steps": -1, "limit_train_batches": 0.5, "gradient_clip_val": None})


def test_output_dir_rules(tmp_path: Path):
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(InputError, match="existing file"):
        check_output_dir(f, resume=False, overwrite=False)
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text("a: 1\n")
    (run / "metrics.json").write_text("{}")
    with pytest.raises(InputError, match="holds a finished run; give --resume"):
        check_output_dir(run, resume=False, overwrite=False)
    check_output_dir(run, resume=True, overwrite=False)  # resuming keeps everything
    assert (run / "metrics.json").is_file()
    check_output_dir(run, resume=False, overwrite=True)
    assert not any(run.iterdir())
    other = tmp_path / "home"
    other.mkdir()
    (other / "thesis.tex").write_text("precious")
    with pytest.raises(InputError, match="does not look like a run folder"):
        check_output_dir(other, resume=False, overwrite=True)
    assert (other / "thesis.tex").is_file()
    check_output_dir(tmp_path / "new", resume=False, overwrite=False)  # absent: fine


def _fit(run, steps: int):
    import pytorch_lightning as pl
    import torch

    class M(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Linear(2, 1)

        def training_step(self, batch, i):
            loss = self.w(batch[0]).pow(2).mean()
            self.log("loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

        def train_dataloader(self):
            return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(8, 2)), batch_size=2)

    trainer = run.trainer(max_steps=steps, enable_progress_bar=False)
    trainer.fit(M(), ckpt_path=str(run.resume_checkpoint()) if run.resume else None)
    return trainer


def test_run_contract_two_trainers_append_logs_and_no_versioned_last(tmp_path, monkeypatch, capsys):
    """A second Trainer of the same run continues metrics.csv and overwrites last.ckpt (no last-v1.ckpt);
    a zero-step run is reported untrained, never improved."""
    from vislab import run as runmod

    monkeypatch.setattr(runmod, "package_configs", lambda package: _configs(tmp_path))
    monkeypatch.setattr(runmod, "list_presets", lambda package: ["default"])
    out = tmp_path / "out"

    def train(run):
        _fit(run, 2)
        _fit(run, 4)
        run.finish("m", True, 0.0, 1.0)

    assert method_main("demo", train, ["--output-dir", str(out)]) == 0
    rows = list(csv.DictReader(open(out / "logs" / "metrics.csv")))
    assert sorted({int(r["step"]) for r in rows if r.get("loss")}) == [0, 1, 2, 3]  # both trainers' rows kept
    assert sorted(p.name for p in (out / "checkpoints").glob("last*.ckpt")) == ["last.ckpt"]
    assert (out / "config.yaml").read_text().startswith("# demo ")
    # a second run into the finished folder is refused; --overwrite replaces it
    assert method_main("demo", train, ["--output-dir", str(out)]) == 2
    assert "holds a finished run" in capsys.readouterr().err

    def untrained(run):
        run.trainer(max_steps=1, limit_train_batches=0, enable_progress_bar=False)
        run.finish("m", True, 0.0, 1.0)

    assert method_main("demo", untrained, ["--output-dir", str(out), "--overwrite"]) == 0
    import json

    m = json.loads((out / "metrics.json").read_text())
    assert m["trained"] is False
    assert "untrained" in capsys.readouterr().err


def test_ctrl_c_inside_fit_exits_130_with_a_message(tmp_path, monkeypatch, capsys):
    import pytorch_lightning as pl
    from vislab import run as runmod

    monkeypatch.setattr(runmod, "package_configs", lambda package: _configs(tmp_path))
    monkeypatch.setattr(runmod, "list_presets", lambda package: ["default"])

    class Interrupt(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            raise KeyboardInterrupt

    def train(run):
        from vislab.lightning import build_trainer

        trainer = build_trainer(run, {"max_steps": 3, "enable_progress_bar": False}, callbacks=[Interrupt()])
        import torch

        class M(pl.LightningModule):
            def __init__(self):
                super().__init__()
                self.w = torch.nn.Linear(2, 1)

            def training_step(self, batch, i):
                return self.w(batch[0]).sum()

            def configure_optimizers(self):
                return torch.optim.SGD(self.parameters(), lr=0.1)

            def train_dataloader(self):
                return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(8, 2)), batch_size=2)

        trainer.fit(M())
        run.finish("m", True, 0.0, 1.0)

    assert method_main("demo", train, ["--output-dir", str(tmp_path / "o")]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "Traceback" not in err
    assert not (tmp_path / "o" / "metrics.json").exists()


def _configs(tmp_path: Path) -> Path:
    d = tmp_path / "configs"
    d.mkdir(exist_ok=True)
    (d / "default.yaml").write_text("seed: 0\ntrainer: {}\n")
    return d


def test_logger_tensorboard_writes_events_beside_the_csv(tmp_path, monkeypatch):
    from vislab import run as runmod

    monkeypatch.setattr(runmod, "package_configs", lambda package: _configs(tmp_path))
    monkeypatch.setattr(runmod, "list_presets", lambda package: ["default"])
    out = tmp_path / "tb"

    def train(run):
        _fit(run, 3)
        run.finish("m", True, 0.0, 1.0)

    assert method_main("demo", train, ["--output-dir", str(out), "--logger", "tensorboard"]) == 0
    assert list((out / "logs" / "tensorboard").glob("events.out.tfevents.*"))
    assert (out / "logs" / "metrics.csv").is_file()


def test_two_runs_in_one_process_get_two_default_folders(tmp_path, monkeypatch):
    """A notebook or a script calling the command twice (even within one second) gets two folders, never a refusal."""
    from vislab import run as runmod

    monkeypatch.setattr(runmod, "package_configs", lambda package: _configs(tmp_path))
    monkeypatch.setattr(runmod, "list_presets", lambda package: ["default"])
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VISLAB_RUN_DIR", raising=False)

    def train(run):
        run.finish("m", True, 0.0, 1.0, trained=True)

    assert method_main("demo", train, []) == 0
    assert method_main("demo", train, []) == 0
    assert len([p for p in (tmp_path / "runs" / "demo").iterdir() if (p / "metrics.json").is_file()]) == 2
