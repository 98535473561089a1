"""Multi-process training under torchrun: gloo on CPU, nccl on CUDA.

A joint model (jstdo, awdnn, cafm) is wrapped in DistributedDataParallel, so every rank
draws its own batches and gradients are all-reduced. Per-chunk models (stdo, nas) are
spread over ranks round-robin; each rank trains and saves its own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0


def world() -> World:
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    return World()


def init_from_env(device: str) -> World:
    """Join the process group torchrun describes in the environment; a no-op for a single process."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return world()
    backend = "nccl" if device.startswith("cuda") else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend)
    return world()


def device_for_rank(device: str) -> str:
    """'cuda' becomes this rank's GPU under torchrun."""
    if device == "cuda" and world().size > 1:
        return f"cuda:{world().local_rank}"
    return device


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if world().size > 1:
        dist.barrier()


def wrap_shared(model: nn.Module) -> nn.Module:
    if world().size <= 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [model_device.index] if (model_device := next(model.parameters()).device).type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum `tensor` over ranks, in place (a no-op for a single process).

    nccl reduces CUDA tensors only, so under it a CPU tensor makes the trip through this rank's GPU.
    """
    if world().size <= 1:
        return tensor
    if dist.get_backend() == "nccl" and tensor.device.type != "cuda":
        on_gpu = tensor.to(torch.device("cuda", torch.cuda.current_device()))
        dist.all_reduce(on_gpu, op=dist.ReduceOp.SUM)
        return tensor.copy_(on_gpu)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def gather_objects(obj) -> list:
    """[obj of rank 0, obj of rank 1, ...] on every rank."""
    if world().size <= 1:
        return [obj]
    out = [None] * world().size
    dist.all_gather_object(out, obj)
    return out


def mine(items: list) -> list:
    """The items this rank handles when work is spread round-robin."""
    w = world()
    return items[w.rank :: w.size]
