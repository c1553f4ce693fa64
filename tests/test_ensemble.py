"""loop.ensemble_top_k: the best rounds' predictions averaged at the end, judged like a candidate, and then what
test, predict and export use."""
import io
import json

import numpy as np
import pytest
from rich.console import Console

from improve.final.end_of_run import EndOfRun
from improve.final.ensemble import judge
from improve.journal.log import Journal
from improve.pipeline.inference import EnsemblePredictor, Predictor, predict_split
from improve.refine.loop import Refinement
from improve.refine.state import State
from improve.results.export import export

from .conftest import LOOP_FAST, compose


@pytest.fixture(scope="module")
def ensembled_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ensemble")
    cfg = compose("config", [*LOOP_FAST, "loop.rounds=3", "loop.ensemble_top_k=3"], tmp / "run", tmp / "cache")
    out = io.StringIO()
    loop = Refinement(cfg, tmp / "run", console=Console(file=out, width=250))
    result = loop.run()
    return tmp / "run", loop, result, out.getvalue()


def test_the_ensemble_is_judged_on_the_validation_images_and_shown(ensembled_run):
    run, _, result, console = ensembled_run
    event = next(e for e in Journal(run / "journal.jsonl").events() if e["event"] == "ensemble")
    assert event["decision"] in ("kept", "reverted") and len(event["members"]) >= 2
    assert event["members"][0] == result["incumbent_round"] and len(event["delta_interval"]) == 2
    assert 0 <= event["p_value"] <= 1 and event["rule"] == "greedy"
    assert "ensemble of rounds" in console
    assert "Ensemble (loop.ensemble_top_k)" in (run / "report.md").read_text()
    assert (run / "best" / "ensemble" / "ensemble.json").is_file() == (event["decision"] == "kept")


def test_a_kept_ensemble_averages_its_members_and_is_what_predict_and_export_use(ensembled_run):
    run, loop, _, _ = ensembled_run
    state = State.of(loop.journal)
    keep_any = EndOfRun(ensemble_top_k=3, accept="greedy", min_delta=-1.0)  # keeps whatever it scores
    judged = judge(state, run, loop.incumbent.checkpoint, keep_any, loop.runner)
    assert judged["decision"] == "kept"
    predictor = Predictor.from_run(run)
    assert isinstance(predictor, EnsemblePredictor) and len(predictor.members) == len(judged["members"])
    images = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 1), dtype=np.uint8)
    averaged = np.mean([m.predict_arrays(images) for m in predictor.members], axis=0)
    assert np.allclose(predictor.predict_arrays(images), averaged, atol=1e-6)
    assert not np.allclose(predictor.members[0].predict_arrays(images), averaged)
    val = predict_split(predictor.cfg, None, "val", predictor)
    assert val["acc"] == pytest.approx(judged["val_acc"], abs=1e-4)
    written = export(run, ["torchscript"])
    import torch

    traced = torch.jit.load(str(written["torchscript"]))
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    with torch.no_grad():
        assert np.allclose(traced(x).softmax(-1).numpy(), averaged, atol=1e-5)
    info = json.loads((run / "best" / "model.json").read_text())
    assert info["files"]["torchscript"] == "model.pt" and len(info["ensemble"]) == len(predictor.members)
