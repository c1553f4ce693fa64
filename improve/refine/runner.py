"""The one way a refinement run trains a pipeline: its rounds, their candidates, seed confirmations and the end
of run all go through a `Runner`.

A training run is `python -m improve.train` on a frozen config in a child process with a time limit
(`pipeline/process.py`), or one per fold under `loop.folds` (`folds.py`). The Runner knows the run's settings
(dataset, hardware, logger, paths, seed, loop.round_timeout, loop.folds) and its directory, so the loop's parts
pass it a pipeline and a folder, never the settings themselves.
"""
import json
import sys
from pathlib import Path
from typing import Any, Dict, Iterable, Optional

import torch
import yaml
from omegaconf import DictConfig, OmegaConf

from improve.config.paths import CHECKPOINT, round_dir
from improve.files import DISK_FULL
from improve.config.schema import EDITABLE_GROUPS
from improve.pipeline.process import train_in_process
from improve.refine.folds import train_folds
from improve.refine.warm_start import INIT_FILES, init_checkpoint

Pipeline = Dict[str, Dict[str, Any]]


class Runner:
    """Trains pipelines for the refinement run in `run_dir` under its settings `cfg`."""

    def __init__(self, cfg: DictConfig, run_dir: Path):
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.timeout, self.folds = cfg.loop.round_timeout, cfg.loop.folds

    def config(self, pipeline: Pipeline, output_dir: Path, prune: Optional[Dict[str, Any]] = None,
               deadline_s: Optional[float] = None, fill: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """The complete train config of `pipeline` writing into `output_dir`, starting from the weights its round
        copied when it warm-starts, stopped early behind `prune`'s reference curve when given (`refine/prune.py`),
        before `deadline_s` seconds of training, filling a small budget under `fill` (`pipeline/fill.py`)."""
        return {**train_config(self.cfg, pipeline, output_dir),
                "init_checkpoint": init_checkpoint(self.run_dir, pipeline, output_dir), "prune": prune,
                "deadline_s": deadline_s, "fill": fill}

    def run(self, config: Dict[str, Any], output_dir: Path, live: bool = False,
            keep: Iterable[str] = frozenset(), folds: Optional[int] = None) -> Dict[str, Any]:
        """One scored training run of a complete config (`folds`: once per fold, loop.folds unless given); its
        metrics (status "failed" with the reason on any failure)."""
        folds = self.folds if folds is None else folds
        metrics = scored_run(config, output_dir, self.timeout, folds, live, frozenset(keep))
        if metrics.get("errno") in DISK_FULL:  # not the pipeline's failure: the run stops (DiskFull), resume retrains
            raise OSError(metrics["errno"], f"the training run in {output_dir} could not write its files: "
                                            f"{metrics.get('error')}")
        return metrics

    def round(self, r: int, pipeline: Pipeline, prune: Optional[Dict[str, Any]] = None,
              deadline_s: Optional[float] = None, fill: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """Round r's own run, in rounds/NN (its LLM audit and warm-start files kept), pruned against `prune`, stopped
        before `deadline_s`, filling a small budget under `fill`; draws on this terminal when it is one and
        `hardware.progress_bar` is on."""
        rd = round_dir(self.run_dir, r)
        return self.run(self.config(pipeline, rd, prune, deadline_s, fill), rd, live=self.cfg.hardware.progress_bar and sys.stdout.isatty(),
                        keep={"llm", *INIT_FILES})

    def seed(self, pipeline: Pipeline, output_dir: Path, seed: int) -> Dict[str, Any]:
        """A confirmation run: the pipeline with another seed, in its own folder."""
        return self.run({**self.config(pipeline, output_dir), "seed": seed}, output_dir)


class UnusableRun(ValueError):
    """A training run finished, but a file it left is unreadable (cut short by a kill or a full disk)."""


def finished_run(rd: Path, config: Optional[Dict[str, Any]] = None) -> Optional[Dict[str, Any]]:
    """The metrics of the run in `rd` when it finished (status ok) before an interruption, trained on `config` (None:
    any), its validation predictions and checkpoint readable: a resumed run judges it without training it again.
    None when it did not finish. Raises UnusableRun when it finished but a file it left cannot be read."""
    metrics = run_metrics(rd)
    if metrics is None or metrics.get("status") != "ok":
        return None
    if config is not None:
        try:
            frozen = yaml.safe_load((rd / "config.yaml").read_text())
        except (OSError, yaml.YAMLError):
            return None
        if frozen != yaml.safe_load(yaml.safe_dump(config, sort_keys=False)):
            return None
    if (rd / "val_predictions.json").exists():
        _json(rd / "val_predictions.json")
    problem = unreadable_checkpoint(rd / CHECKPOINT) if (rd / CHECKPOINT).exists() else None
    if problem is not None:
        raise UnusableRun(f"{rd.name}/{CHECKPOINT} is unreadable ({problem})")
    return metrics


def run_metrics(rd: Path) -> Optional[Dict[str, Any]]:
    """metrics.json of the run in `rd`; None when there is none yet. Raises UnusableRun when it cannot be read."""
    if not (rd / "metrics.json").is_file():
        return None
    metrics = _json(rd / "metrics.json")
    if not isinstance(metrics, dict):
        raise UnusableRun(f"{rd.name}/metrics.json holds {type(metrics).__name__}, not the run's metrics")
    return metrics


def run_metrics_or_none(rd: Path) -> Optional[Dict[str, Any]]:
    """metrics.json of the run in `rd`, or None when there is none or it cannot be read."""
    try:
        return run_metrics(rd)
    except UnusableRun:
        return None


def unreadable_checkpoint(path: Path) -> Optional[str]:
    """Why the checkpoint at `path` cannot be loaded, or None when it loads."""
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated: torch raises RuntimeError, EOFError or an unpickling error
        return f"{type(err).__name__}; cut short by a kill or a full disk?"
    return None


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:  # ValueError: JSONDecodeError and UnicodeDecodeError
        raise UnusableRun(f"{path.parent.name}/{path.name} is unreadable ({type(err).__name__}; cut short by a kill "
                          f"or a full disk?)") from None


def scored_run(config: Dict[str, Any], rd: Path, timeout: float, folds: int = 0, live: bool = False,
               keep: frozenset = frozenset()) -> Dict[str, Any]:
    """One scored training run: a process of its own (`train_in_process`), or one per fold with folds >= 2.
    What a round, a confirmation or a candidate runs, and what a Ray task runs. A run that goes on from its own
    checkpoint (`ckpt_path` under `rd`: successive halving) keeps its checkpoints and metrics.json."""
    if config.get("ckpt_path") and Path(rd).resolve() in Path(config["ckpt_path"]).resolve().parents:
        keep = frozenset(keep) | {"checkpoints", "metrics.json", "csv"}
    if folds >= 2:
        return train_folds(config, rd, folds, lambda c, d, k: train_in_process(c, d, timeout, keep=k), keep)
    return train_in_process(config, rd, timeout, live, keep=keep)


def train_config(cfg: DictConfig, pipeline: Dict[str, Dict], output_dir: Path) -> Dict[str, Any]:
    """A complete `train.yaml`-shaped config: the run's data and hardware settings plus one pipeline."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    return {"dataset": plain["dataset"], **{g: pipeline[g] for g in EDITABLE_GROUPS}, "hardware": plain["hardware"],
            "logger": run_logger(plain.get("logger") or {"name": "csv"}, Path(plain["paths"]["output_dir"]),
                                 Path(output_dir)),
            "paths": {"data_dir": plain["paths"]["data_dir"], "cache_dir": plain["paths"]["cache_dir"],
                      "output_dir": str(output_dir)},
            "seed": cfg.seed, "test": False, "ckpt_path": None, "init_checkpoint": None, "recipe": None, "save_last": False,
            "save_val_predictions": True, "prune": None, "stop_epoch": None, "deadline_s": None,
            "fill": None}


def run_logger(logger: Dict[str, Any], run_dir: Path, output_dir: Path) -> Dict[str, Any]:
    """The `logger` group of one run of a refinement run: grouped under the run's folder name, named for its round
    (`round_03`, `round_03_seed1`), TensorBoard's files together in <run dir>/tensorboard."""
    try:
        parts = output_dir.relative_to(run_dir).parts
    except ValueError:
        parts = (output_dir.name,)
    name = "_".join(("round",) + parts[1:]) if parts and parts[0] == "rounds" else "_".join(parts) or run_dir.name
    out = {**logger, "group": logger.get("group") or run_dir.name, "run_name": logger.get("run_name") or name}
    if out.get("name") == "tensorboard" and not out.get("save_dir"):
        out["save_dir"] = str(run_dir / "tensorboard")
    return out
