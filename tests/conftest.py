"""Shared fixtures: the real configs composed once per test, fast settings, a shared cache."""
import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before timm/huggingface_hub are imported: no test may reach a model hub

import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import DictConfig

from improve.train import PROJECT_ROOT, compose_config

FAST = ["hardware=cpu", "hardware.progress_bar=false", "trainer.epochs=1"]


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def compose_cfg(tmp_path, cache_dir):
    """compose_cfg(*overrides) -> the real train config, writing into tmp_path."""

    def _compose(*overrides: str) -> DictConfig:
        return compose_config("train", [*FAST, *overrides], tmp_path / "run", cache_dir)

    return _compose


def run_cli(*args: str, cwd: Path = PROJECT_ROOT, timeout: int = 300, env=None) -> subprocess.CompletedProcess:
    """Run `python -m ...` the way a user does; returns the completed process (never raises)."""
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})})
