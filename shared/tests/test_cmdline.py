"""vislab.cmdline: inference options declared from a package's config schema."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from vislab.cmdline import Option, add_config_options, apply_overrides, config_overrides, trained_config
from vislab.errors import ConfigError


def _parser(options, **kw) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="t")
    add_config_options(p, "pvlr", options, **kw)
    return p


def test_type_default_and_given_overrides():
    p = _parser({"--threshold": "threshold", "--n-ctx": "model.n_ctx", "--lr": "optim.lr", "--cap": "model.cap_conditional"})
    a = p.parse_args([])
    assert a.threshold is None and a.n_ctx is None and a.cap is None  # unset: the trained run's value
    assert config_overrides(a) == {}
    a = p.parse_args(["--threshold", "1", "--n-ctx", "8", "--lr=1e-3", "--cap"])
    over = config_overrides(a)
    assert over == {"threshold": 1.0, "model.n_ctx": 8, "optim.lr": 1e-3, "model.cap_conditional": True}
    assert type(over["threshold"]) is float and type(over["model.n_ctx"]) is int  # types from default.yaml
    assert config_overrides(p.parse_args(["--no-cap"])) == {"model.cap_conditional": False}


def test_defaults_from_a_config_are_not_overrides():
    p = _parser({"--threshold": "threshold", "--fusion": "model.fusion"}, defaults={"threshold": 0.3, "model": {"fusion": "sum"}})
    a = p.parse_args([])
    assert (a.threshold, a.fusion) == (0.3, "sum") and config_overrides(a) == {}
    assert config_overrides(p.parse_args(["--fusion", "sum"])) == {"model.fusion": "sum"}  # given, even if equal


def test_choices_and_help_from_the_yaml_comment():
    p = _parser({"--fusion": "model.fusion", "--n-ctx": "model.n_ctx"})
    text = " ".join(p.format_help().split())
    assert "{ifm,sum,concat_linear,kap_only,cap_only}" in text  # closed choice of the comment
    assert "learnable context vectors of the context-aware prompting" in text  # the comment is the help
    assert "model.n_ctx: int >= 1" in text
    with pytest.raises(ConfigError, match=r"--fusion: 'sun' is not one of .*did you mean 'sum'"):
        p.parse_args(["--fusion", "sun"])


@pytest.mark.parametrize(("argv", "message"), [
    (["--n-ctx", "abc"], "--n-ctx: expected int >= 1, got str 'abc'"),
    (["--n-ctx", "0"], "--n-ctx: must be >= 1, got 0"),
    (["--n-ctx", "2.5"], "--n-ctx: expected int >= 1, got float 2.5"),
    (["--threshold", "-0.5"], "--threshold: must be >= 0, got -0.5"),
])
def test_bad_value_is_a_config_error(argv, message):
    p = _parser({"--threshold": "threshold", "--n-ctx": "model.n_ctx"})
    with pytest.raises(ConfigError) as e:
        p.parse_args(argv)
    assert str(e.value) == message and "\n" not in str(e.value)


def test_bad_value_exits_2_with_one_line(capsys):
    from vislab.run import method_main

    def cmd(argv):
        return _parser({"--threshold": "threshold"}).parse_args(argv) and 0

    assert method_main("pvlr", lambda run: None, ["x", "--threshold", "high"], commands={"x": cmd}) == 2
    err = capsys.readouterr().err.strip()
    assert err == "pvlr: error: --threshold: expected float >= 0, got str 'high'"


def test_option_narrows_choices_sets_default_and_type():
    p = argparse.ArgumentParser()
    add_config_options(p, "sags", {
        "--provider": Option("segment.provider", default="sam", choices=("sam", "floodfill")),
        "--sam-k": "segment.sam_k",  # null default: int from paper.yaml
        "--gd": Option("segment.gd", default=True),
    })
    a = p.parse_args(["--sam-k", "2", "--no-gd"])
    assert (a.provider, a.sam_k, a.gd) == ("sam", 2, False)
    assert config_overrides(a) == {"segment.sam_k": 2, "segment.gd": False}
    with pytest.raises(ConfigError, match="not one of sam, floodfill"):
        p.parse_args(["--provider", "oracle"])  # a field choice the command does not offer
    with pytest.raises(ConfigError, match="--sam-k: expected int"):
        p.parse_args(["--sam-k", "two"])
    assert p.parse_args(["--sam-k", "null"]).sam_k is None
    q = argparse.ArgumentParser()
    add_config_options(q, "pvlr", {"--root": Option("data.root", type=Path)})
    assert config_overrides(q.parse_args(["--root", "a/b"])) == {"data.root": Path("a/b")}
    with pytest.raises(KeyError):
        add_config_options(q, "pvlr", {"--nope": "model.nope"})


def test_trained_config_and_apply(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text("threshold: 0.7\n")
    cfg = trained_config(run / "checkpoints" / "last.ckpt", "pvlr")
    assert cfg["threshold"] == 0.7 and cfg["model"]["n_ctx"] == 4  # run's value, defaults for keys it lacks
    assert trained_config(tmp_path / "moved.ckpt", "pvlr")["threshold"] == 0.5
    new = apply_overrides(cfg, {"threshold": 0.2, "model.n_ctx": 8})
    assert (new["threshold"], new["model"]["n_ctx"], cfg["threshold"]) == (0.2, 8, 0.7)
