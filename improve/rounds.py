"""One training run in its own process: `python -m improve.train` on a frozen config, with a time limit.

The refinement loop runs every round this way, and the strategy benchmark every trial, so a
crash, NaN, OOM or hang costs one run and never the caller.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterable, Optional

import yaml
from omegaconf import DictConfig, OmegaConf

from .record import write_json
from .schema import EDITABLE_GROUPS
from .train import PROJECT_ROOT


def train_config(cfg: DictConfig, pipeline: Dict[str, Dict], output_dir: Path) -> Dict[str, Any]:
    """A complete `train.yaml`-shaped config: the run's data and hardware settings plus one pipeline."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    return {"dataset": plain["dataset"], **{g: pipeline[g] for g in EDITABLE_GROUPS}, "hardware": plain["hardware"],
            "paths": {"data_dir": plain["paths"]["data_dir"], "cache_dir": plain["paths"]["cache_dir"],
                      "output_dir": str(output_dir)},
            "seed": cfg.seed, "test": False, "ckpt_path": None, "recipe": None}


def _die_with_parent() -> None:  # a training run must not outlive a killed caller
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # not Linux: the run may outlive its caller; resume reruns it anyway
        pass


def failed(rd: Path, error: str, kind: str, metrics: Optional[Dict] = None) -> Dict[str, Any]:
    metrics = dict(metrics or {"epochs": []})
    metrics.update(status="failed", error=error, error_type=kind)
    write_json(rd / "metrics.json", metrics)
    return metrics


def train_in_process(config: Dict[str, Any], rd: Path, timeout: float, live: bool = False,
                     keep: Iterable[str] = ()) -> Dict[str, Any]:
    """Write rd/config.yaml, run it, return its metrics.json (status "failed" with the reason on any failure).

    What an interrupted earlier attempt left in `rd` is removed first, except the names in `keep`.
    `live`: the run draws on this terminal (progress bar) instead of writing rd/stdout.log.
    """
    rd.mkdir(parents=True, exist_ok=True)
    for stale in rd.iterdir():
        if stale.name not in keep:
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    (rd / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = [sys.executable, "-m", "improve.train", f"--config-path={rd.resolve()}", "--config-name=config",
           f"hydra.run.dir={rd.resolve()}"]
    name = rd.name
    with open(rd / "stdout.log", "w") as out:
        proc = subprocess.Popen(cmd, stdout=None if live else out, stderr=None if live else subprocess.STDOUT,
                                cwd=PROJECT_ROOT, preexec_fn=_die_with_parent, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the run and any workers it started
            proc.wait()
            return failed(rd, f"round timed out after {timeout:.0f} s (loop.round_timeout); use fewer epochs, a "
                              f"smaller model or image size", "TimeoutError")
    metrics_file = rd / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else None
    if proc.returncode < 0:
        return failed(rd, f"training process killed by signal {-proc.returncode}"
                          f"{' (out of memory?)' if proc.returncode == -signal.SIGKILL else ''}; see "
                          f"{name}/stdout.log", "Killed", metrics)
    if metrics is None or metrics.get("status") == "running":
        return failed(rd, f"training crashed (exit code {proc.returncode}) without finishing metrics.json; see "
                          f"{name}/stdout.log", "Crash", metrics)
    return metrics
