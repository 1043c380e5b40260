"""The rank-aware balanced batch sampler: balanced batches on every rank, disjoint ranks, reshuffled epochs."""

import os

import pytest
import torch
from cfpl.data import BalancedBatchSampler

# 3 source domains; live is the minority (oversampled): 3 x 6 live, 3 x 14 attack
LIVE = ([1] * 6 + [0] * 14) * 3
DOMS = [d for d in "OCI" for _ in range(20)]


def _batches(rank, world, epoch=0, batch=8, n=5, frac=0.5):
    s = BalancedBatchSampler(LIVE, DOMS, batch, n, live_fraction=frac, seed=3, rank=rank, world_size=world)
    s.set_epoch(epoch)
    return list(s)


@pytest.mark.parametrize("frac, n_live", [(0.5, 4), (0.25, 2)])
def test_every_rank_batch_holds_both_classes_in_the_ratio(frac, n_live):
    for rank in (0, 1):
        bs = _batches(rank, 2, frac=frac)
        assert len(bs) == 5
        for b in bs:
            assert len(b) == 8 and sum(LIVE[i] for i in b) == n_live
            # each class spread over the source domains
            live_doms = [DOMS[i] for i in b if LIVE[i]]
            assert len(set(live_doms)) == min(n_live, 3)


def test_ranks_get_disjoint_indices_and_epochs_reshuffle():
    r0, r1 = _batches(0, 2), _batches(1, 2)
    # 18 live samples: the first two steps (2 x 2 ranks x 4 live) are one pass over the live pools -> disjoint
    live0 = [i for b in r0[:2] for i in b if LIVE[i]]
    live1 = [i for b in r1[:2] for i in b if LIVE[i]]
    assert not set(live0) & set(live1) and len(set(live0 + live1)) == 16
    # the attack pools (14 per domain) are not exhausted in 5 steps x 2 ranks x 4 = 40 draws: disjoint over the epoch
    att0 = {i for b in r0 for i in b if not LIVE[i]}
    att1 = {i for b in r1 for i in b if not LIVE[i]}
    assert not att0 & att1 and len(att0) == 20
    # the same stream on every rank: rank 0 of a 2-rank world takes every other batch of the 1-rank stream
    single = _batches(0, 1, n=10)
    assert r0 == single[0::2] and r1 == single[1::2]
    assert _batches(0, 2, epoch=1) != r0 and _batches(0, 2, epoch=1) == _batches(0, 2, epoch=1)


def test_bad_sampler_inputs():
    from vislab.errors import VislabError

    with pytest.raises(VislabError, match="both live and attack"):
        BalancedBatchSampler([1, 1], ["O", "O"], 2, 1)
    with pytest.raises(VislabError, match="at least 2"):
        BalancedBatchSampler(LIVE, DOMS, 1, 1)
    with pytest.raises(VislabError, match="live_fraction"):
        BalancedBatchSampler(LIVE, DOMS, 8, 1, live_fraction=1.0)


def _ddp_worker(rank, world, port, out):
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        s = BalancedBatchSampler(LIVE, DOMS, 8, 4, seed=1)  # rank and world size from torch.distributed
        got = [None] * world
        dist.all_gather_object(got, list(s))
        if rank == 0:
            torch.save(got, out)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_under_real_ddp(tmp_path):
    """Two gloo processes: the sampler reads its rank from torch.distributed; every rank's batch is balanced."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = tmp_path / "batches.pt"
    mp.spawn(_ddp_worker, args=(2, port, str(out)), nprocs=2, join=True)
    r0, r1 = torch.load(out, weights_only=False)
    assert r0 != r1
    for a, b in zip(r0, r1):
        assert sum(LIVE[i] for i in a) == 4 and sum(LIVE[i] for i in b) == 4
    for a, b in zip(r0[:2], r1[:2]):  # one pass over the pools: disjoint
        assert not set(a) & set(b)
    assert r0 == list(BalancedBatchSampler(LIVE, DOMS, 8, 4, seed=1, rank=0, world_size=2))
