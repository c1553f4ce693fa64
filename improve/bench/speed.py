"""`python -m improve.bench speed` and `flip`: what a training run and the loop cost, and a label-destroying flip.

speed  training images/s vs the raw model's forward+backward+step images/s on in-memory
       tensors (same model, batch, threads): the framework's and data pipeline's share of
       the cost (target ratio >= 0.85); the dataset cache, first load vs cached load of
       N images from files (target <= 1 s for 10,000); where a round of about a minute
       spends its time outside the training steps (target <= 10%); the loop's own work.
flip   the orientation task (`dataset=shapes`) trained with and without a horizontal flip:
       a flip changes the label, so it must score clearly lower.
"""
import time
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf

from improve.config.compose import compose_config
from improve.pipeline.process import train_in_process
from improve.pipeline.train import train
from improve.refine.runner import train_config


def compose_train(overrides: List[str], output_dir: Path, cache_dir: Path) -> DictConfig:
    return compose_config("train", overrides, output_dir, cache_dir)


def raw_images_per_s(model: torch.nn.Module, cfg: DictConfig, channels: int, num_classes: int, steps: int) -> float:
    """Forward+backward+optimizer step on one in-memory batch, repeated: the model's own speed."""
    from timm.optim import create_optimizer_v2

    t, size = cfg.trainer, cfg.augment.image_size
    opt = create_optimizer_v2(model, opt=t.optimizer, lr=t.lr, weight_decay=t.weight_decay, momentum=t.momentum)
    x = torch.randn(t.batch_size, channels, size, size)
    y = torch.randint(0, num_classes, (t.batch_size,))
    model.train()

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * t.batch_size / (time.perf_counter() - start)


def bench_throughput(overrides: List[str], work: Path, repeats: int = 3) -> Dict[str, float]:
    """Training images/s over the raw model's, measured `repeats` times, each training run bracketed
    by raw measurements of the same amount of work just before and after it; the median ratio is
    the result, so a machine whose speed drifts between minutes does not decide it."""
    from improve.pipeline.models import build_model

    def compose(name: str, *extra: str) -> DictConfig:
        return compose_train(["hardware=cpu", "hardware.progress_bar=false", "test=false", *overrides, *extra],
                             work / name, work / "cache")

    cfg = compose("run")
    warm = train(compose("warm", "trainer.epochs=1"))  # fills the cache, warms the allocator
    if warm["status"] != "ok":
        raise RuntimeError(f"training failed: {warm['error']}")
    ds = warm["dataset"]
    torch.manual_seed(0)
    model = build_model(**cfg.model, num_classes=len(ds["classes"]), in_chans=ds["channels"])
    steps = max(10, int(ds["train"] / cfg.trainer.batch_size) * max(1, cfg.trainer.epochs - 1))
    raw = [raw_images_per_s(model, cfg, ds["channels"], len(ds["classes"]), steps)]
    trained, ratios = [], []
    for i in range(repeats):
        metrics = train(compose(f"run{i}"))
        if metrics["status"] != "ok":
            raise RuntimeError(f"training failed: {metrics['error']}")
        epochs = metrics["epochs"][1:] or metrics["epochs"]  # the first epoch pays one-off costs
        trained.append(sum(e["train_images"] for e in epochs) / sum(e["train_seconds"] for e in epochs))
        raw.append(raw_images_per_s(model, cfg, ds["channels"], len(ds["classes"]), steps))
        ratios.append(trained[-1] / ((raw[-2] + raw[-1]) / 2))
    median = int(np.argsort(ratios)[len(ratios) // 2])
    return {"model": cfg.model.name, "batch_size": cfg.trainer.batch_size, "image_size": cfg.augment.image_size,
            "threads": torch.get_num_threads(), "train_images_per_s": round(trained[median], 1),
            "raw_images_per_s": round((raw[median] + raw[median + 1]) / 2, 1),
            "raw_series": [round(r, 1) for r in raw], "train_series": [round(t, 1) for t in trained],
            "ratios": [round(r, 3) for r in ratios], "ratio": round(ratios[median], 3)}


def bench_cache(n_images: int, size: int, work: Path) -> Dict[str, float]:
    """Write n PNG files in a class-folder layout, then time the first (decoding) and the cached load."""
    from PIL import Image

    from improve.data.cache import load_cached
    from improve.data.sources import open_source

    root = work / "images"
    rng = np.random.default_rng(0)
    for c in range(10):
        (root / f"class{c}").mkdir(parents=True)
    pixels = rng.integers(0, 256, (n_images, 48, 40, 3), dtype=np.uint8)
    for i in range(n_images):
        Image.fromarray(pixels[i]).save(root / f"class{i % 10}" / f"{i}.png", compress_level=1)
    cfg = compose_train(["dataset=folder", f"dataset.path={root}", f"augment.image_size={size}"], work / "run",
                        work / "cache")

    def load():
        start = time.perf_counter()
        cached = load_cached(cfg.dataset, open_source(cfg.dataset, root), size, work / "cache")
        x, y = cached.arrays("train")
        return time.perf_counter() - start, x, y

    first, x, _ = load()
    second, x2, _ = load()
    if x.shape != x2.shape:
        raise RuntimeError(f"cached load returned {x2.shape}, the first load {x.shape}")
    return {"images": n_images, "image_size": size, "first_load_s": round(first, 3), "cached_load_s": round(second, 3)}


def bench_round(epochs: int, work: Path) -> Dict[str, float]:
    """Where a round's wall time goes, for a round of `epochs` epochs run as the loop runs it.

    A 1-epoch round first fills the data cache and starts the preloaded forkserver, as round 0 of
    every loop does; the measured round is then like every later one.
    """
    overrides = ["hardware=cpu", "hardware.progress_bar=false", "test=false"]
    cfg = compose_train([*overrides, f"trainer.epochs={epochs}"], work / "round", work / "cache")
    plain = OmegaConf.to_container(cfg, resolve=False)
    pipeline = {g: plain[g] for g in ("augment", "model", "trainer")}
    first_wall, first = _timed_round(train_config(cfg, {**pipeline, "trainer": {**pipeline["trainer"], "epochs": 1}},
                                                  work / "first"), work / "first")
    wall, metrics = _timed_round(train_config(cfg, pipeline, work / "round"), work / "round")
    epochs_ = metrics["epochs"]
    training = sum(e["train_seconds"] for e in epochs_)
    validation = sum(e["seconds"] - e["train_seconds"] for e in epochs_)
    t = metrics["timings"]
    startup = (wall - t["total_s"]) + t["setup_s"]  # process start, config, data and model until fit
    fit_other = t["fit_s"] - sum(e["seconds"] for e in epochs_)  # Lightning setup, checkpoints
    finishing = wall - startup - t["fit_s"]  # results, process exit
    overhead = wall - training
    return {"epochs": epochs, "round_s": round(wall, 2), "training_s": round(training, 2),
            "startup_s": round(startup, 2), "validation_s": round(validation, 2),
            "checkpoints_and_fit_setup_s": round(fit_other, 2), "results_and_exit_s": round(finishing, 2),
            "overhead_s": round(overhead, 2), "overhead_share": round(overhead / wall, 3),
            "first_round_start_s": round(first_wall - first["timings"]["total_s"], 2)}


def _timed_round(config: Dict, rd: Path):
    start = time.perf_counter()
    metrics = train_in_process(config, rd, timeout=1800)
    wall = time.perf_counter() - start
    if metrics["status"] != "ok":
        raise RuntimeError(f"training failed: {metrics['error']}")
    return wall, metrics


def bench_loop_work(work: Path) -> Dict[str, float]:
    """The loop's own time per round outside training: agent, edit validation, pre-flight (offline expert)."""
    import io as _io

    from rich.console import Console

    from improve.journal.log import Journal
    from improve.refine.loop import Refinement

    cfg = compose_config("config", ["hardware=cpu", "hardware.progress_bar=false", "loop.rounds=3",
                                    "loop.max_epochs=1", "dataset.max_train=200", "loop.pretrained_reachable=false",
                                    "llm=heuristic"], work / "loop", work / "cache")
    Refinement(cfg, work / "loop", console=Console(file=_io.StringIO())).run()
    events = Journal(work / "loop" / "journal.jsonl").events()
    decided = {e["round"]: e["time"] for e in events if e["event"] == "decision"}
    proposed = {e["round"]: e["time"] for e in events if e["event"] == "proposal"}
    gaps = [proposed[r] - decided[r - 1] for r in proposed if r >= 1 and r - 1 in decided]
    return {"rounds": len(gaps), "loop_work_per_round_s": round(float(np.mean(gaps)), 3) if gaps else None}


def bench_flip(overrides: List[str], work: Path) -> Dict[str, float]:
    results = {}
    for name, transforms in (("no_flip", "[]"), ("hflip", "[{name: HorizontalFlip, p: 0.5}]")):
        cfg = compose_train(["dataset=shapes", "hardware=cpu", "hardware.progress_bar=false",
                             f"augment.train_transforms={transforms}", *overrides], work / name, work / "cache")
        metrics = train(cfg)
        if metrics["status"] != "ok":
            raise RuntimeError(f"{name}: training failed: {metrics['error']}")
        results[name] = {"val_acc": metrics["best_val_acc"], "test_acc": metrics["test_acc"]}
    return results


