"""loop.refit: the final pipeline retrained on training + validation images for the epochs its chain trained."""
import io
import json

import numpy as np
import yaml
from rich.console import Console

from improve.config.paths import round_dir
from improve.final.refit import chain_epochs, refit_pipeline
from improve.journal.log import Journal
from improve.refine.loop import Refinement

from .test_datasets import prepare


def test_a_refit_trains_on_the_training_and_validation_images_and_keeps_the_test_split(compose_cfg):
    _, plain = prepare(compose_cfg("dataset=digits", "dataset.max_train=200"))
    _, refit = prepare(compose_cfg("dataset=digits", "dataset.max_train=200", "dataset.refit=true"))
    assert np.array_equal(refit.train, np.sort(np.concatenate([plain.train, plain.val])))
    assert np.array_equal(refit.test, plain.test) and np.array_equal(refit.val, plain.val)


def test_the_refit_trains_as_many_epochs_as_the_incumbents_warm_start_chain_from_scratch(tmp_path):
    for r, epochs, parent in ((0, 4, None), (1, 3, None), (2, 8, 0)):
        rd = round_dir(tmp_path, r)
        rd.mkdir(parents=True)
        (rd / "metrics.json").write_text(json.dumps({"epochs": [{"epoch": i} for i in range(epochs)]}))
        if parent is not None:
            (rd / "init.json").write_text(json.dumps({"from_round": parent, "model": {}}))
    assert chain_epochs(tmp_path, 2) == 12 and chain_epochs(tmp_path, 1) == 3
    trainer = refit_pipeline({"trainer": {"warm_start": True, "epochs": 8, "early_stopping": 3, "lr": 0.1}}, 12)
    assert trainer["trainer"] == {"warm_start": False, "epochs": 12, "early_stopping": 0, "lr": 0.1, "lr_find": False}


def test_loop_refit_makes_the_refit_the_final_model_tested_exported_and_reported(tmp_path, compose_loop):
    cfg = compose_loop("loop.rounds=1", "loop.refit=true", "loop.average_top_k=0", "loop.diagnose=false")
    out = io.StringIO()
    result = Refinement(cfg, tmp_path / "run", console=Console(file=out, width=300)).run()
    run = tmp_path / "run"
    refit = result["refit"]
    train_images = json.loads((round_dir(run, result["incumbent_round"]) / "metrics.json").read_text())["dataset"]
    assert refit["status"] == "ok" and refit["epochs"] == chain_epochs(run, result["incumbent_round"]) >= 1, refit
    assert refit["train_images"] == train_images["train"] + train_images["val"]
    assert result["test_acc"] == refit["test_acc"] and refit["selected_test_acc"] is not None
    frozen = yaml.safe_load((run / "best" / "config.yaml").read_text())
    assert frozen["dataset"]["refit"] is True and frozen["trainer"]["warm_start"] is False
    end = [e for e in Journal(run / "journal.jsonl").events() if e["event"] == "end"][-1]
    assert end["refit"]["test_acc"] == refit["test_acc"]
    assert "refit (loop.refit): the final pipeline retrained from scratch" in out.getvalue()
    assert "Refit (loop.refit)" in (run / "report.md").read_text()
