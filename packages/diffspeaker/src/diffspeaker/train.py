"""``diffspeaker`` training run: LVE/FDD before -> fit -> LVE/FDD after, pictures, metrics.json."""

from __future__ import annotations

import csv
from typing import Any

import numpy as np
from vislab.run import Run


def build(config: dict[str, Any]):
    """DataModule and LightningModule from a resolved config."""
    from diffspeaker.data import TalkingFaceDataModule
    from diffspeaker.module import DiffSpeakerModule

    dm = TalkingFaceDataModule(**config["data"], seed=int(config["seed"]))
    model_cfg = {
        **config["model"],
        "n_feats": int(dm.n_feats),
        "n_styles": len(dm.geometry.styles),
        "fps": float(dm.geometry.fps),
    }
    module = DiffSpeakerModule(
        model=model_cfg,
        audio=config["audio"]["config"],
        optim=config["optim"],
        loss=config["loss"],
        sampling=config["sampling"],
        audio_path=config["audio"]["path"],
    )
    module.geometry = dm.geometry
    return dm, module


def template_only(dataset, geometry) -> dict[str, float]:
    """LVE/FDD of the static template (zero offsets): the trivial baseline."""
    from diffspeaker.metrics import lip_vertex_error, upper_face_dynamics_deviation

    lve, fdd = [], []
    for i in range(len(dataset)):
        it = dataset[i]
        y = it["vertices"]
        p = np.tile(it["template"], (len(y), 1))
        lve.append(lip_vertex_error(p, y, geometry.lip_idx))
        fdd.append(upper_face_dynamics_deviation(p, y, it["template"], geometry.upper_idx))
    return {"LVE": float(np.mean(lve)), "FDD": float(np.mean(fdd))}


def fit(config: dict[str, Any], dm=None, module=None, run: Run | None = None):
    """Train DiffSpeaker with ``config`` (a resolved ``diffspeaker`` config; ``data`` may point at VOCASET or
    BIWI) and return the trained :class:`~diffspeaker.module.DiffSpeakerModule` in eval mode.

    With a ``run`` the trainer logs and checkpoints into its folder (and resumes from ``last.ckpt`` when it
    was started with ``--resume``); without one nothing is written."""
    if dm is None or module is None:
        dm, module = build(config)
    overrides: dict[str, Any] = {}
    if config["trainer"].get("strategy") == "ddp":
        # wav2vec2's masked_spec_embed / LayerDrop leave parameters unused in some steps (PL 1.9, the
        # official code's version, searched for unused parameters by default)
        overrides["strategy"] = "ddp_find_unused_parameters_true"
    if run is not None:
        run.trainer(**overrides).fit(module, dm, ckpt_path=run.resume_checkpoint())
    else:
        from vislab.lightning import build_trainer

        tcfg = {k: v for k, v in config["trainer"].items() if k != "checkpoint"}
        build_trainer(None, {**tcfg, **overrides}).fit(module, dm)
    return module.eval()


def train(run: Run) -> dict[str, Any]:
    """The ``diffspeaker`` run: LVE/FDD before -> :func:`fit` -> after, the template-only baseline, pictures."""
    import torch
    from vislab import runtime

    from diffspeaker.module import evaluate

    cfg = run.config
    runtime.setup(int(cfg["seed"]))
    dm, module = build(cfg)
    main = runtime.is_main_process()
    test_set = dm.test_set
    eval_bs = int(cfg["eval"]["batch_size"])
    before: dict[str, Any] = {}
    if main:
        run.log(
            f"train clips {len(dm.train_set)}, test clips {len(test_set)}, vertices {dm.n_feats // 3}, styles {len(dm.geometry.styles)}"
        )
        before = evaluate(module, test_set, batch_size=eval_bs, progress="LVE before training")
    module = fit(cfg, dm, module, run)
    if module.global_rank != 0:  # DDP: the other ranks are done
        return {}
    module = module.to(torch.device("cpu")) if runtime.device().type == "cpu" else module
    after = evaluate(module, test_set, batch_size=eval_bs, progress="LVE after training")
    baseline = template_only(test_set, dm.geometry)
    extra: dict[str, Any] = {
        "FDD_before": before["FDD"],
        "FDD_after": after["FDD"],
        "LVE_weighted_after": after["LVE_weighted"],
        "FDD_weighted_after": after["FDD_weighted"],
        "template_only_LVE": baseline["LVE"],
        "template_only_FDD": baseline["FDD"],
        "ddim_steps": int(cfg["sampling"]["steps"]),
        "train_steps": int(module.global_step),
    }
    if cfg["data"]["source"] == "synthetic":
        extra["mean_lip_opening_by_style"] = style_openings(module, test_set, after["results"])
    write_pictures(run, module, dm, before, after, bool(cfg["eval"].get("video", True)))
    return run.finish(metric="LVE", higher_is_better=False, before=before["LVE"], after=after["LVE"], **extra)


def lip_opening(verts: np.ndarray, template: np.ndarray, lip_idx: np.ndarray) -> np.ndarray:
    """Per-frame mouth opening: mean |y offset| over lip vertices. verts (T,3V), template (3V,)."""
    off = (np.asarray(verts).reshape(len(verts), -1, 3) - np.asarray(template).reshape(1, -1, 3))[
        :, lip_idx, 1
    ]
    return np.abs(off).mean(1)


def style_openings(module, dataset, results: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean predicted vs true lip opening per style (the ordering of k_style must show)."""
    g = module.geometry
    out: dict[str, dict[str, list[float]]] = {}
    for i, r in enumerate(results):
        it = dataset[i]
        s = g.styles[int(np.argmax(it["style"]))]
        d = out.setdefault(s, {"pred": [], "gt": []})
        d["pred"].append(float(lip_opening(r["pred"], it["template"], g.lip_idx).mean()))
        d["gt"].append(float(lip_opening(it["vertices"], it["template"], g.lip_idx).mean()))
    return {s: {k: float(np.mean(v)) for k, v in d.items()} for s, d in out.items()}


def write_pictures(
    run: Run, module, dm, before: dict[str, Any], after: dict[str, Any], video: bool = True
) -> None:
    """loss curve, lip-opening curves, mesh frames (GT / before / after) and an animation."""
    from vislab.pictures import pyplot, save_figure, save_png

    from diffspeaker.render import render_sequence, save_video, side_by_side

    g = dm.geometry
    ds = dm.test_set
    # 1. loss curve
    rows = (
        list(csv.DictReader(open(run.out / "logs" / "metrics.csv")))
        if (run.out / "logs" / "metrics.csv").is_file()
        else []
    )
    plt = pyplot()
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
    for key in ("train/loss", "train/vertex", "train/velocity"):
        pts = [(int(r["step"]), float(r[key])) for r in rows if r.get(key)]
        if pts:
            ax[0].plot(*zip(*pts), label=key, lw=1)
    ax[0].set_yscale("log"), ax[0].set_xlabel("step"), ax[0].legend(), ax[0].set_title("training loss")
    val = [(int(r["step"]), float(r["val/LVE"])) for r in rows if r.get("val/LVE")]
    if val:
        ax[1].plot(*zip(*val), "o-")
    ax[1].axhline(before["LVE"], color="r", ls="--", label="before")
    ax[1].axhline(after["LVE"], color="g", ls="--", label="after (test)")
    ax[1].set_title("LVE (val, DDIM)"), ax[1].set_xlabel("step"), ax[1].legend()
    fig.tight_layout()
    save_figure(fig, run.path("loss_curve.png"), dpi=100)
    # 2. lip opening over time, GT vs before vs after, a few test clips
    n = min(3, len(ds))
    fig, axes = plt.subplots(n, 1, figsize=(9, 2.3 * n), squeeze=False)
    for k in range(n):
        it = ds[k]
        tt = np.arange(len(it["vertices"])) / g.fps
        a = axes[k, 0]
        a.plot(tt, lip_opening(it["vertices"], it["template"], g.lip_idx), "k", label="ground truth")
        a.plot(
            tt, lip_opening(before["results"][k]["pred"], it["template"], g.lip_idx), "r--", label="before"
        )
        a.plot(tt, lip_opening(after["results"][k]["pred"], it["template"], g.lip_idx), "g", label="after")
        audio = np.abs(it["audio"])
        a.fill_between(
            np.arange(len(audio)) / 16000,
            0,
            audio / max(audio.max(), 1e-9) * a.get_ylim()[1] * 0.9,
            color="0.85",
            zorder=0,
            label="|audio|",
        )
        a.set_title(f"{it['name']} ({it['subject']})", fontsize=9)
        a.set_ylabel("lip opening")
    axes[0, 0].legend(fontsize=8, ncol=4)
    axes[-1, 0].set_xlabel("seconds")
    fig.tight_layout()
    save_figure(fig, run.path("lip_opening.png"), dpi=100)
    # 3. mesh frames: rows GT / before / after at the frames of largest true opening
    it = ds[0]
    V = len(it["template"]) // 3
    gt = it["vertices"].reshape(-1, V, 3)
    seqs = {
        "ground truth": gt,
        "before": before["results"][0]["pred"].reshape(-1, V, 3),
        "after": after["results"][0]["pred"].reshape(-1, V, 3),
    }
    op = lip_opening(it["vertices"], it["template"], g.lip_idx)
    picks = sorted(np.argsort(op)[-3:].tolist() + [int(np.argmin(op))])
    grid = [
        np.concatenate(render_sequence(s[picks], g.faces, size=200, title=name), axis=1)
        for name, s in seqs.items()
    ]
    save_png(np.concatenate(grid, axis=0), run.path("mesh_frames.png"))
    # 4. animation (GT | after)
    if video:
        frames = side_by_side(
            render_sequence(gt, g.faces, size=200, title="ground truth"),
            render_sequence(seqs["after"], g.faces, size=200, title="DiffSpeaker"),
        )
        save_video(frames, run.path("animation.gif"), fps=g.fps)
