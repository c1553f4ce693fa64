"""What bounding validation costs: one edit checked in its bounded child (`refine/validator.py`) against the same
checks run in the loop's own process, `python -m improve.bench validation`."""
import statistics
import time
from typing import Dict, List

from omegaconf import OmegaConf

from improve.config.compose import compose_config
from improve.config.schema import EDITABLE_GROUPS
from improve.pipeline.process import warm_up
from improve.refine.preflight import validate_edit
from improve.refine.validator import Validator

EDITS = [("trainer", "lr: 0.002"), ("augment", "train_transforms:\n- {name: Affine, rotate: [-5, 5], p: 0.5}"),
         ("model", "drop_rate: 0.2")]  # an edit of each group, each checked in full (parse to pre-flight)


def bench_validation(repeats: int = 10, overrides: List[str] = ()) -> Dict[str, float]:
    """Median seconds of one validation in the process and in the bounded child, over `repeats` of each edit."""
    cfg = compose_config("config", list(overrides))
    pipeline = {g: OmegaConf.to_container(cfg[g]) for g in EDITABLE_GROUPS}
    bounded = Validator(10, 1, {}, timeout=cfg.loop.validate_timeout, memory_gb=None, max_epochs=cfg.loop.max_epochs)
    warm_up()
    bounded.edit(EDITS[0][1], EDITS[0][0], pipeline)  # the forkserver's imports are paid once per run, before the first round
    timings: Dict[str, List[float]] = {"in_process": [], "bounded": []}
    for _ in range(repeats):
        for group, text in EDITS:
            start = time.perf_counter()
            validate_edit(text, group, pipeline, 10, 1, {}, cfg.loop.max_epochs)
            timings["in_process"].append(time.perf_counter() - start)
            start = time.perf_counter()
            bounded.edit(text, group, pipeline)
            timings["bounded"].append(time.perf_counter() - start)
    inside, child = statistics.median(timings["in_process"]), statistics.median(timings["bounded"])
    return {"in_process_s": round(inside, 3), "bounded_s": round(child, 3), "overhead_s": round(child - inside, 3),
            "checks": len(timings["bounded"]), "model": cfg.model.name, "image_size": cfg.augment.image_size}
