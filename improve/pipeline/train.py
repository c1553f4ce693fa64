"""One training run: `train(cfg) -> metrics` under a thin `@hydra.main`.

    python -m improve.train                                 # digits, default pipeline
    python -m improve.train dataset=shapes trainer.epochs=5
    python -m improve.train recipe=resnet_mid dataset=cifar10
    python -m improve.train -m model.name=resnet10t,test_resnet trainer.lr=1e-3,3e-3

Everything a run produces lands in its output dir: metrics.json (docs/outputs.md), train.log,
checkpoints/{best,last}.ckpt and csv/metrics.csv (plus the `logger` group's tracker). Any failure still writes metrics.json
with status "failed" and the reason, and the command exits non-zero.
"""
import logging
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Dict, Optional

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from improve.config.fields import check_ranges
from improve.config.paths import CHECKPOINT, CONFIG_DIR, project_path
from improve.config.schema import EDITABLE_GROUPS, register_configs
from improve.data.datamodule import ImageDataModule
from improve.files import write_json
from improve.pipeline.augment import build_train_transform, check_transform_output, train_augment
from improve.pipeline.callbacks import lever_callbacks
from improve.pipeline.fill import fill_callbacks
from improve.pipeline.hardware import prepare_model, resolve
from improve.pipeline.init_weights import load_weights
from improve.pipeline.loggers import build_loggers
from improve.pipeline.models import check_model_name, count_parameters
from improve.pipeline.module import Classifier
from improve.pipeline.pruning import prune_callbacks
from improve.pipeline.record import EpochHistory, RunRecord

log = logging.getLogger("improve.train")


def validate(cfg: DictConfig) -> None:
    """Checks that need no data or compute: value ranges and library names. Raises ValueError."""
    for group in ("dataset", *EDITABLE_GROUPS, "hardware"):
        check_ranges(group, cfg[group])
    check_model_name(cfg.model.name)
    build_train_transform(cfg.augment.train_transforms)  # names and parameters, validated by albumentations itself


def _trainer(cfg: DictConfig, out: Path, record: RunRecord) -> L.Trainer:
    hw, t = cfg.hardware, cfg.trainer
    precision = resolve(hw).precision
    refit = bool(cfg.dataset.get("refit"))  # validation images are trained on: the last epoch is the model
    callbacks = [
        EpochHistory(record),
        ModelCheckpoint(dirpath=out / CHECKPOINT.parent, filename=CHECKPOINT.stem, monitor=None if refit else "val/acc",
                        mode="max", save_last=cfg.save_last, auto_insert_metric_name=False,
                        enable_version_counter=False),
    ]
    if t.early_stopping and not refit:
        callbacks.append(EarlyStopping(monitor="val/acc", mode="max", patience=t.early_stopping))
    callbacks += lever_callbacks(t)
    callbacks += fill_callbacks(cfg.get("fill"), record)  # before the deadline, which reads the epochs it plans
    callbacks += prune_callbacks(cfg.get("prune"), record, cfg.get("stop_epoch"), cfg.get("deadline_s"))
    return L.Trainer(
        max_epochs=t.epochs, accelerator=hw.accelerator, devices=hw.devices, num_nodes=hw.num_nodes,
        strategy=hw.strategy, precision=precision, deterministic=hw.deterministic,
        gradient_clip_val=t.grad_clip or None, callbacks=callbacks, enable_progress_bar=hw.progress_bar,
        logger=build_loggers(cfg, out), default_root_dir=out, num_sanity_val_steps=0,
        log_every_n_steps=10, enable_model_summary=False)


def train(cfg: DictConfig) -> Dict[str, Any]:
    """Train one pipeline and return the content of metrics.json (also written to the output dir).

    Never raises for a failed run: the exception's message goes into `status`/`error`; the
    caller decides (the CLI exits non-zero).
    """
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    record = RunRecord(out)
    if cfg.get("ckpt_path") and record.path.is_file():  # the run goes on: its earlier epochs stay in its record
        record.reload()
        record.data["status"] = "running"
        record.data.pop("stopped", None)
        record.started = time.perf_counter() - (record.data["timings"].get("total_s") or 0.0)
    record.save()
    try:
        _run(cfg, out, record)
        record.update(status="ok")
    except Exception as err:
        log.error("run failed: %s: %s", type(err).__name__, err)
        record.reload()
        record.fail(err)
    return record.data


def _run(cfg: DictConfig, out: Path, record: RunRecord) -> None:
    t0 = time.perf_counter()
    OmegaConf.resolve(cfg)
    validate(cfg)
    if cfg.hardware.threads:
        torch.set_num_threads(cfg.hardware.threads)
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    geometry = train_augment(cfg.augment)
    data = ImageDataModule(cfg.dataset, cfg.augment.image_size, project_path(cfg.paths.cache_dir),
                           project_path(cfg.dataset.path), cfg.trainer.batch_size, resolve(cfg.hardware).num_workers,
                           geometry.transform, balance=cfg.trainer.balance, train_size=geometry.input_size)
    splits = data.prepare()
    check_transform_output(geometry.transform, cfg.augment.image_size, data.channels, cfg.seed, geometry.input_size)
    model = Classifier(cfg.model, cfg.augment, cfg.trainer, data.num_classes, data.channels, splits.class_names,
                       data.class_counts("train"))
    if cfg.get("init_checkpoint"):
        load_weights(model.net, str(project_path(cfg.init_checkpoint)))
        record.update(init_checkpoint=cfg.init_checkpoint)
    record.update(num_params=count_parameters(model.net), dataset={
        "name": cfg.dataset.name, "classes": splits.class_names, "channels": data.channels,
        "image_size": cfg.augment.image_size, "train": len(splits.train), "val": len(splits.val),
        "test": len(splits.test), "skipped": splits.cached.skipped})
    record.data["timings"]["setup_s"] = round(time.perf_counter() - t0, 3)

    trainer = _trainer(cfg, out, record)
    if cfg.trainer.get("lr_find"):
        record.update(lr_find=find_lr(trainer, model, data, cfg.trainer.lr))
    t_fit = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
        warnings.filterwarnings("ignore", message=".*treespec, LeafSpec.*")  # inside Lightning, not ours
        resume = str(project_path(cfg.ckpt_path)) if cfg.ckpt_path else None
        trainer.fit(prepare_model(model, cfg.hardware), datamodule=data, ckpt_path=resume)
        record.reload()
        checkpoint = trainer.checkpoint_callback
        record.data["timings"]["fit_s"] = round(time.perf_counter() - t_fit, 3)
        record.update(checkpoint=_relative(checkpoint.best_model_path, out),
                      last_checkpoint=_relative(checkpoint.last_model_path, out))
        if cfg.save_val_predictions and trainer.is_global_zero and checkpoint.best_model_path:
            from improve.pipeline.inference import predict_split

            write_json(out / "val_predictions.json", predict_split(cfg, Path(checkpoint.best_model_path), "val"))
        if cfg.test:
            t_test = time.perf_counter()
            results = trainer.test(model, datamodule=data, ckpt_path=checkpoint.best_model_path or None,
                                   verbose=False)
            record.data["timings"]["test_s"] = round(time.perf_counter() - t_test, 3)
            record.update(test_acc=results[0]["test/acc"], test_loss=results[0]["test/loss"])


def find_lr(trainer: L.Trainer, model: Classifier, data: ImageDataModule, configured: float) -> Dict[str, Any]:
    """trainer.lr_find: Lightning's learning-rate range test on up to 100 steps (the weights are restored after);
    the suggested lr replaces trainer.lr, unless the test finds none (then the configured lr stays, and says so)."""
    from lightning.pytorch.tuner import Tuner

    steps = max(10, min(100, len(data.train_dataloader())))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        result = Tuner(trainer).lr_find(model, datamodule=data, min_lr=1e-6, max_lr=1.0, num_training=steps,
                                        update_attr=False)
    suggested = result.suggestion() if result is not None else None
    if suggested:
        model.t.lr = float(suggested)
        log.info("lr_find: lr %.3g (configured %.3g)", suggested, configured)
    else:
        log.warning("lr_find found no clear minimum of the loss curve; keeping trainer.lr=%s", configured)
    return {"lr": float(suggested) if suggested else configured, "configured": configured, "steps": steps,
            "found": bool(suggested)}


def _relative(path: str, out: Path) -> Optional[str]:
    if not path:
        return None
    try:
        return str(Path(path).relative_to(out))
    except ValueError:
        return path


def summary_line(metrics: Dict[str, Any]) -> str:
    if metrics["status"] != "ok":
        return f"FAILED ({metrics['error_type']}): the reason is logged above and saved in metrics.json"
    parts = [f"best val acc {metrics['best_val_acc']:.4f} (epoch {metrics['best_epoch']})"]
    if metrics["test_acc"] is not None:
        parts.append(f"test acc {metrics['test_acc']:.4f}")
    parts.append(f"{metrics['num_params']:,} params")
    parts.append(f"{metrics['throughput']['train_images_per_s']} img/s")
    parts.append(f"{metrics['timings']['total_s']:.1f} s")
    return ", ".join(parts)


register_configs()


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def main(cfg: DictConfig) -> Optional[float]:
    metrics = train(cfg)
    from rich.console import Console

    console = Console(stderr=False)
    ok = metrics["status"] == "ok"
    console.print(("[bold green]" if ok else "[bold red]") + summary_line(metrics), highlight=False)
    console.print(f"metrics: {Path(cfg.paths.output_dir) / 'metrics.json'}", highlight=False)
    if not ok:
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            return float("nan")  # a failed trial: the sweep goes on
        sys.exit(1)
    return metrics["best_val_acc"]  # the value Hydra sweepers (Optuna) maximise


if __name__ == "__main__":
    main()
