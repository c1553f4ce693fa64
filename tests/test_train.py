"""`train(cfg)` and `python -m improve.train` on the real configs, real trainer, small data."""
import json
import re
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from improve.pipeline.models import build_model
from improve.pipeline.train import train

from .conftest import run_cli

SMALL = ["model.name=test_resnet", "dataset.max_train=300"]


def test_two_epochs_on_digits_write_metrics_checkpoints_and_logs(compose_cfg, tmp_path):
    metrics = train(compose_cfg("trainer.epochs=2"))
    assert metrics["status"] == "ok", metrics["error"]
    run = tmp_path / "run"
    on_disk = json.loads((run / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(metrics))
    first, epoch = metrics["epochs"]
    for key in ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "train_seconds", "train_images"):
        assert epoch[key] is not None, key
    assert metrics["best_val_acc"] == max(first["val_acc"], epoch["val_acc"])
    assert 0.7 < metrics["test_acc"] <= 1.0  # two epochs of a real CNN on real digits learn a lot
    assert metrics["num_params"] > 1_000_000 and metrics["throughput"]["train_images_per_s"] > 0
    assert set(metrics["timings"]) == {"setup_s", "epoch_s", "fit_s", "test_s", "total_s"}
    assert metrics["dataset"]["train"] + metrics["dataset"]["val"] + metrics["dataset"]["test"] == 1797
    assert (run / metrics["checkpoint"]).is_file() and (run / "checkpoints" / "last.ckpt").is_file()
    assert (run / "csv" / "metrics.csv").is_file()


def test_every_trainer_option_runs_together(compose_cfg):
    cfg = compose_cfg(*SMALL, "trainer.epochs=2", "augment.mixup_alpha=0.4", "augment.cutmix_alpha=1.0",
                      "trainer.label_smoothing=0.1", "trainer.grad_clip=1.0", "trainer.early_stopping=1",
                      "trainer.scheduler=step", "trainer.step_epochs=1", "trainer.optimizer=sgd", "trainer.lr=0.05",
                      "model.drop_rate=0.2", "model.drop_path_rate=0.1", "model.name=test_convnext",
                      "save_last=false")
    metrics = train(cfg)
    assert metrics["status"] == "ok", metrics["error"]
    run = Path(cfg.paths.output_dir)
    assert (run / metrics["checkpoint"]).is_file() and metrics["last_checkpoint"] is None
    assert not (run / "checkpoints" / "last.ckpt").exists()
    lrs = [e["lr"] for e in metrics["epochs"]]
    assert lrs[1] < lrs[0]  # the step schedule decayed


def test_onecycle_schedule_warms_up_then_anneals(compose_cfg):
    metrics = train(compose_cfg(*SMALL, "trainer.epochs=2", "trainer.scheduler=onecycle", "trainer.warmup_epochs=1"))
    assert metrics["status"] == "ok", metrics["error"]
    assert metrics["epochs"][1]["lr"] < metrics["epochs"][0]["lr"]


def test_nan_loss_stops_the_run_as_failed(compose_cfg, tmp_path):
    # A std of 1e-38 blows the normalised pixels up to ~1e38: the first forward pass overflows to inf/NaN.
    metrics = train(compose_cfg(*SMALL, "trainer.epochs=3", "augment.std=[1e-38]"))
    assert metrics["status"] == "failed"
    assert metrics["error_type"] == "NonFiniteLossError"
    assert "trainer.lr" in metrics["error"] and "grad_clip" in metrics["error"]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["status"] == "failed"


def test_size_changing_transform_fails_before_training(compose_cfg):
    metrics = train(compose_cfg("augment.train_transforms=[{name: RandomCrop, height: 16, width: 16}]"))
    assert metrics["status"] == "failed" and metrics["epochs"] == []
    assert "RandomResizedCrop size: [32, 32]" in metrics["error"]


def test_resume_from_last_checkpoint_continues_training(compose_cfg, tmp_path):
    first = train(compose_cfg(*SMALL))
    assert first["status"] == "ok"
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    cfg = compose_cfg(*SMALL, "trainer.epochs=2", f"ckpt_path={last}")
    cfg.paths.output_dir = str(tmp_path / "resumed")
    second = train(cfg)
    assert second["status"] == "ok", second["error"]
    assert [e["epoch"] for e in second["epochs"]] == [1]  # epoch 0 came from the checkpoint


def test_pretrained_offline_says_how_to_go_on(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = OmegaConf.create({"name": "test_resnet", "pretrained": True, "pretrained_file": None, "drop_rate": 0.0,
                            "drop_path_rate": 0.0, "kwargs": {}})
    with pytest.raises(RuntimeError) as err:
        build_model(**cfg, num_classes=3, in_chans=3)
    assert "model.pretrained=false" in str(err.value) and "model.pretrained_file" in str(err.value)


def test_local_pretrained_file_loads_the_body_and_adapts_the_head(tmp_path):
    import timm

    source = timm.create_model("test_resnet", num_classes=1000)
    torch.save(source.state_dict(), tmp_path / "weights.pth")
    cfg = OmegaConf.create({"name": "test_resnet", "pretrained": True, "pretrained_file": str(tmp_path / "weights.pth"),
                            "drop_rate": 0.0, "drop_path_rate": 0.0, "kwargs": {}})
    model = build_model(**cfg, num_classes=4, in_chans=3)
    assert model.get_classifier().out_features == 4
    body = [k for k in source.state_dict() if not k.startswith("fc.")]
    assert all(torch.equal(source.state_dict()[k], model.state_dict()[k]) for k in body)
    missing = OmegaConf.merge(cfg, {"pretrained_file": str(tmp_path / "nope.pth")})
    with pytest.raises(ValueError, match="nope.pth"):
        build_model(**missing, num_classes=4, in_chans=3)


def test_cli_failure_writes_failed_metrics_and_exits_nonzero(tmp_path):
    proc = run_cli("improve.train", "model.name=resnet19", "hardware=cpu", f"hydra.run.dir={tmp_path}")
    assert proc.returncode != 0
    assert "resnet19" in proc.stdout + proc.stderr and "resnet18" in proc.stdout + proc.stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["status"] == "failed" and "model.name='resnet19'" in metrics["error"] and metrics["epochs"] == []


def test_cli_unknown_key_fails_before_training_naming_it(tmp_path):
    proc = run_cli("improve.train", "trainer.learning_rate=0.1", f"hydra.run.dir={tmp_path}")
    assert proc.returncode != 0 and "learning_rate" in proc.stderr
    assert not (tmp_path / "metrics.json").exists()


def test_multirun_runs_two_jobs(tmp_path, cache_dir):
    proc = run_cli("improve.train", "-m", "trainer.lr=0.001,0.003", "hardware=cpu", "hardware.progress_bar=false",
                   "trainer.epochs=1", "test=false", *SMALL, f"paths.cache_dir={cache_dir}",
                   f"hydra.sweep.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = sorted(tmp_path.glob("*/metrics.json"))
    assert len(runs) == 2
    assert all(json.loads(p.read_text())["status"] == "ok" for p in runs)


def test_optuna_search_runs_trials_and_reports_the_best(tmp_path, cache_dir):
    proc = run_cli("improve.train", "hparams_search=optuna", "hydra.sweeper.n_trials=2", "hardware=cpu",
                   "hardware.progress_bar=false", "trainer.epochs=1", "test=false", *SMALL,
                   f"paths.cache_dir={cache_dir}", f"hydra.sweep.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(list(tmp_path.glob("*/metrics.json"))) == 2
    assert "best value" in proc.stdout + proc.stderr and re.search(r"Optuna [4-9]", proc.stdout + proc.stderr)
    best = (tmp_path / "optimization_results.yaml").read_text()
    assert "best_value" in best and "trainer.lr" in best


@pytest.mark.slow
def test_ddp_spawn_with_two_cpu_processes(tmp_path, cache_dir):
    proc = run_cli("improve.train", "hardware=cpu", "hardware.devices=2", "hardware.strategy=ddp_spawn",
                   "hardware.progress_bar=false", "trainer.epochs=2", *SMALL, f"paths.cache_dir={cache_dir}",
                   f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["status"] == "ok" and len(metrics["epochs"]) == 2
    assert metrics["test_acc"] is not None
    assert metrics["epochs"][0]["train_images"] == 2 * (metrics["epochs"][0]["train_images"] // 2)


def test_the_sweepers_search_space_syntax_maps_to_current_optuna_distributions():
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    from hydra_plugins.improve_optuna.sweeper import search_space

    assert int(optuna.__version__.split(".")[0]) >= 4  # the core installs a current Optuna
    space, fixed = search_space(["trainer.lr=tag(log, interval(0.0001, 0.01))", "trainer.optimizer=choice(adamw, sgd)",
                                 "trainer.epochs=range(2, 10, 2)", "model.drop_rate=interval(0.0, 0.5)",
                                 "trainer.batch_size=64"])
    assert space["trainer.lr"] == FloatDistribution(0.0001, 0.01, log=True)
    assert space["trainer.optimizer"] == CategoricalDistribution(["adamw", "sgd"])
    assert space["trainer.epochs"] == IntDistribution(2, 8, step=2)  # range's stop is exclusive, as in Hydra
    assert space["model.drop_rate"] == FloatDistribution(0.0, 0.5) and fixed == {"trainer.batch_size": "64"}


def test_a_tracker_that_is_not_installed_is_named_with_how_to_install_it(compose_cfg, monkeypatch, tmp_path):
    import importlib.util

    from improve.pipeline.loggers import build_loggers

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(ValueError, match=r"logger=wandb needs the wandb package.*pip install -e '.\[tracking\]'"):
        build_loggers(compose_cfg("logger=wandb"), tmp_path)
