"""DDP collectives of models.train on two gloo processes: the train loss is every rank's, and
validation predictions are gathered whole and in order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402

from models.distributed import gather_predictions, global_loss  # noqa: E402


def _rank_main(rank: int, world: int, folder: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/store", rank=rank,
                            world_size=world)
    try:
        total = torch.tensor(float(rank + 1) * 10)  # this rank's summed loss
        summed, seen = global_loss(total, 4 * (rank + 1), world, torch.device("cpu"))
        indices = list(range(rank, 5, world)) + ([0] if rank == 1 else [])  # padded like the sampler
        probs = torch.tensor([[i / 10.0] for i in indices])
        gathered = gather_predictions(probs, indices, world, 5, torch.device("cpu"))
        Path(folder, f"rank{rank}.json").write_text(json.dumps(
            {"summed": summed, "seen": seen, "probs": gathered[:, 0].tolist()}))
    finally:
        dist.destroy_process_group()


def test_loss_is_summed_over_ranks_and_predictions_are_gathered_in_order(tmp_path):
    mp.spawn(_rank_main, args=(2, str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        result = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert result["summed"] == 30.0 and result["seen"] == 12  # 10 + 20 over 4 + 8 images
        assert result["probs"] == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])


def test_single_process_needs_no_collective():
    assert global_loss(torch.tensor(6.0), 3, 1, torch.device("cpu")) == (6.0, 3)
    gathered = gather_predictions(torch.tensor([[0.5], [0.25]]), [1, 0], 1, 2)
    assert gathered[:, 0].tolist() == [0.25, 0.5]
