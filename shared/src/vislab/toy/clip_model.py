"""The toy CLIP: a small ``transformers.CLIPModel`` trained contrastively on the toy world.

Vision: ViT with 8-pixel patches on 32-pixel images; text: the real CLIP BPE vocabulary
(49,408 tokens, ``eos_token_id`` 49407 so pooling takes the first end-of-text token) and a short
context. Saved with ``save_pretrained`` beside its ``CLIPTokenizer`` and a
``preprocessor_config.json``, so it loads like any Hugging Face CLIP folder. Pixels are
normalised with OpenAI CLIP's mean and std, as a real CLIP's are.

Zero-shot classification (also the judge of the toy SD): argmax over the 48 prompts
``"a {colour} {shape}"``; the colour and shape accuracies are the marginals of that argmax.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vislab.toy import world

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

PRESETS: dict[str, dict[str, Any]] = {
    # ~7.4 M parameters (6.3 M of them the token embedding); 3 min budget on an idle 2-core CPU
    "default": {
        "resolution": 32, "n_images": 16384, "seed": 0, "steps": 700, "batch_size": 128,
        "lr": 1e-3, "weight_decay": 0.05, "warmup": 50, "patch": 8, "width": 128, "vision_layers": 3,
        "text_layers": 2, "heads": 4, "projection_dim": 128, "context_length": 32, "eval_images": 480,
    },
    # well under a minute, lower quality: for tests
    "fast": {
        "resolution": 32, "n_images": 1024, "seed": 0, "steps": 80, "batch_size": 64,
        "lr": 2e-3, "weight_decay": 0.05, "warmup": 10, "patch": 8, "width": 64, "vision_layers": 2,
        "text_layers": 1, "heads": 2, "projection_dim": 64, "context_length": 32, "eval_images": 96,
    },
}


def clip_config(cfg: dict[str, Any]):
    """The ``transformers.CLIPConfig`` of a preset."""
    from transformers import CLIPConfig

    w, h = cfg["width"], cfg["heads"]
    text = {
        "vocab_size": 49408, "hidden_size": w, "intermediate_size": 4 * w, "num_hidden_layers": cfg["text_layers"],
        "num_attention_heads": h, "max_position_embeddings": cfg["context_length"], "projection_dim": cfg["projection_dim"],
        "bos_token_id": 49406, "eos_token_id": 49407, "pad_token_id": 49407,
    }
    vision = {
        "hidden_size": w, "intermediate_size": 4 * w, "num_hidden_layers": cfg["vision_layers"], "num_attention_heads": h,
        "image_size": cfg["resolution"], "patch_size": cfg["patch"], "projection_dim": cfg["projection_dim"],
    }
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=cfg["projection_dim"])


def normalize(images: torch.Tensor) -> torch.Tensor:
    """[0, 1] images (B, 3, H, W) -> CLIP-normalised pixel values."""
    mean = torch.tensor(CLIP_MEAN, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images - mean) / std


def tokenize(tokenizer, texts: list[str], length: int) -> torch.Tensor:
    """Token ids (B, length), padded with end-of-text, truncated."""
    return tokenizer(list(texts), padding="max_length", truncation=True, max_length=length, return_tensors="pt").input_ids


def warmup_cosine(step: int, total: int, warmup: int) -> float:
    """Learning-rate factor: linear warm-up, then cosine to zero."""
    if step < warmup:
        return (step + 1) / max(1, warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))


class ZeroShot:
    """Zero-shot colour/shape classifier over ``"a {colour} {shape}"`` prompts."""

    def __init__(self, model, tokenizer, context_length: int):
        self.model = model.eval()
        self.names = [(c, s) for c in world.COLORS for s in world.SHAPES]
        ids = tokenize(tokenizer, [f"a {c} {s}" for c, s in self.names], context_length)
        with torch.no_grad():
            t = model.get_text_features(input_ids=ids)
            t = getattr(t, "pooler_output", t)
        self.text = torch.nn.functional.normalize(t, dim=-1)

    @classmethod
    def from_folder(cls, path: str | Path) -> ZeroShot:
        from transformers import CLIPModel, CLIPTokenizer

        model = CLIPModel.from_pretrained(path, local_files_only=True)
        tok = CLIPTokenizer.from_pretrained(path, local_files_only=True)
        return cls(model, tok, model.config.text_config.max_position_embeddings)

    @torch.no_grad()
    def classify(self, images: torch.Tensor, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """[0, 1] images (B, 3, H, W) -> (colour index, shape index) arrays into COLORS / SHAPES."""
        size = self.model.config.vision_config.image_size
        preds = []
        for i in range(0, len(images), batch):
            x = images[i : i + batch].float()
            if x.shape[-1] != size:
                x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
            f = self.model.get_image_features(pixel_values=normalize(x))
            f = torch.nn.functional.normalize(getattr(f, "pooler_output", f), dim=-1)
            preds.append((f @ self.text.T).argmax(-1))
        p = torch.cat(preds).numpy()
        return p // len(world.SHAPES), p % len(world.SHAPES)


def single_object_eval_set(n: int, resolution: int = 32, seed: int = 777) -> tuple[torch.Tensor, np.ndarray, np.ndarray, np.ndarray]:
    """``n`` single-object images of every combination (held-out ones included): images and true
    colour / shape indices and a held-out flag."""
    ds = world.ToyDataset(n, resolution=resolution, seed=seed, split="all", max_objects=1)
    images, _ = ds.tensors()
    objs = [ds.spec(i)["objects"][0] for i in range(n)]
    colors = np.array([list(world.COLORS).index(o["color"]) for o in objs])
    shapes = np.array([world.SHAPES.index(o["shape"]) for o in objs])
    held = np.array([world.is_held_out(o) for o in objs])
    return images, colors, shapes, held


def evaluate(judge: ZeroShot, n: int, resolution: int = 32) -> dict[str, Any]:
    """Zero-shot accuracies on single-object images (chance: 1/6 shape, 1/8 colour)."""
    images, colors, shapes, held = single_object_eval_set(n, resolution)
    pc, ps = judge.classify(images)
    res = {
        "zero_shot_shape_acc": float((ps == shapes).mean()),
        "zero_shot_color_acc": float((pc == colors).mean()),
        "zero_shot_both_acc": float(((ps == shapes) & (pc == colors)).mean()),
        "chance_shape": 1 / len(world.SHAPES),
        "chance_color": 1 / len(world.COLORS),
        "eval_images": int(n),
    }
    if held.any():
        res["heldout_combo_both_acc"] = float(((ps == shapes) & (pc == colors))[held].mean())
        res["heldout_combo_images"] = int(held.sum())
    res["_confusion"] = (colors, pc, shapes, ps)
    return res


def save_confusion(path: Path, colors, pc, shapes, ps, title: str = "toy CLIP zero-shot") -> None:
    """PNG of the shape and colour confusion matrices (rows: truth, columns: prediction)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
    for ax, (truth, pred, names, what) in zip(axes, [(shapes, ps, world.SHAPES, "shape"), (colors, pc, list(world.COLORS), "colour")]):
        k = len(names)
        m = np.zeros((k, k), dtype=int)
        np.add.at(m, (truth, pred), 1)
        ax.imshow(m / np.maximum(m.sum(1, keepdims=True), 1), cmap="Blues", vmin=0, vmax=1)
        for i in range(k):
            for j in range(k):
                if m[i, j]:
                    ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=7, color="black" if i != j else "white")
        ax.set_xticks(range(k), names, rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(k), names, fontsize=7)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{what}: {np.mean(truth == pred) * 100:.1f} % (chance {100 / k:.1f} %)", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def pretrain_clip(cfg: dict[str, Any], out: str | Path) -> dict[str, Any]:
    """Train a toy CLIP with config ``cfg`` (a :data:`PRESETS` entry) and save it into ``out``.

    Writes the HF folder (config, weights, tokenizer, preprocessor config), ``toy_metrics.json``,
    ``zero_shot_confusion.png`` and ``world_samples.png``. Returns the metrics.
    """
    from transformers import CLIPImageProcessor, CLIPModel

    from vislab.clip import clip_tokenizer
    from vislab.io import write_json
    from vislab.run import console, track

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0, c0 = time.time(), time.process_time()
    torch.manual_seed(cfg["seed"])
    tok = clip_tokenizer(model_max_length=cfg["context_length"])
    ds = world.ToyDataset(cfg["n_images"], resolution=cfg["resolution"], seed=cfg["seed"], split="pretrain")
    images, captions = ds.tensors(progress="rendering the toy world")
    world.save_captioned_grid(out / "world_samples.png", images[:24], captions[:24], title="toy world (pretraining samples)")
    pixels = normalize(images)
    ids = tokenize(tok, captions, cfg["context_length"])
    t_render = time.time() - t0
    stage = lambda what: console().print(f"toy CLIP: {what} ({time.time() - t0:.0f} s elapsed)")  # noqa: E731
    stage(f"rendered {len(images)} world images")

    model = CLIPModel(clip_config(cfg))
    n_params = sum(p.numel() for p in model.parameters())
    judge = ZeroShot(model, tok, cfg["context_length"])
    before = evaluate(judge, cfg["eval_images"], cfg["resolution"])
    model.train()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg["lr"], betas=(0.9, 0.98), eps=1e-6,
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, cfg["steps"], cfg["warmup"]))
    g = torch.Generator().manual_seed(cfg["seed"])
    t1 = time.time()
    losses = []
    for _step in track(range(cfg["steps"]), "toy CLIP pretraining"):
        idx = torch.randint(len(pixels), (cfg["batch_size"],), generator=g)
        loss = model(input_ids=ids[idx], pixel_values=pixels[idx], return_loss=True).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        with torch.no_grad():  # CLIP clamps the learned temperature at 100
            model.logit_scale.clamp_(0, math.log(100))
        losses.append(loss.item())
    t_train = time.time() - t1
    stage(f"trained, {cfg['steps']} steps")
    model.eval()
    judge = ZeroShot(model, tok, cfg["context_length"])
    after = evaluate(judge, cfg["eval_images"], cfg["resolution"])
    conf = after.pop("_confusion")
    before.pop("_confusion")
    save_confusion(out / "zero_shot_confusion.png", *conf, title=f"toy CLIP zero-shot, {cfg['steps']} steps")

    model.save_pretrained(out)
    tok.save_pretrained(out)
    CLIPImageProcessor(
        size={"shortest_edge": cfg["resolution"]}, crop_size={"height": cfg["resolution"], "width": cfg["resolution"]},
        image_mean=list(CLIP_MEAN), image_std=list(CLIP_STD),
    ).save_pretrained(out)
    k = max(1, len(losses) // 20)
    metrics = {
        "kind": "clip", "config": cfg, "parameters": n_params,
        "loss_first": float(np.mean(losses[:k])), "loss_last": float(np.mean(losses[-k:])),
        "before": {k2: v for k2, v in before.items()}, **after,
        "seconds_render": round(t_render, 1), "seconds_train": round(t_train, 1), "seconds_total": round(time.time() - t0, 1),
        "cpu_seconds": round(time.process_time() - c0, 1), "threads": torch.get_num_threads(),
    }
    write_json(out / "toy_metrics.json", metrics)
    console().print(
        f"toy CLIP: zero-shot shape {after['zero_shot_shape_acc'] * 100:.1f} % (chance 16.7 %), colour "
        f"{after['zero_shot_color_acc'] * 100:.1f} % (chance 12.5 %), {metrics['seconds_total']:.0f} s"
    )
    return metrics
