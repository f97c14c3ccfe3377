"""DDP under torchrun: the process group, and the collectives of an epoch (the train loss
summed over ranks, validation predictions gathered), on the device the backend needs."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def setup_distributed(device: torch.device) -> tuple[int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, device
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return dist.get_rank(), world, device


def collective_device(device: torch.device) -> torch.device:
    """Where tensors for a collective must live: NCCL takes only CUDA tensors."""
    return device if dist.get_backend() == "nccl" else torch.device("cpu")


def gather_predictions(
    probs: torch.Tensor, indices: list[int], world: int, n: int,
    device: torch.device | None = None,
) -> torch.Tensor:
    """Every rank's predictions for its shard -> the whole split's, in dataset order."""
    index = torch.tensor(indices, dtype=torch.long)
    if world > 1:
        where = collective_device(device or torch.device("cpu"))
        probs, index = probs.to(where), index.to(where)
        probs_all = [torch.empty_like(probs) for _ in range(world)]
        index_all = [torch.empty_like(index) for _ in range(world)]
        dist.all_gather(probs_all, probs)
        dist.all_gather(index_all, index)
        probs, index = torch.cat(probs_all).cpu(), torch.cat(index_all).cpu()
    out = torch.zeros(n, probs.shape[1])
    out[index] = probs  # DistributedSampler pads by repeating rows: same values, same place
    return out


def global_loss(
    total: torch.Tensor, seen: int, world: int, device: torch.device
) -> tuple[float, int]:
    """The epoch's summed loss and image count over all ranks (each rank saw its shard)."""
    if world <= 1:
        return total.item(), seen
    where = collective_device(device)
    both = torch.stack([total.detach().float().to(where),
                        torch.tensor(float(seen), device=where)])
    dist.all_reduce(both)
    return both[0].item(), int(both[1].item())
