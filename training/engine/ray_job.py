"""Ray Train wrapping of the per-worker loop: ``TorchTrainer`` with N data-parallel workers.

Inside ``ray job submit`` the job's driver connects to the cluster (``RAY_ADDRESS``); run directly, Ray starts
a local instance. Rank 0 writes checkpoints under ``$STRATA_HOME`` (shared storage on a real cluster) and reports
each epoch's to Ray Train, which keeps it in its storage (``$STRATA_HOME/ray_results``); when a worker dies, Ray
Train starts the worker group again (up to ``ray_max_failures`` times) and every worker resumes from that
checkpoint, so the run ends where an uninterrupted one would. Every worker reads the dataset caches prepared by the
driver before the trainer starts.
"""
from __future__ import annotations

from common.config import from_dict, to_dict
from common.home import ENV_VAR, strata_home
from training.engine.config import TrainConfig


def _ray_worker(loop_config: dict) -> None:
    import os
    from contextlib import nullcontext
    from pathlib import Path

    import ray.train
    import ray.train.torch

    from training.engine.train import WorkerContext, train_worker

    os.environ[ENV_VAR] = loop_config["home"]
    config = from_dict(TrainConfig, loop_config["train"], where="ray train_loop_config")
    context = ray.train.get_context()

    def report(metrics: dict, checkpoint: Path | None) -> None:
        ray.train.report(metrics, checkpoint=None if checkpoint is None else
                         ray.train.Checkpoint.from_directory(str(checkpoint)))

    ctx = WorkerContext(
        rank=context.get_world_rank(),
        world_size=context.get_world_size(),
        device=ray.train.torch.get_device(),
        report=report,
        broadcast_parameters=broadcast_parameters,
        average_gradients=average_gradients,
    )
    restored = ray.train.get_checkpoint()   # after a worker failure: the last epoch's, from Ray Train's storage
    with restored.as_directory() if restored is not None else nullcontext() as folder:
        train_worker(config, ctx, log=print if ctx.rank == 0 else (lambda _msg: None),
                     resume=Path(folder) if folder else None)


def broadcast_parameters(model) -> None:
    """Start every worker from rank 0's weights (they are seeded alike; this makes it certain)."""
    import torch.distributed as dist

    for tensor in list(model.parameters()) + list(model.buffers()):
        dist.broadcast(tensor.data, src=0)


def average_gradients(model) -> None:
    """Average gradients across workers after a backward pass (what DistributedDataParallel does, done
    explicitly: every parameter takes part, including those an ablation leaves without a gradient)."""
    import torch
    import torch.distributed as dist

    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    flat = torch.cat([p.grad.reshape(-1) for p in params])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for p in params:
        p.grad.copy_(flat[offset:offset + p.numel()].view_as(p))
        offset += p.numel()


def run_with_ray(config: TrainConfig) -> None:
    import ray
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    if not ray.is_initialized():
        ray.init(log_to_driver=True)
    trainer = TorchTrainer(
        _ray_worker,
        train_loop_config={"train": to_dict(config), "home": str(strata_home())},
        scaling_config=ScalingConfig(num_workers=config.workers, use_gpu=config.use_gpu),
        run_config=RunConfig(name=config.run_name, storage_path=str(strata_home() / "ray_results"),
                             failure_config=FailureConfig(max_failures=config.ray_max_failures),
                             checkpoint_config=CheckpointConfig(num_to_keep=1)),
    )
    result = trainer.fit()
    if result.error is not None:
        raise result.error
