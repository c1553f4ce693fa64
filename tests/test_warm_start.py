"""trainer.warm_start: a round continues from the incumbent's weights when its model group is unchanged."""
import io
import json

from rich.console import Console

from improve.journal.log import Journal
from improve.pipeline.train import train
from improve.refine.loop import Refinement
from improve.refine.warm_start import init_checkpoint, prepare

SMALL = ["dataset.max_train=300", "trainer.epochs=1"]


def test_a_run_initialised_from_a_checkpoint_starts_with_its_weights(compose_cfg, tmp_path, monkeypatch):
    import torch
    from lightning.pytorch.callbacks import Callback

    import improve.pipeline.train as train_module

    first = train(compose_cfg(*SMALL))
    assert first["status"] == "ok", first.get("error")
    ckpt = tmp_path / "run" / "checkpoints" / "best.ckpt"
    seen = {}

    class Watch(Callback):
        def on_train_start(self, trainer, pl_module):
            seen.update({k: v.detach().clone() for k, v in pl_module.net.state_dict().items()})

    real = train_module.lever_callbacks
    monkeypatch.setattr(train_module, "lever_callbacks", lambda t: real(t) + [Watch()])
    cfg = compose_cfg(*SMALL, f"init_checkpoint={ckpt}")
    cfg.paths.output_dir = str(tmp_path / "continued")
    again = train(cfg)
    assert again["status"] == "ok", again.get("error")
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    assert seen and all(torch.equal(seen[k], saved["net." + k]) for k in seen)  # started from the saved weights


def test_weights_of_another_model_are_refused_with_the_fix(compose_cfg, tmp_path):
    assert train(compose_cfg(*SMALL))["status"] == "ok"
    cfg = compose_cfg(*SMALL, f"init_checkpoint={tmp_path / 'run' / 'checkpoints' / 'best.ckpt'}",
                      "model.name=resnet14t")
    cfg.paths.output_dir = str(tmp_path / "other")
    failed = train(cfg)
    assert failed["status"] == "failed" and "does not fit this model" in failed["error"]
    assert "trainer.warm_start=false" in failed["error"] and failed["epochs"] == []


def _pipeline(model="resnet10t", warm=True):
    return {"model": {"name": model}, "trainer": {"warm_start": warm}, "augment": {}}


def test_only_a_round_with_the_incumbents_model_starts_from_its_weights(tmp_path):
    ckpt = tmp_path / "incumbent" / "best.ckpt"
    ckpt.parent.mkdir()
    ckpt.write_bytes(b"weights")
    incumbent = {"round": 2, "pipeline": _pipeline()}
    assert prepare(tmp_path, 3, [_pipeline(warm=False)], incumbent, ckpt, 0) is None
    assert not (tmp_path / "rounds" / "03").exists()
    assert prepare(tmp_path, 3, [_pipeline()], incumbent, ckpt, 0) is None
    seed_dir = tmp_path / "rounds" / "03" / "seed1"
    assert init_checkpoint(tmp_path, _pipeline(), seed_dir) == str(tmp_path / "rounds" / "03" / "init.ckpt")
    assert init_checkpoint(tmp_path, _pipeline("resnet14t"), seed_dir) is None
    assert init_checkpoint(tmp_path, _pipeline(), tmp_path / "best") is None  # best/ retrains from scratch
    note = prepare(tmp_path, 4, [_pipeline("resnet14t")], incumbent, ckpt, 0)
    assert "model differs" in note and not (tmp_path / "rounds" / "04" / "init.ckpt").exists()
    dropout = {**_pipeline(), "model": {"name": "resnet10t", "drop_rate": 0.3}}  # same weights, more dropout
    assert prepare(tmp_path, 6, [dropout], incumbent, ckpt, 0) is None
    assert init_checkpoint(tmp_path, dropout, tmp_path / "rounds" / "06") == str(tmp_path / "rounds" / "06" / "init.ckpt")
    assert "loop.folds" in prepare(tmp_path, 5, [_pipeline()], incumbent, ckpt, 3)
    assert "no incumbent" in prepare(tmp_path, 0, [_pipeline()], None, ckpt, 0)


def test_warm_started_rounds_of_a_refinement_run_continue_from_the_incumbent(tmp_path, compose_loop):
    cfg = compose_loop("loop.rounds=2", "trainer.warm_start=true")
    out = io.StringIO()
    Refinement(cfg, tmp_path / "run", ["trainer.warm_start=true"], console=Console(file=out, width=250)).run()
    events = Journal(tmp_path / "run" / "journal.jsonl").events()
    assert any(e["event"] == "warm_start_skipped" and e["round"] == 0 for e in events)  # nothing to start from
    assert "no incumbent weights yet" in out.getvalue()
    assert "- round 0: trainer.warm_start: no incumbent weights yet" in (tmp_path / "run" / "report.md").read_text()
    rounds = [r for r in (1, 2) if (tmp_path / "run" / "rounds" / f"{r:02d}" / "init.ckpt").is_file()]
    assert rounds, "no round warm-started"
    metrics = json.loads((tmp_path / "run" / "rounds" / f"{rounds[0]:02d}" / "metrics.json").read_text())
    assert metrics["init_checkpoint"].endswith("init.ckpt")
