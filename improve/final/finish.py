"""The end of a refinement run: the incumbent alone is evaluated on the test split, then exported."""
import time
from pathlib import Path
from typing import Any, Dict, Optional

import yaml
from omegaconf import OmegaConf

from improve.config.paths import CHECKPOINT, round_checkpoint
from improve.files import atomic_copy, write_json
from improve.final import soup
from improve.final.end_of_run import EndOfRun
from improve.final.ensemble import judge
from improve.final.refit import REFIT_DIR, refit_config, train_refit
from improve.journal.events import Average, End, Ensemble, of_fields
from improve.journal.log import Journal
from improve.pipeline.inference import Predictor, predict_split
from improve.refine.incumbent import IncumbentDir
from improve.refine.runner import Runner
from improve.refine.state import State
from improve.results.export import export


def finish(run_dir: Path, state: State, journal: Journal, incumbent: IncumbentDir,
           runner: Runner, min_accuracy: float, ensemble: Optional[EndOfRun] = None,
           refit: bool = False) -> Dict[str, Any]:
    """Test the final model once (the incumbent; its weights averaged with its warm-start ancestors', then an
    ensemble of the best rounds, each when `ensemble` asks for it and it wins on validation; with `refit`, its
    pipeline retrained on training + validation images instead, `final/refit.py`), write best/ and
    test_predictions.json, export; journal and return the `end` event.

    `runner.config(pipeline, output_dir)` makes the complete train config of a pipeline for this run."""
    inc = state.incumbent
    result: Dict[str, Any] = {"rounds": len(state.decisions), "incumbent_round": None, "val_acc": None,
                              "test_acc": None}
    if inc is not None:
        best = run_dir / "best"
        best.mkdir(exist_ok=True)
        train_cfg = runner.config(inc["pipeline"], best)
        _write_config(best, train_cfg, "The best pipeline of this run")
        atomic_copy(incumbent.checkpoint, best / "best.ckpt")
        averaged = soup.judge(state, run_dir, incumbent.checkpoint, ensemble, runner) if ensemble else None
        averaged_checkpoint = averaged.pop("checkpoint", None) if averaged else None  # only when kept
        if averaged:
            journal.write(of_fields(Average, averaged))
            result["average"] = averaged
        if averaged_checkpoint:  # the averaged weights are the final model from here on
            result["single_test_acc"] = round(predict_split(OmegaConf.create(train_cfg), best / "best.ckpt")["acc"], 4)
            atomic_copy(Path(averaged_checkpoint), best / "best.ckpt")
            Path(averaged_checkpoint).unlink()
        test = predict_split(OmegaConf.create(train_cfg), best / "best.ckpt")
        judged = judge(state, run_dir, best / "best.ckpt", ensemble, runner) if ensemble else None
        if judged:
            journal.write(of_fields(Ensemble, judged))
            result["ensemble"] = judged
        if ensemble is None or ensemble.ensemble_top_k < 2:  # the reverted rounds' weights served the soup only
            soup.release(state, run_dir)
        if judged and judged["decision"] == "kept":  # the ensemble is the final model: tested, exported, predicts
            result.setdefault("single_test_acc", round(test["acc"], 4))
            test = predict_split(OmegaConf.create(train_cfg), None, "test", Predictor.from_run(run_dir))
        if refit and judged and judged["decision"] == "kept":
            result["refit"] = {"status": "skipped", "error": "the ensemble of rounds is the final model; a refit "
                                                              "retrains one pipeline (set loop.ensemble_top_k=0)"}
        elif refit:
            done = train_refit(run_dir, inc, runner)
            if done.status == "ok":
                done.selected_test_acc = round(test["acc"], 4)
                train_cfg = refit_config(runner, inc["pipeline"], done.epochs, best)
                _write_config(best, train_cfg, "The best pipeline of this run, refit on training + validation images")
                atomic_copy(run_dir / REFIT_DIR / CHECKPOINT, best / "best.ckpt")
                test = predict_split(OmegaConf.create(train_cfg), best / "best.ckpt")
                done.test_acc = round(test["acc"], 4)
            result["refit"] = done.journal()
        write_json(run_dir / "test_predictions.json", test)
        first_ckpt = round_checkpoint(run_dir, 0)
        if inc["round"] != 0 and 0 in state.proposals and first_ckpt.is_file():
            # reported, never used for selection: how much the refinement gained over the first pipeline
            first_cfg = OmegaConf.create(runner.config(state.proposals[0]["pipeline"], best))
            result["round0_test_acc"] = round(predict_split(first_cfg, first_ckpt)["acc"], 4)
        else:
            result["round0_test_acc"] = round(test["acc"], 4) if inc["round"] == 0 else None
        export(run_dir)
        result.update(incumbent_round=inc["round"], val_acc=inc["val_acc"], test_acc=round(test["acc"], 4),
                      min_accuracy_met=(test["acc"] >= min_accuracy) if min_accuracy else None)
    result["round0_val_acc"] = state.decisions.get(0, {}).get("val_acc")
    calls = [e for e in journal.events() if e["event"] == "llm_call"]
    if calls:
        result["llm"] = calls[-1]["totals"]
        if all(e.get("error") and not e.get("error_kind") for e in calls):  # no reply ever arrived
            result["llm_failed"] = {"calls": len(calls), "last_error": calls[-1]["error"]}
        elif all(e.get("error") for e in calls):  # replies came, none usable: the model, not the setup, failed
            result["llm_unusable"] = {"calls": len(calls), "last_error": calls[-1]["error"]}
    result["seconds"] = state.spent(end_time=time.time())
    journal.write(of_fields(End, result))
    return result


def _write_config(best: Path, train_cfg: Dict[str, Any], what: str) -> None:
    """best/config.yaml: the final model's train config (tested), headed by what it is and how to retrain it."""
    (best / "config.yaml").write_text(
        f"# {what}; retrain it with\n"
        f"#   python -m improve.train --config-path={best.resolve()} --config-name=config\n"
        + yaml.safe_dump({**train_cfg, "test": True}, sort_keys=False))
