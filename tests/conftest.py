"""Shared fixtures: the real configs composed once per test, fast settings, a shared cache."""
import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before timm/huggingface_hub are imported: no test may reach a model hub

import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, open_dict

from improve.train import CONFIG_DIR, PROJECT_ROOT

FAST = ["hardware=cpu", "hardware.progress_bar=false", "trainer.epochs=1"]


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def compose_cfg(tmp_path, cache_dir):
    """compose_cfg(*overrides) -> the real train config, writing into tmp_path."""

    def _compose(*overrides: str) -> DictConfig:
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = compose("train", overrides=[*FAST, *overrides])
        with open_dict(cfg):
            cfg.paths.output_dir = str(tmp_path / "run")
            cfg.paths.cache_dir = str(cache_dir)
        return cfg

    yield _compose
    GlobalHydra.instance().clear()


def run_cli(*args: str, cwd: Path = PROJECT_ROOT, timeout: int = 300, env=None) -> subprocess.CompletedProcess:
    """Run `python -m ...` the way a user does; returns the completed process (never raises)."""
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})})
