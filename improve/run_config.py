"""A resumed run's settings: what it saved at its start, with the command line's changes it allows."""
from pathlib import Path
from typing import List

from omegaconf import DictConfig, OmegaConf

from .proposals import override_key

SETTINGS = ("loop", "constraints", "llm", "hardware", "logger")  # what a resume may change


def load_run_config(run_dir: Path, overrides: List[str], composed: DictConfig) -> DictConfig:
    """The saved settings of a run, with the command line's loop/constraints/llm/hardware overrides applied.

    Their values are read from `composed` (the command line's config, as Hydra typed it), so a group option such
    as `hardware=gpu` brings that option's whole group."""
    saved = run_dir / "run_config.yaml"
    if not saved.is_file():
        raise FileNotFoundError(f"resume={run_dir}: no run_config.yaml there; give the directory of a run started "
                                f"with python -m improve (it holds journal.jsonl)")
    cfg = OmegaConf.load(saved)
    for override in overrides:
        key = override_key(override)
        if key.split(".")[0] in SETTINGS:
            OmegaConf.update(cfg, key, OmegaConf.select(composed, key), merge=False)
    cfg.resume = str(run_dir)
    return cfg
