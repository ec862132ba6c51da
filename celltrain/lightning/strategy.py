"""``LocalDDPStrategy``: Lightning's DDP process group and sampler, without the DDP wrapper."""

from __future__ import annotations

from lightning.pytorch.overrides.distributed import _sync_module_states
from lightning.pytorch.strategies import DDPStrategy, StrategyRegistry


class LocalDDPStrategy(DDPStrategy):
    """DDP for local learning rules, registered as ``"ddp_local"``.

    ``DistributedDataParallel`` refuses modules without a parameter that requires a gradient,
    and local rules have none; gradients are not what needs synchronising anyway. This strategy
    keeps everything else of Lightning's DDP (process launch, process group, distributed
    sampler, ``reduce`` / ``all_gather`` / ``barrier``) but leaves the LightningModule
    unwrapped, and broadcasts every parameter and buffer from rank 0 at setup so all ranks start
    identical. :class:`~celltrain.callbacks.ApplyUpdates` keeps them identical after every
    batch by combining pending updates across ranks before applying them.

    Use ``Trainer(strategy="ddp_local", accelerator="cpu", devices=2)`` (gloo on CPU) or
    ``--trainer.strategy=ddp_local`` on the command line. Arguments are those of
    ``DDPStrategy``.

    Example::

        >>> import lightning as L
        >>> trainer = L.Trainer(strategy="ddp_local", accelerator="cpu", devices=1, logger=False)
        >>> type(trainer.strategy).__name__
        'LocalDDPStrategy'
    """

    strategy_name = "ddp_local"

    def configure_ddp(self) -> None:
        """Synchronise module state from rank 0 instead of wrapping the module."""
        _sync_module_states(self.model)


if "ddp_local" not in StrategyRegistry:
    StrategyRegistry.register(
        "ddp_local",
        LocalDDPStrategy,
        description="DDP without the DistributedDataParallel wrapper, for local learning",
        start_method="popen",
    )
