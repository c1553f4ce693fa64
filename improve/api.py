"""The Python front door: fit (refine) a dataset, train one config, load a finished run and predict.

    import improve
    run = improve.fit("shapes", ["loop.rounds=2"])     # what `python -m improve dataset=shapes loop.rounds=2` does
    run.test_acc, run.run_dir
    labels = run.predict(["img1.png", "img2.png"])        # class names, in the order given
    metrics = improve.train_one(["dataset=shapes", "trainer.epochs=2"])   # what `python -m improve.train ...` does
    run = improve.load("outputs/improve/2026-12-01/10-00-00")

Thin calls over the code the commands run: the same configs, overrides, run directory and journal. A script
that calls `fit` must guard its entry point with `if __name__ == "__main__":` (rounds start through Python
multiprocessing, as the command's do).
"""
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Union

import numpy as np
from omegaconf import OmegaConf, open_dict

from improve.config.compose import compose_config
from improve.config.paths import project_path

PathLike = Union[str, Path]


@dataclass
class Run:
    """A finished run (refinement or single training) read from its directory."""

    run_dir: Path
    result: Dict[str, Any] = field(default_factory=dict)  # the journal's `end` event, or a training run's metrics

    @property
    def val_acc(self) -> Optional[float]:
        return self.result.get("val_acc", self.result.get("best_val_acc"))

    @property
    def test_acc(self) -> Optional[float]:
        return self.result.get("test_acc")

    @property
    def predictor(self):
        """The run's final model as an `improve.pipeline.inference.Predictor` (loaded once)."""
        if "_predictor" not in self.__dict__:
            from improve.pipeline.inference import Predictor

            self.__dict__["_predictor"] = Predictor.from_run(self.run_dir)
        return self.__dict__["_predictor"]

    @property
    def classes(self) -> List[str]:
        return list(self.predictor.class_names)

    def predict_proba(self, images: Union[Iterable[PathLike], np.ndarray], tta: bool = False) -> np.ndarray:
        """Class probabilities (N, classes) for image files, or for uint8 arrays N,H,W,C already at the pipeline's
        image size. An unreadable file raises ValueError naming it."""
        if isinstance(images, np.ndarray):
            return self.predictor.predict_arrays(images, tta=tta)
        files = [str(f) for f in images]
        probs, bad = self.predictor.predict_files(files, tta=tta)
        if bad:
            raise ValueError(f"unreadable image file(s): {', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''}; "
                             f"remove them or pass readable images")
        return np.stack([probs[f] for f in files]) if files else np.zeros((0, len(self.classes)), np.float32)

    def predict(self, images: Union[Iterable[PathLike], np.ndarray], tta: bool = False) -> List[str]:
        """The predicted class name of each image, in the order given."""
        return [self.classes[i] for i in self.predict_proba(images, tta).argmax(1)]


def _stamped(root: str) -> Path:
    """<root>/<date>/<time> under the project, the folder the commands' Hydra apps would make now."""
    now = time.localtime()
    return project_path(root) / time.strftime("%Y-%m-%d", now) / time.strftime("%H-%M-%S", now)


def load(run_dir: PathLike) -> Run:
    """A finished run from its directory: a refinement run (`journal.jsonl`, `best/`) or a training run
    (`metrics.json`, `checkpoints/best.ckpt`)."""
    import json

    run_dir = project_path(str(run_dir))
    if (run_dir / "journal.jsonl").is_file():
        from improve.journal.log import Journal
        from improve.refine.state import State

        final = State.of(Journal(run_dir / "journal.jsonl")).final
        if final is None:
            raise ValueError(f"run={run_dir} has not finished (no `end` event in its journal); finish it with "
                             f"python -m improve resume={run_dir}")
        return Run(run_dir, {k: v for k, v in final.items() if k not in ("event", "time")})
    if (run_dir / "metrics.json").is_file():
        return Run(run_dir, json.loads((run_dir / "metrics.json").read_text()))
    raise FileNotFoundError(f"run={run_dir}: neither journal.jsonl (a refinement run) nor metrics.json (a training "
                            f"run) there; give the directory a run wrote")


def fit(dataset: str = "digits", overrides: Sequence[str] = (), run_dir: Optional[PathLike] = None,
           agent=None, console=None) -> Run:
    """Refine a classifier on `dataset` with the command line's `overrides` (`["loop.rounds=3", "llm=heuristic"]`)
    and return the finished run. `run_dir`: where it writes (default outputs/improve/<date>/<time>); an existing
    run directory is resumed. `agent`: an `improve.agents.Agent` that plays every role instead of `llm`'s."""
    from improve.refine.loop import Refinement

    overrides = [f"dataset={dataset}", *overrides]
    cfg = compose_config("config", overrides)
    run_dir = project_path(str(run_dir)) if run_dir else _stamped("outputs/improve")
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)
    if (run_dir / "journal.jsonl").is_file():
        from improve.config.overrides import load_run_config

        cfg = load_run_config(run_dir, overrides, cfg)
    Refinement(cfg, run_dir, overrides, console=console, agent=agent).run()
    return load(run_dir)


def train_one(overrides: Sequence[str] = (), output_dir: Optional[PathLike] = None) -> Dict[str, Any]:
    """One training run in this process (`python -m improve.train` without Hydra's app); returns its metrics
    (what `metrics.json` holds). `output_dir` default: outputs/train/<date>/<time>."""
    from improve.pipeline.train import train as train_run

    out = project_path(str(output_dir)) if output_dir else _stamped("outputs/train")
    out.mkdir(parents=True, exist_ok=True)
    cfg = compose_config("train", list(overrides), output_dir=out)
    (out / ".hydra").mkdir(exist_ok=True)
    (out / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))  # what `load` reads back
    return train_run(cfg)
