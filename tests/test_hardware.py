"""The GPU data path: `hardware=default` picks workers and precision for the machine; channels_last and compile."""
import pytest
import torch
from omegaconf import OmegaConf

import improve.pipeline.hardware as hardware
from improve.pipeline.train import train

from .conftest import compose


def _hw(**kv):
    base = {"accelerator": "auto", "devices": "auto", "precision": "auto", "num_workers": -1, "channels_last": False,
            "compile": False}
    return OmegaConf.create({**base, **kv})


def _gpus(monkeypatch, count: int, bf16: bool = True, cpus: int = 16):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    monkeypatch.setattr(hardware.os, "sched_getaffinity", lambda pid: set(range(cpus)), raising=False)


def test_default_hardware_on_a_gpu_machine_loads_data_in_workers_with_mixed_precision(monkeypatch):
    _gpus(monkeypatch, 1, bf16=True, cpus=16)
    r = hardware.resolve(_hw())
    assert (r.precision, r.num_workers, r.gpu) == ("bf16-mixed", 8, True)
    _gpus(monkeypatch, 2, bf16=False, cpus=8)
    r = hardware.resolve(_hw())
    assert (r.precision, r.num_workers) == ("16-mixed", 3)  # 8 cores over 2 GPUs, one kept for each trainer


def test_default_hardware_on_a_cpu_machine_stays_in_process_and_32_bit(monkeypatch):
    _gpus(monkeypatch, 0)
    r = hardware.resolve(_hw())
    assert (r.precision, r.num_workers, r.gpu) == ("32-true", 0, False)


def test_explicit_precision_and_workers_are_kept(monkeypatch):
    _gpus(monkeypatch, 1)
    r = hardware.resolve(_hw(precision="32-true", num_workers=2))
    assert (r.precision, r.num_workers) == ("32-true", 2)


def test_the_composed_default_hardware_says_auto(tmp_path, cache_dir):
    cfg = compose("train", [], tmp_path, cache_dir)
    assert (cfg.hardware.precision, cfg.hardware.num_workers) == ("auto", -1)


def test_channels_last_puts_the_weights_in_nhwc_and_trains(compose_cfg):
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3))
    hardware.prepare_model(model, _hw(channels_last=True))
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    metrics = train(compose_cfg("dataset.max_train=200", "hardware.channels_last=true", "hardware.compile=false"))
    assert metrics["status"] == "ok", metrics.get("error")


@pytest.mark.slow
def test_a_compiled_model_trains_and_its_checkpoint_loads(compose_cfg, tmp_path):
    metrics = train(compose_cfg("dataset.max_train=200", "hardware.compile=true"))
    assert metrics["status"] == "ok", metrics.get("error")
    state = torch.load(tmp_path / "run" / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)
    assert not any("_orig_mod" in k for k in state["state_dict"])  # Lightning saved the plain module
    assert metrics["test_acc"] is not None
