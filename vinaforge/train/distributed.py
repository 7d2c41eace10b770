"""FSDP2 details the trainer needs: CPU (gloo) FSDP runs, and the ``new_embeddings`` phase on shards.

**FSDP2 on CPU.** accelerate only switches to FSDP on accelerator devices; with ``use_cpu`` it runs
DDP even when the launch config says FSDP. torch's ``fully_shard`` itself works on CPU with gloo,
so :func:`enable_cpu_fsdp` puts accelerate's state into FSDP mode, with the plugin read from the
launch config's environment, exactly as it would on GPUs. This is what lets the suite run the real
FSDP2 code path (sharded parameters, reduce-scatter, sharded checkpoints) in a 2-process test.

**Frozen base rows under FSDP2.** ``fully_shard`` replaces every parameter by a DTensor sharded on
its first dimension, so the gradient hooks and saved rows that
:mod:`vinaforge.model.trainable` attached to the unsharded embeddings no longer apply.
:class:`ShardedFrozenRows` re-attaches them to each process's shard: the base-vocabulary rows this
process holds are saved, their gradients zeroed before clipping, and their values copied back after
every optimizer step, which is what the unsharded path does, row for row.

Hand-written: accelerate and torch provide the sharding; the row bookkeeping is ours.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def fsdp_requested() -> bool:
    return os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"


def enable_cpu_fsdp(acc) -> bool:
    """Turn a multi-process CPU accelerator into an FSDP one when the launch config asks for FSDP."""
    from accelerate.state import AcceleratorState, PartialState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    if not fsdp_requested() or acc.distributed_type != DistributedType.MULTI_CPU:
        return False
    plugin = FullyShardedDataParallelPlugin()  # reads FSDP_* from the launch environment
    state = AcceleratorState()
    state.fsdp_plugin = plugin
    state.distributed_type = DistributedType.FSDP
    PartialState().distributed_type = DistributedType.FSDP
    log.info("FSDP%s on CPU (gloo), %d processes", plugin.fsdp_version, acc.num_processes)
    return True


def _local_rows(param) -> tuple[object, int]:
    """(the tensor of this process's rows, index of its first row in the full parameter)."""
    from torch.distributed.tensor import DTensor

    if not isinstance(param, DTensor):
        return param, 0
    from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

    _, offset = compute_local_shape_and_global_offset(param.shape, param.device_mesh, param.placements)
    return param.to_local(), int(offset[0])


class ShardedFrozenRows:
    """The ``new_embeddings`` bookkeeping of a trainable state, moved onto FSDP2 shards."""

    def __init__(self, names: list[tuple[str, int]]):
        self.names = names  # (parameter name, number of base rows)
        self.params: list[tuple[object, int]] = []  # (sharded parameter, local rows to keep)

    @staticmethod
    def names_of(trainable) -> list[tuple[str, int]]:
        """Names of the parameters with frozen rows, taken before sharding replaces them."""
        ids = {id(p): n for n, p in trainable.model.named_parameters(remove_duplicate=False)}
        return [(ids[id(p)], int(saved.shape[0])) for p, saved in trainable.frozen_rows]

    def attach(self, model, trainable) -> None:
        """Point the trainable state's frozen rows at this process's shards of the same parameters."""
        params = dict(model.named_parameters(remove_duplicate=False))
        rows, self.params = [], []
        for name, n_base in self.names:
            param = params[name]
            local, offset = _local_rows(param)
            keep = max(0, min(n_base - offset, local.shape[0]))
            rows.append((local, local.detach()[:keep].clone()))
            self.params.append((param, keep))
        trainable.frozen_rows = rows

    def zero_frozen_grads(self) -> None:
        """Base rows get no gradient (so they do not count in the clipped gradient norm either)."""
        import torch

        with torch.no_grad():
            for param, keep in self.params:
                if param.grad is None or keep == 0:
                    continue
                grad, _ = _local_rows(param.grad)
                grad[:keep].zero_()
