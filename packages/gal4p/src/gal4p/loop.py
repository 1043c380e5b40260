"""The generative active-learning loop (paper Sec. 3, official ``main`` / ``generate_new_images``), with its
whole state persisted so an interrupted run resumes at the right round and phase.

Round ``r = 1..R``:

1. load the base model *fresh* and train the learner on init records + every accepted sample (weighted);
2. if ``r < R``: query ``n`` samples per remaining anchor direction with the round's model, score them with
   CLIP, compute overfit rate / uncertainty / representative sample per direction and the openness
   ``Omega_r``; select ``K`` directions (uncertainty, random or human), add their representatives with weight
   ``Omega_r`` (balance) or 1; a selected direction is never queried again;
3. stop early when fewer than ``K`` directions are uncertain (the last trained round is then final).

Files (inside ``<out>``)::

    state.json                     the loop state (rounds trained/queried, used directions, added records, openness)
    rounds/<r>/model/              the round's personalised model (gal4p_model.json + unet/ | embeds | LoRA)
    <mode>_all/R<r>_p<d>_<k>.png   every candidate (d = direction index, k = sample index)
    <mode>_pos/R<r>_p<d>_<k>.png   accepted samples (human mode: the user's choice goes here)
    <mode>_add.json                accepted records {instance_data_path, instance_prompt, weight, max_sim, subject, round}
    openness.json                  {"openness_r<r>_feedback_<selection>": Omega_r}
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from vislab import runtime
from vislab.errors import VislabError
from vislab.io import load_torch, write_json
from vislab.runtime import is_main_process

from gal4p import uncertainty as U
from gal4p.data import PersonalizationDataModule, save_png
from gal4p.directions import direction_prompts
from gal4p.learner import build_learner, load_personalized
from gal4p.query import generate


def barrier() -> None:
    """Wait for every DDP rank (no-op outside DDP)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


@dataclass
class LoopState:
    """Everything the loop needs to continue after an interruption."""

    mode: str
    selection: str
    total_rounds: int
    directions: list[str]
    trained: list[int] = field(default_factory=list)
    queried: list[int] = field(default_factory=list)
    used: list[int] = field(default_factory=list)
    added: list[dict[str, Any]] = field(default_factory=list)
    openness: dict[str, float] = field(default_factory=dict)
    queries: dict[str, Any] = field(default_factory=dict)
    evals: dict[str, Any] = field(default_factory=dict)
    awaiting_human: int | None = None
    stopped: bool = False
    stop_reason: str = ""

    @property
    def final_round(self) -> int:
        return max(self.trained) if self.trained else 0

    @property
    def done(self) -> bool:
        return self.awaiting_human is None and (self.stopped or self.final_round >= self.total_rounds)

    def save(self, path: Path) -> None:
        if is_main_process():
            write_json(path, asdict(self))

    @classmethod
    def load(cls, path: Path) -> LoopState:
        from vislab.errors import InputError

        try:
            return cls(**json.loads(Path(path).read_text()))
        except (OSError, ValueError, TypeError) as e:
            raise InputError(path, f"cannot read the active-learning state ({e.__class__.__name__}: {e})") from None


TrainerFactory = Callable[[int], pl.Trainer]


class GALLoop:
    """One active-learning run. ``cfg`` is the resolved config; ``make_trainer(r)`` builds round ``r``'s Trainer."""

    def __init__(self, cfg: dict[str, Any], out: Path, base: str, records: list[dict[str, Any]], captions: list[str],
                 descriptor: str, scorer, make_trainer: TrainerFactory, class_images: list[Path] | None = None,
                 class_prompt: str | None = None, identifier: str | None = None, class_word: str | None = None,
                 resume: bool = False, selection: str | None = None, reuse_rounds: dict[int, Path] | None = None,
                 evaluate: Callable[[int, Any], dict[str, Any]] | None = None, log: Callable[[str], None] = print,
                 last_ckpt: Path | None = None):
        from gal4p.directions import direction_templates

        al = cfg["al"]
        self.cfg, self.al, self.out = cfg, al, Path(out)
        self.base, self.records, self.captions, self.descriptor = str(base), records, captions, descriptor
        self.scorer, self.make_trainer = scorer, make_trainer
        self.class_images, self.class_prompt = class_images, class_prompt
        self.identifier, self.class_word = identifier, class_word
        self.mode = cfg["mode"]
        self.selection = selection or al["selection"]
        if self.selection not in ("uncertainty", "random", "human"):
            raise VislabError(f"al.selection must be uncertainty, random or human, not {self.selection!r}")
        self.reuse_rounds = dict(reuse_rounds or {})
        self.evaluate, self.log = evaluate, log
        self.last_ckpt = last_ckpt
        templates = direction_templates(al["directions"], self.mode)
        if al.get("num_directions"):
            templates = templates[: int(al["num_directions"])]
        k, rounds = int(al["topk"]), int(al["total_rounds"])
        if k < 1 or rounds < 1:
            raise VislabError("al.topk and al.total_rounds must be at least 1")
        if k * (rounds - 1) > len(templates):
            raise VislabError(f"al.topk={k} over {rounds - 1} query rounds needs {k * (rounds - 1)} anchor directions, "
                              f"but only {len(templates)} are left; lower al.topk or al.total_rounds, or add directions")
        self.state_path = self.out / "state.json"
        if resume and self.state_path.is_file():
            self.state = LoopState.load(self.state_path)
            if self.state.directions != templates or self.state.selection != self.selection:
                raise VislabError(f"{self.state_path}: the saved loop used other directions or selection; "
                                  "resume with the same config")
        else:
            self.state = LoopState(self.mode, self.selection, rounds, templates)
        self.state.total_rounds = rounds
        self.resume = resume

    # ------------------------------------------------------------------ paths
    def model_dir(self, r: int) -> Path:
        return self.out / "rounds" / str(r) / "model"

    def _save(self) -> None:
        self.state.save(self.state_path)

    # ------------------------------------------------------------------ training
    def training_records(self) -> list[dict[str, Any]]:
        return list(self.records) + [dict(a) for a in self.state.added]

    def _resume_ckpt(self, r: int) -> str | None:
        p = self.last_ckpt
        if not (self.resume and p is not None and p.is_file()):
            return None
        try:
            meta = load_torch(p, mmap=True).get("gal4p", {})
        except Exception:  # noqa: BLE001 - a foreign/corrupt last.ckpt: start the round afresh
            return None
        if meta.get("round") == r and meta.get("learner") == self.cfg["learner"] and meta.get("tag") == self.out.name:
            self.log(f"round {r}: continuing from {p}")
            return str(p)
        return None

    def train_round(self, r: int):
        """Train round ``r`` from the base weights on the current weighted set; save its model; return the learner."""
        from vislab.diffusion import load_sd

        pl.seed_everything(int(self.cfg["seed"]) + 0, workers=True, verbose=False)
        sd = load_sd(self.base)
        learner = build_learner(self.cfg["learner"], sd, self.cfg, self.identifier, self.class_word, round_index=r)
        learner.ckpt_tag = self.out.name
        d = self.cfg["data"]
        recs = self.training_records()
        prior = self.mode == "object" and bool(self.cfg["dreambooth"]["prior_preservation"])
        dm = PersonalizationDataModule(recs, int(d["resolution"]), int(self.cfg["batch_size"]),
                                       class_images=self.class_images if prior else None,
                                       class_prompt=self.class_prompt if prior else None,
                                       center_crop=bool(d["center_crop"]), num_workers=int(d["num_workers"]), seed=int(self.cfg["seed"]) + r)
        self.log(f"[bold]round {r}[/bold]: training {learner.kind} on {len(recs)} samples "
                 f"({len(recs) - len(self.records)} accepted){' with prior preservation' if prior else ''}")
        trainer = self.make_trainer(r)
        trainer.fit(learner, datamodule=dm, ckpt_path=self._resume_ckpt(r))
        if self.last_ckpt is not None:
            trainer.save_checkpoint(self.last_ckpt)
        if is_main_process():
            learner.save_model(self.model_dir(r), self.base, {"round": r, "identifier": self.identifier, "class_word": self.class_word,
                                                                "mode": self.mode, "selection": self.selection})
        barrier()
        learner.unet.eval()
        return learner.components()

    # ------------------------------------------------------------------ querying
    def query_round(self, r: int, sd) -> None:
        """Query the remaining directions with round ``r``'s model, score, select, add (module docstring)."""
        sd = sd.to(runtime.device())  # after fit Lightning leaves the learner's modules on the CPU
        al, st = self.al, self.state
        remaining = [i for i in range(len(st.directions)) if i not in st.used]
        k = int(al["topk"])
        if k > len(remaining):
            raise VislabError(f"al.topk={k} is larger than the {len(remaining)} directions left")
        n = 1 if self.selection == "random" else int(al["samples_per_direction"])
        prompts = direction_prompts([st.directions[i] for i in remaining], self.descriptor)
        g = torch.Generator().manual_seed(int(self.cfg["seed"]))
        self.log(f"round {r}: querying {len(remaining)} directions x {n} samples ({self.selection})")
        images = generate(sd, prompts, n, int(al["query_steps"]), float(al["query_guidance"]), g, al["query_scheduler"],
                          resolution=int(self.cfg["data"]["resolution"]), max_batch=int(al.get("query_batch", 4)))
        feats = self.scorer.encode_images(images).view(len(remaining), n, -1)
        tfeat = self.scorer.encode_texts(prompts)
        cfeat = self.scorer.encode_texts(self.captions)
        rates, hs, reps, max_sims = [], [], [], []
        for j in range(len(remaining)):
            sim_p = feats[j] @ tfeat[j]
            sim_c = feats[j] @ cfeat.T
            flags = U.overfit_flags(sim_p, sim_c)
            rate = U.overfit_rate(flags)
            rates.append(rate)
            hs.append(U.binary_entropy(rate))
            reps.append(U.representative_index(sim_p))
            max_sims.append(float(sim_p.max()))
        omega = U.openness(hs, float(al["openness_lambda"]))
        st.openness[f"openness_r{r}_feedback_{self.selection}"] = omega
        weight = U.sample_weight(bool(al["balance"]), omega)
        all_dir = self.out / f"{self.mode}_all"
        if is_main_process():
            for j, i in enumerate(remaining):
                for kk in range(n):
                    save_png(all_dir / f"R{r}_p{i}_{kk}.png", images[j * n + kk])
        info = {"directions": remaining, "prompts": prompts, "overfit_rate": rates, "uncertainty": hs,
                "representative": reps, "max_sim": max_sims, "openness": omega, "weight": weight, "n": n}
        if self.selection == "human":
            st.queries[str(r)] = {**info, "selected": []}
            st.awaiting_human = r
            self._save()
            write_json(self.out / "openness.json", st.openness) if is_main_process() else None
            self.log(f"round {r}: candidates in {all_dir}; copy the ones you accept into {self.out / f'{self.mode}_pos'} "
                     f"(keep their names R{r}_p<d>_<k>.png) and rerun with --resume")
            barrier()
            return
        if self.selection == "uncertainty":
            picked = U.select_uncertainty(hs, k)
            if picked is None:
                st.queries[str(r)] = {**info, "selected": []}
                st.stopped = True
                st.stop_reason = f"round {r}: only {sum(h > 0 for h in hs)} directions uncertain (< K={k}); round {r} is final"
                st.queried.append(r)
                self.log(st.stop_reason)
                self._save()
                barrier()
                return
        else:
            rng = np.random.default_rng(int(self.cfg["seed"]) + r)
            picked = U.select_random(len(remaining), k, rng)
        picks = [{"direction": remaining[j], "k": reps[j], "prompt": prompts[j], "max_sim": max_sims[j],
                  "image": images[j * n + reps[j]]} for j in picked]
        self._accept(r, picks, weight)
        st.queries[str(r)] = {**info, "selected": [p["direction"] for p in picks]}
        st.queried.append(r)
        self._save()
        barrier()

    def _accept(self, r: int, picks: list[dict[str, Any]], weight: float) -> None:
        """Add accepted samples: each pick has ``direction``, ``k``, ``prompt``, ``max_sim`` and ``image`` (a tensor to
        save) or ``path`` (an existing file)."""
        pos = self.out / f"{self.mode}_pos"
        new = []
        for p in picks:
            path = Path(p["path"]) if "path" in p else pos / f"R{r}_p{p['direction']}_{p['k']}.png"
            if "image" in p and is_main_process():
                save_png(path, p["image"])
            new.append({"instance_data_path": str(path), "instance_prompt": p["prompt"], "weight": weight,
                        "max_sim": p["max_sim"], "subject": p["prompt"], "direction": p["direction"], "round": r})
        self.state.added.extend(new)
        self.state.used.extend(p["direction"] for p in picks)
        if is_main_process():
            write_json(self.out / f"{self.mode}_add.json", self.state.added)
            write_json(self.out / "openness.json", self.state.openness)
        self.log(f"round {r}: accepted {len(new)} samples (weight {weight:.4g}): " + "; ".join(p["prompt"] for p in picks))

    def ingest_human(self, r: int) -> None:
        """Human selection: read the user's accepted candidates of round ``r`` from ``<mode>_pos/``
        (one per direction; the first file of a direction wins)."""
        from vislab.io import load_image

        pos = self.out / f"{self.mode}_pos"
        q = self.state.queries[str(r)]
        pat = re.compile(rf"^R{r}_p(\d+)_(\d+)\.(png|jpg|jpeg)$", re.I)
        picks: list[dict[str, Any]] = []
        for f in sorted(pos.glob(f"R{r}_p*")) if pos.is_dir() else []:
            m = pat.match(f.name)
            if not m:
                continue
            i, kk = int(m.group(1)), int(m.group(2))
            if i not in q["directions"] or i in self.state.used:
                raise VislabError(f"{f}: direction {i} was not offered in round {r} or is already used")
            if any(p["direction"] == i for p in picks):
                continue
            load_image(f)  # a corrupt file fails here, naming it
            j = q["directions"].index(i)
            picks.append({"direction": i, "k": kk, "prompt": q["prompts"][j], "max_sim": q["max_sim"][j], "path": str(f)})
        if not picks:
            raise VislabError(f"{pos}: no accepted images for round {r}; copy candidates R{r}_p<d>_<k>.png from "
                              f"{self.out / f'{self.mode}_all'} into it, then rerun with --resume")
        self._accept(r, picks, q["weight"])
        q["selected"] = [p["direction"] for p in picks]
        self.state.awaiting_human = None
        self.state.queried.append(r)
        self._save()
        barrier()

    # ------------------------------------------------------------------ the loop
    def _load_round(self, r: int):
        sd, _ = load_personalized(self.model_dir(r), base=self.base, device=runtime.device())
        return sd

    def run(self) -> LoopState:
        st = self.state
        for r in range(1, st.total_rounds + 1):
            if st.stopped:
                break
            sd = None
            if r not in st.trained:
                if r in self.reuse_rounds:
                    if is_main_process():
                        shutil.copytree(self.reuse_rounds[r], self.model_dir(r), dirs_exist_ok=True)
                    barrier()
                    self.log(f"round {r}: reusing the identical round-{r} model of {self.reuse_rounds[r]}")
                else:
                    sd = self.train_round(r)
                st.trained.append(r)
                self._save()
            if self.evaluate is not None and str(r) not in st.evals:
                sd = sd or self._load_round(r)
                st.evals[str(r)] = self.evaluate(r, sd)
                self._save()
            if r < st.total_rounds and r not in st.queried:
                if st.awaiting_human == r:
                    self.ingest_human(r)
                else:
                    self.query_round(r, sd or self._load_round(r))
                    if st.awaiting_human is not None:
                        return st
        return st
