"""Multi-node DDP through Lightning: two "nodes" of one process each on 127.0.0.1 (gloo), as ``torchrun``
or SLURM would start them (``MASTER_ADDR``, ``MASTER_PORT``, ``NODE_RANK``, ``LOCAL_RANK``), for a diffusion
learner (gal4p), a CLIP classifier (cfpl) and a 3D Gaussian scene (sags).

Each run checks that both ranks hold identical weights after training (``VISLAB_WEIGHTS_DIGEST``). For cfpl
and sags node 1 gets its own output folder, which must stay empty: only global rank 0 writes. gal4p's ranks read
what rank 0 prepared (the toy concept), so its nodes share one folder, as on a cluster's shared filesystem;
prior preservation is off there, because a second node starts before rank 0 has generated the class images.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
from vislab.testing import cli_env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gal4p_args(tmp_path):
    from vislab.testing.models import save_tiny_clip, save_tiny_sd

    sd, clip = tmp_path / "sd", tmp_path / "clip"
    save_tiny_sd(sd)
    save_tiny_clip(clip)
    return ["--model.sd", str(sd), "--model.clip", str(clip), "--data.num_class_images", "2", "--data.toy.n_images", "2",
            "--batch_size", "1", "--al.total_rounds", "1", "--al.compare_random", "false", "--eval.steps", "2",
            "--eval.images_per_prompt", "1", "--trainer.max_steps", "3",
            # both nodes start at once: rank 1 would look for class images before rank 0 has generated them
            "--dreambooth.prior_preservation", "false"]


SHARED_FOLDER = {"gal4p"}
CASES = {
    "gal4p": _gal4p_args,
    "cfpl": lambda tmp_path: ["--clip.tiny.image_size", "32", "--clip.tiny.context_length", "24", "--data.batch_size", "8",
                              "--data.steps_per_epoch", "3", "--data.toy.identities", "2", "--data.toy.size", "32",
                              "--baseline.steps", "2", "--trainer.max_epochs", "1"],
    "sags": lambda tmp_path: ["--trainer.max_steps", "4", "--synthetic.size", "32", "--synthetic.n_train", "4",
                              "--synthetic.n_test", "2", "--synthetic.spacing", "0.08", "--strategy.refine_start_iter", "1",
                              "--strategy.refine_every", "2"],
}


@pytest.mark.slow
@pytest.mark.parametrize("package", sorted(CASES))
def test_two_nodes_one_process_each(package, tmp_path):
    args = CASES[package](tmp_path)
    port, digests = _free_port(), tmp_path / "digests"
    procs = []
    for node in (0, 1):
        env = cli_env(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), NODE_RANK=str(node), LOCAL_RANK="0",
                      VISLAB_WEIGHTS_DIGEST=str(digests), PL_TORCH_DISTRIBUTED_BACKEND="gloo")
        env.pop("VISLAB_RUN_DIR", None)
        folder = tmp_path / ("node0" if package in SHARED_FOLDER else f"node{node}")
        cmd = [sys.executable, "-m", package, "--output-dir", str(folder), "--trainer.strategy", "ddp",
               "--trainer.num_nodes", "2", "--trainer.devices", "1", "--trainer.accelerator", "cpu",
               "--trainer.enable_progress_bar", "false", *args]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=600))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for node, (p, (_, err)) in enumerate(zip(procs, outs)):
        assert p.returncode == 0, f"node {node}: " + err[-3000:] + "\n--- other node:\n" + outs[1 - node][1][-2000:]
    ranks = {f.name: json.loads(f.read_text()) for f in sorted(digests.glob("rank*.json"))}
    assert set(ranks) == {"rank0.json", "rank1.json"}
    assert ranks["rank0.json"]["world_size"] == 2
    assert ranks["rank0.json"]["digest"] == ranks["rank1.json"]["digest"]  # the replicas stayed identical
    assert (tmp_path / "node0" / "metrics.json").is_file()
    if package not in SHARED_FOLDER:
        written = [str(f.relative_to(tmp_path)) for f in (tmp_path / "node1").rglob("*") if f.is_file()]
        assert written == [], f"rank 1 wrote {written}"
    assert os.environ.get("VISLAB_WEIGHTS_DIGEST") is None
