"""The trainer group's training-time levers as Lightning callbacks: EMA of the weights, a frozen backbone first."""
from typing import Any, List

import lightning as L
from lightning.pytorch.callbacks import Callback, EMAWeightAveraging

EMA_EVERY = 4  # optimisation steps between two updates of the weights' moving average


class FreezeBackbone(Callback):
    """`trainer.freeze_epochs`: only the classifier head (timm's `get_classifier()`) trains for the first epochs;
    then every parameter does. Frozen parameters get no gradient, so the optimiser leaves them as they are."""

    def __init__(self, epochs: int):
        self.epochs = epochs

    @staticmethod
    def _set(pl_module: L.LightningModule, backbone_trains: bool) -> None:
        net = pl_module.net
        head = {id(p) for p in net.get_classifier().parameters()}
        for p in net.parameters():
            p.requires_grad_(backbone_trains or id(p) in head)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._set(pl_module, trainer.current_epoch >= self.epochs)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._set(pl_module, True)


def lever_callbacks(trainer_cfg: Any) -> List[Callback]:
    """Callbacks for `trainer.ema_decay` and `trainer.freeze_epochs` (none when both are off)."""
    out: List[Callback] = []
    if trainer_cfg.get("ema_decay", 0.0) > 0:
        # Lightning's EMA: validation and saved checkpoints use the averaged weights. Averaging every EMA_EVERY
        # steps with decay**EMA_EVERY keeps the same horizon at a quarter of the cost (bench speed: ratio >= 0.85)
        out.append(EMAWeightAveraging(decay=trainer_cfg.ema_decay ** EMA_EVERY, update_every_n_steps=EMA_EVERY))
    if trainer_cfg.get("freeze_epochs", 0) > 0:
        out.append(FreezeBackbone(trainer_cfg.freeze_epochs))
    return out
