"""Composing a config from `conf/` without `@hydra.main`: for scripts, tests, benchmarks and the layout check."""
from pathlib import Path
from typing import List, Optional

from omegaconf import DictConfig, open_dict

from improve.config.paths import CONFIG_DIR
from improve.config.schema import register_configs


def compose_config(name: str, overrides: List[str], output_dir: Optional[Path] = None,
                   cache_dir: Optional[Path] = None) -> DictConfig:
    """Compose `conf/<name>.yaml` with overrides outside a Hydra app (tests, benchmarks, notebooks)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    register_configs()  # the group schemas conf/ builds on
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = compose(name, overrides=list(overrides))
    finally:
        GlobalHydra.instance().clear()
    with open_dict(cfg):
        if output_dir is not None:
            cfg.paths.output_dir = str(output_dir)
        if cache_dir is not None:
            cfg.paths.cache_dir = str(cache_dir)
    return cfg
