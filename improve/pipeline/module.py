"""The LightningModule: normalise on the device, MixUp/CutMix, loss, timm optimiser and schedule.

Hyperparameters are stored as plain dicts, so checkpoints load with `weights_only=True`
and resume works.
"""
from typing import Any, Dict, List, Optional

import lightning as L
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from timm.scheduler import create_scheduler_v2
from timm.scheduler.scheduler import Scheduler as TimmScheduler
from torchmetrics.classification import MulticlassAccuracy

from improve.pipeline.augment import build_mixup, flips_are_safe, normalization, tta_probs
from improve.pipeline.models import build_model
from improve.pipeline.optim import build_optimizer


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


def class_weights(counts: List[int]) -> torch.Tensor:
    """Inverse-frequency weights, mean 1 over the images: n / (classes * count); an absent class gets 0."""
    c = torch.tensor(counts, dtype=torch.float32)
    return torch.where(c > 0, c.sum() / (len(c) * c.clamp(min=1)), torch.zeros_like(c))


def plain(cfg: Any) -> Any:
    return OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else cfg


class Classifier(L.LightningModule):
    def __init__(self, model: Dict, augment: Dict, trainer: Dict, num_classes: int, in_chans: int,
                 class_names: List[str], class_counts: Optional[List[int]] = None):
        super().__init__()
        model, augment, trainer = plain(model), plain(augment), plain(trainer)
        self.save_hyperparameters()
        t = OmegaConf.create(trainer)
        self.t = t
        self.net = build_model(**model, num_classes=num_classes, in_chans=in_chans)
        cfg = getattr(self.net, "pretrained_cfg", {}) or {}
        mean, std = normalization(augment["mean"], augment["std"], in_chans, cfg.get("mean"), cfg.get("std"))
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1) * 255, persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1) * 255, persistent=False)
        self.mixup = build_mixup(num_classes, augment["mixup_alpha"], augment["cutmix_alpha"], augment["mix_prob"],
                                 augment["switch_prob"], t.label_smoothing)
        self.flip_safe, self.tta = flips_are_safe(augment["train_transforms"]), bool(augment.get("tta", False))
        weights = class_weights(class_counts) if t.get("balance") == "loss" and class_counts else None
        self.register_buffer("class_weights", weights, persistent=False)  # None unless trainer.balance=loss
        self.train_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 N,C,H,W -> normalised float (the eval transform's last step, done on the device)."""
        return (x.float() - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = self.normalize(x)
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        x = self.normalize(x)
        if self.mixup is not None and len(x) % 2 == 0:
            x_mix, y_soft = self.mixup(x, y)
            logits = self.net(x_mix)
            w = self.class_weights if self.class_weights is not None else 1.0
            loss = (-(y_soft * w) * logits.log_softmax(-1)).sum(-1).mean()  # soft-target cross-entropy
        else:
            logits = self.net(x)
            loss = F.cross_entropy(logits, y, weight=self.class_weights, label_smoothing=self.t.label_smoothing)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"training loss became {loss.item()} at epoch {self.current_epoch}, step {self.global_step} "
                f"(trainer.lr={self.t.lr}); lower trainer.lr, set trainer.grad_clip (e.g. 1.0) or add warm-up")
        self.train_acc(logits.detach(), y)
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(y), sync_dist=True)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True, batch_size=len(y))
        return loss

    def _evaluate(self, batch, stage: str, metric: MulticlassAccuracy):
        x, y = batch
        if self.tta:  # the averaged probabilities of the label-safe views, as log-probabilities
            logits = tta_probs(self.net, self.normalize(x), self.flip_safe).log()
        else:
            logits = self(x)
        loss = F.cross_entropy(logits, y)
        metric(logits, y)
        self.log(f"{stage}/loss", loss, on_epoch=True, prog_bar=stage == "val", batch_size=len(y), sync_dist=True)
        self.log(f"{stage}/acc", metric, on_epoch=True, prog_bar=stage == "val", batch_size=len(y))

    def validation_step(self, batch, batch_idx):
        self._evaluate(batch, "val", self.val_acc)

    def test_step(self, batch, batch_idx):
        self._evaluate(batch, "test", self.test_acc)

    def configure_optimizers(self):
        t = self.t
        optimizer = build_optimizer(self.net, t.optimizer, t.lr, t.weight_decay, t.momentum, t.get("layer_decay", 1.0))
        if t.scheduler == "none":
            return optimizer
        total = max(1, int(self.trainer.estimated_stepping_batches))
        self._per_epoch = max(1, total // max(1, self.trainer.max_epochs))
        if t.scheduler == "onecycle":
            pct = min(0.5, max(0.01, t.warmup_epochs / t.epochs)) if t.warmup_epochs else 0.25
            scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=t.lr, total_steps=total, pct_start=pct)
        else:
            scheduler = self._timm_schedule(optimizer, t.epochs)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def _timm_schedule(self, optimizer, epochs: int):
        t = self.t
        scheduler, _ = create_scheduler_v2(
            optimizer, sched=t.scheduler, num_epochs=epochs, decay_epochs=t.step_epochs,
            decay_rate=t.step_gamma, min_lr=t.min_lr, warmup_lr=t.lr * 0.01,
            warmup_epochs=t.warmup_epochs, step_on_epochs=False, updates_per_epoch=self._per_epoch)
        return scheduler

    def replan(self, epochs: int) -> bool:
        """The schedule re-planned mid-run for `epochs` in all (`pipeline/fill.py`): timm's schedule built again for
        that length and set to the step reached; False for a one-cycle schedule, whose length is fixed."""
        if self.t.scheduler == "onecycle":
            return False
        if self.t.scheduler != "none":
            config = self.trainer.lr_scheduler_configs[0]
            config.scheduler = self._timm_schedule(config.scheduler.optimizer, epochs)
            config.scheduler.step_update(num_updates=self.global_step)  # not the warm-up's first value for a step
        return True

    def lr_scheduler_step(self, scheduler, metric=None):
        if isinstance(scheduler, TimmScheduler):
            scheduler.step_update(num_updates=self.global_step)
        else:
            scheduler.step()
