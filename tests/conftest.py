"""Shared fixtures and helpers: the real configs, each composed once per session and copied per test; fast settings;
a shared cache; the journal's decisions; the command line as a user runs it."""
import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before timm/huggingface_hub are imported: no test may reach a model hub

import copy
import subprocess
import sys
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Sequence

import pytest
from omegaconf import DictConfig, open_dict

from improve.config.compose import compose_config
from improve.config.paths import PROJECT_ROOT
from improve.journal.log import Journal

from .llm_server import SECRET

FAST = ["hardware=cpu", "hardware.progress_bar=false", "trainer.epochs=1"]  # one training run
LOOP_FAST = ["hardware=cpu", "hardware.progress_bar=false", "dataset.max_train=200", "loop.max_epochs=1",
             "loop.pretrained_reachable=false"]  # a refinement run: 1-epoch rounds on 200 digits


@lru_cache(maxsize=None)
def _composed(name: str, overrides: Sequence[str]) -> DictConfig:
    return compose_config(name, list(overrides))


def compose(name: str, overrides: Sequence[str], output_dir: Path, cache_dir: Path) -> DictConfig:
    """conf/<name>.yaml with overrides: composed once per session, a fresh copy writing into `output_dir`."""
    cfg = copy.deepcopy(_composed(name, tuple(overrides)))
    with open_dict(cfg):
        cfg.paths.output_dir, cfg.paths.cache_dir = str(output_dir), str(cache_dir)
    return cfg


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def compose_cfg(tmp_path, cache_dir):
    """compose_cfg(*overrides) -> the real train config (FAST), writing into tmp_path/run."""
    return lambda *overrides: compose("train", [*FAST, *overrides], tmp_path / "run", cache_dir)


@pytest.fixture
def compose_loop(tmp_path, cache_dir):
    """compose_loop(*overrides) -> the real refinement config (LOOP_FAST), writing into tmp_path/run."""
    return lambda *overrides: compose("config", [*LOOP_FAST, *overrides], tmp_path / "run", cache_dir)


@pytest.fixture
def keys(monkeypatch):
    """Both API keys set to a secret that must never be written anywhere."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)


def decisions(run_dir: Path) -> List[Dict]:
    """The `decision` events of a run's journal, in order."""
    return [e for e in Journal(run_dir / "journal.jsonl").events() if e["event"] == "decision"]


def run_cli(*args: str, cwd: Path = PROJECT_ROOT, timeout: int = 300, env=None) -> subprocess.CompletedProcess:
    """Run `python -m ...` the way a user does; returns the completed process (never raises)."""
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})})
