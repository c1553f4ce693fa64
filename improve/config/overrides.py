"""A resumed run's settings: what it saved at its start, with the command line's changes it allows."""
from pathlib import Path
from typing import Any, Dict, List

from omegaconf import DictConfig, OmegaConf

from improve.config.schema import EDITABLE_GROUPS

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


def override_key(override: str) -> str:
    """'trainer.lr=0.01' -> 'trainer.lr'; '+model.kwargs.x=1' -> 'model.kwargs.x'."""
    return override.lstrip("+~").split("=", 1)[0]


def pipeline_overrides(overrides: List[str]) -> List[str]:
    """The command-line overrides that set agent-editable groups."""
    return [o for o in overrides if override_key(o).split(".")[0] in EDITABLE_GROUPS]


def pinned_values(cfg, overrides: List[str]) -> Dict[str, Dict[str, Any]]:
    """The editable-group values a user set on the command line, read back from the composed config.

    `trainer.lr=0.01` pins one key; `augment=photo` (a group option) pins the whole group."""
    from omegaconf import OmegaConf

    pinned: Dict[str, Any] = {}
    for override in pipeline_overrides(overrides):
        key = override_key(override)
        group = key.split(".")[0]
        if key == group:
            pinned[group] = OmegaConf.to_container(cfg[group], resolve=True)
        else:
            node = OmegaConf.create(pinned)
            OmegaConf.update(node, key, OmegaConf.select(cfg, key), merge=False)
            pinned = OmegaConf.to_container(node, resolve=True)
    return pinned
