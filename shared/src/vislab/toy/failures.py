"""The failure modes of the toy Stable Diffusion that the diffusion packages target, measured by the
pixel-level oracle (:mod:`vislab.toy.oracle`), never by a CLIP.

- **Object dropping** (catastrophic neglect, Attend-and-Excite; CompInv's target): for prompts
  ``"a {c1} {s1} and a {c2} {s2}"`` (two distinct colours and shapes, no held-out combination), the
  share of samples in which at least one of the two objects is missing (no object shows its shape or
  its colour; a wrong colour alone is a binding error, counted apart).
- **Overfitting of a personalised concept** (the failure GAL4P and compositional inversion address):
  :data:`CONCEPT` (a colour-shape combination the toy models never saw) learned from 4 images by plain
  textual inversion (Gal et al. 2023) and by plain DreamBooth (Ruiz et al. 2023, no prior
  preservation), then prompts ``"a <concept> and a {c} {s}"``. A method's overfitting rate is the
  share of samples that lose the prompt's other object (the oracle finds it dropped); the same prompts
  with the concept's own words (``"a pink star and a {c} {s}"``) give the base rate of the untouched
  model.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vislab.toy import oracle, world

CONCEPT = ("pink", "star")
PLACEHOLDER = "<concept>"
DB_IDENTIFIER = "sks"
SIZES: dict[str, dict[str, int]] = {
    # sampling as the toy SD's own evaluation (DDPM 50 steps, guidance 3)
    "default": {"n_two": 96, "n_overfit": 24, "ti_steps": 200, "db_steps": 200, "steps": 50},
    "fast": {"n_two": 8, "n_overfit": 4, "ti_steps": 4, "db_steps": 4, "steps": 5},  # tests: the code path only
}
"""How many samples and steps :func:`measure` uses, by toy SD preset."""


def two_object_prompts(n: int, seed: int = 0) -> list[str]:
    """``n`` prompts ``"a {c1} {s1} and a {c2} {s2}"``: distinct colours and shapes, no held-out combination."""
    rng = np.random.default_rng(seed)
    cols = list(world.COLORS)
    out = []
    while len(out) < n:
        s1, s2 = (str(s) for s in rng.choice(world.SHAPES, 2, replace=False))
        c1, c2 = (str(c) for c in rng.choice(cols, 2, replace=False))
        if (c1, s1) not in world.HELD_OUT and (c2, s2) not in world.HELD_OUT:
            out.append(f"a {c1} {s1} and a {c2} {s2}")
    return out


def drop_rate(pipe, n: int = 96, seed: int = 0, steps: int = 50, guidance: float = 3.0) -> dict[str, Any]:
    """Object dropping on ``n`` two-object prompts: ``drop_rate`` (share of samples missing an object),
    ``both_present_rate`` (both objects with the right shape and colour), the oracle's other means."""
    from vislab.toy.sd_model import generate

    prompts = two_object_prompts(n, seed)
    images = generate(pipe, prompts, seed, steps, guidance)
    res = oracle.score(images, prompts)
    s = oracle.summarize(res)
    return {"prompts": n, "drop_rate": s["drop_rate"], "both_present_rate": s["all_present_rate"],
            "objects_present": s["objects_present"], "alignment": s["alignment"], "_images": images, "_prompts": prompts}


def concept_images(n: int = 4, resolution: int = 32, seed: int = 0) -> torch.Tensor:
    """``n`` rendered single-object images of :data:`CONCEPT` (held-out split), (n, 3, H, W) in [0, 1]."""
    out = []
    i = 0
    while len(out) < n:
        spec = world.sample_spec(seed, i, "heldout", max_objects=1)
        o = spec["objects"][0]
        if (o["color"], o["shape"]) == CONCEPT:
            out.append(torch.from_numpy(world.render_scene(spec, resolution)[0]))
        i += 1
    return torch.stack(out)


def textual_inversion(pipe, images: torch.Tensor, steps: int = 200, batch: int = 16, lr: float = 5e-3,
                      seed: int = 0, init_word: str = "star"):
    """Plain textual inversion (Gal et al. 2023, Eq. 2: min_v E ||eps - eps_theta(z_t, t, c_theta(y))||^2
    over the placeholder's embedding v only) of ``images`` on a copy of ``pipe``'s text encoder.

    Prompts: ``"a <concept>"`` (with a random position phrase). Returns ``(tokenizer, text_encoder)``
    holding the learned token.
    """
    from vislab.diffusion.inversion import TokenRowsGuard, add_placeholder_tokens

    tok = copy.deepcopy(pipe.tokenizer)
    te = copy.deepcopy(pipe.text_encoder)
    ids = add_placeholder_tokens(tok, te, PLACEHOLDER, init_word=init_word)
    guard = TokenRowsGuard(te, ids)
    opt = torch.optim.AdamW(guard.parameters(), lr=lr, weight_decay=0.0)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        lat = pipe.vae.encode(images * 2 - 1).latent_dist.mode() * pipe.vae.config.scaling_factor
    sched = pipe.scheduler
    phrases = ["", *(" " + p for p in world.POSITION_PHRASES.values())]
    te.train()
    for _ in range(steps):
        idx = torch.randint(len(lat), (batch,), generator=g)
        prompts = [f"a {PLACEHOLDER}{phrases[int(k)]}" for k in torch.randint(len(phrases), (batch,), generator=g)]
        ids_b = tok(prompts, padding="max_length", truncation=True, max_length=tok.model_max_length, return_tensors="pt").input_ids
        cond = te(ids_b)[0]
        z0 = lat[idx]
        noise = torch.randn(z0.shape, generator=g)
        t = torch.randint(0, sched.config.num_train_timesteps, (batch,), generator=g)
        pred = pipe.unet(sched.add_noise(z0, noise, t), t, cond).sample
        loss = F.mse_loss(pred, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        guard.restore()
    guard.remove()
    te.eval().requires_grad_(False)
    return tok, te


def dreambooth(pipe, images: torch.Tensor, steps: int = 200, batch: int = 4, lr: float = 2e-4, seed: int = 0):
    """Plain DreamBooth (Ruiz et al. 2023, Eq. 1 without its class-prior preservation term): the whole
    UNet of a copy of ``pipe`` fine-tuned on ``images`` with prompts ``"a sks star"`` (+ a random
    position phrase; ``sks``: a rare identifier, the paper's choice). Returns the new UNet."""
    unet = copy.deepcopy(pipe.unet).train().requires_grad_(True)
    opt = torch.optim.AdamW(unet.parameters(), lr=lr, weight_decay=1e-2)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        lat = pipe.vae.encode(images * 2 - 1).latent_dist.mode() * pipe.vae.config.scaling_factor
        phrases = ["", *(" " + p for p in world.POSITION_PHRASES.values())]
        tok = pipe.tokenizer
        prompts = [f"a {DB_IDENTIFIER} {CONCEPT[1]}{p}" for p in phrases]
        conds = pipe.text_encoder(tok(prompts, padding="max_length", truncation=True, max_length=tok.model_max_length,
                                      return_tensors="pt").input_ids)[0]
    sched = pipe.scheduler
    for _ in range(steps):
        idx = torch.randint(len(lat), (batch,), generator=g)
        cond = conds[torch.randint(len(conds), (batch,), generator=g)]
        z0 = lat[idx]
        noise = torch.randn(z0.shape, generator=g)
        t = torch.randint(0, sched.config.num_train_timesteps, (batch,), generator=g)
        loss = F.mse_loss(unet(sched.add_noise(z0, noise, t), t, cond).sample, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return unet.eval().requires_grad_(False)


def overfit_rate(pipe, n_prompts: int = 24, seed: int = 0, steps: int = 50, guidance: float = 3.0,
                 ti_steps: int = 200, db_steps: int = 200) -> dict[str, Any]:
    """Overfitting of a personalised concept learned from 4 images, by plain textual inversion and by
    plain DreamBooth: the share of samples of ``"a <concept> and a {c} {s}"`` (TI) and
    ``"a sks star and a {c} {s}"`` (DreamBooth) that lose the other object, against the base rate of
    ``"a pink star and a {c} {s}"`` on the untouched model (same seeds). ``overfit_rate`` is the
    larger of the two methods' rates."""
    from vislab.toy.sd_model import generate

    rng = np.random.default_rng(seed + 17)
    others = []
    while len(others) < n_prompts:
        c = str(rng.choice([c for c in world.COLORS if c != CONCEPT[0]]))
        s = str(rng.choice([s for s in world.SHAPES if s != CONCEPT[1]]))
        if (c, s) not in world.HELD_OUT:
            others.append(f"a {c} {s}")
    images = concept_images(4, pipe.vae.config.sample_size, seed)
    concept = {"color": CONCEPT[0], "shape": CONCEPT[1]}

    def lost(res):  # the other object (second request) dropped
        return float(np.mean([r["requested"][1]["dropped"] if len(r["requested"]) > 1 else True for r in res]))

    def kept_concept(res):
        return float(np.mean([bool(r["requested"]) and not r["requested"][0]["dropped"] for r in res]))

    words = f"a {CONCEPT[0]} {CONCEPT[1]}"
    base_prompts = [f"{words} and {o}" for o in others]
    base = oracle.score(generate(pipe, base_prompts, seed, steps, guidance), base_prompts)
    out: dict[str, Any] = {"concept": " ".join(CONCEPT), "train_images": 4, "prompts": n_prompts,
                           "base_rate_words": lost(base), "concept_present_words": kept_concept(base)}
    t0 = time.time()
    tok, te = textual_inversion(pipe, images, steps=ti_steps, seed=seed)
    ti_pipe = copy.copy(pipe)
    ti_pipe.tokenizer, ti_pipe.text_encoder = tok, te
    ti_prompts = [f"a {PLACEHOLDER} and {o}" for o in others]
    ti_images = generate(ti_pipe, ti_prompts, seed, steps, guidance)
    ti = oracle.score(ti_images, ti_prompts, concepts={PLACEHOLDER: concept})
    out["textual_inversion"] = {"steps": ti_steps, "overfit_rate": lost(ti), "concept_present": kept_concept(ti),
                                "seconds": round(time.time() - t0, 1)}
    t0 = time.time()
    db_pipe = copy.copy(pipe)
    db_pipe.unet = dreambooth(pipe, images, steps=db_steps, seed=seed)
    db_prompts = [f"a {DB_IDENTIFIER} {CONCEPT[1]} and {o}" for o in others]
    db_images = generate(db_pipe, db_prompts, seed, steps, guidance)
    db = oracle.score(db_images, db_prompts, concepts={DB_IDENTIFIER: concept})
    out["dreambooth"] = {"steps": db_steps, "overfit_rate": lost(db), "concept_present": kept_concept(db),
                         "seconds": round(time.time() - t0, 1)}
    out["overfit_rate"] = max(out["textual_inversion"]["overfit_rate"], out["dreambooth"]["overfit_rate"])
    out["_images"] = torch.cat([ti_images[:6], db_images[:6]])
    out["_prompts"] = ti_prompts[:6] + db_prompts[:6]
    return out


def measure(pipe, seed: int = 0, steps: int = 50, guidance: float = 3.0, n_two: int = 96, n_overfit: int = 24,
            ti_steps: int = 200, db_steps: int = 200, log=print) -> dict[str, Any]:
    """Both failure modes (see the module docstring); ``log`` gets one line per stage with the elapsed time.
    The sizes of :data:`SIZES` ``["default"]`` are the defaults."""
    t0 = time.time()
    d = drop_rate(pipe, n_two, seed, steps, guidance)
    log(f"toy SD failure modes: object dropping measured ({time.time() - t0:.0f} s)")
    o = overfit_rate(pipe, n_overfit, seed, steps, guidance, ti_steps, db_steps)
    log(f"toy SD failure modes: concept overfitting measured ({time.time() - t0:.0f} s)")
    return {"object_dropping": d, "concept_overfitting": o, "seconds": round(time.time() - t0, 1),
            "sampling": {"steps": steps, "guidance": guidance, "seed": seed}}


def public(m: dict[str, Any]) -> dict[str, Any]:
    """``m`` without its image tensors (the keys starting with ``_``), for JSON."""
    if isinstance(m, dict):
        return {k: public(v) for k, v in m.items() if not str(k).startswith("_")}
    return m


def summary_line(m: dict[str, Any]) -> str:
    """The two rates in one line."""
    d, o = m["object_dropping"], m["concept_overfitting"]
    ti, db = o["textual_inversion"], o["dreambooth"]
    return (
        f"toy SD failure modes (pixel oracle): object dropping {d['drop_rate'] * 100:.1f} % of {d['prompts']} two-object prompts; "
        f"concept overfitting {o['overfit_rate'] * 100:.1f} %: from {o['train_images']} images of a '{o['concept']}', the prompt's "
        f"other object is lost in {db['overfit_rate'] * 100:.1f} % of {o['prompts']} samples after plain DreamBooth, "
        f"{ti['overfit_rate'] * 100:.1f} % after plain textual inversion ({o['base_rate_words'] * 100:.1f} % with the words '{o['concept']}')"
    )
