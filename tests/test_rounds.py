"""Rounds as processes forked from the preloaded round server (improve/rounds.py)."""
import os
import subprocess
import sys

from omegaconf import OmegaConf

from improve.config.compose import compose_config
from improve.config.paths import PROJECT_ROOT
from improve.config.schema import EDITABLE_GROUPS
from improve.pipeline.process import train_in_process
from improve.refine.runner import train_config


def test_unguarded_script_gets_a_round_error_that_names_the_main_guard(tmp_path, cache_dir):
    script = tmp_path / "unguarded.py"
    script.write_text(
        "from pathlib import Path\nfrom omegaconf import OmegaConf\n"
        "from improve.pipeline.process import train_in_process\nfrom improve.refine.runner import train_config\n"
        "from improve.config.compose import compose_config\n"
        f"cfg = compose_config('train', ['model.name=test_resnet', 'dataset.max_train=100', 'trainer.epochs=1',"
        f" 'hardware=cpu'], Path({str(tmp_path / 'round')!r}), Path({str(cache_dir)!r}))\n"
        "pipeline = {g: OmegaConf.to_container(cfg[g]) for g in ('augment', 'model', 'trainer')}\n"
        f"rd = Path({str(tmp_path / 'round')!r})\n"
        "print('ERROR:', train_in_process(train_config(cfg, pipeline, rd), rd, timeout=120).get('error'))\n")
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=240,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'failed before training started' in proc.stdout and 'if __name__ == "__main__":' in proc.stdout


def test_round_server_preload_leaves_cuda_untouched_so_forked_rounds_can_use_it():
    probe = ("import torch, torch.cuda\n"
             "calls = []\n"
             "real = torch._C._cuda_getDeviceCount\n"
             "torch._C._cuda_getDeviceCount = lambda: calls.append(1) or real()\n"
             "import importlib\n"
             "from improve.pipeline.process import PRELOAD\n"
             "for name in PRELOAD: importlib.import_module(name)\n"
             "print('cuda queries', len(calls), 'initialized', torch.cuda.is_initialized())\n")
    proc = subprocess.run([sys.executable, "-c", probe], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "cuda queries 0 initialized False" in proc.stdout  # a driver initialised before fork breaks CUDA after


def test_ddp_round_relaunches_the_train_entry_point_for_its_second_process(tmp_path, cache_dir):
    rd = tmp_path / "round"
    cfg = compose_config("train", ["hardware=cpu", "hardware.devices=2", "hardware.strategy=ddp",
                                   "hardware.progress_bar=false", "model.name=test_resnet", "dataset.max_train=200",
                                   "trainer.epochs=1"], rd, cache_dir)
    pipeline = {g: OmegaConf.to_container(cfg[g], resolve=True) for g in EDITABLE_GROUPS}
    metrics = train_in_process(train_config(cfg, pipeline, rd), rd, timeout=240)
    assert metrics["status"] == "ok", metrics.get("error")
    log = (rd / "stdout.log").read_text()
    assert "MEMBER: 1/2" in log and "MEMBER: 2/2" in log, log[-3000:]  # rank 1 ran as `python -m improve.train`
    assert metrics["epochs"][0]["train_images"] % 2 == 0  # counted over both processes
