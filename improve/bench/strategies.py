"""The equal-budget strategy study behind `python -m improve.bench strategies`.

Every strategy gets the same number of training runs per (dataset, seed), the same epochs per
run and the same hardware; each run is `python -m improve.train` in its own process:
  zero_shot         the architect's first pipeline only (the paper's baseline; 1 run)
  zero_shot_long    that pipeline trained once with the whole budget's epochs (what a practitioner tries first)
  iterative         the refinement loop, one group a round, keeping any gain (loop.accept=greedy)
  iterative_curves  the same with its analyst reading the curves only (loop.diagnose=false: no confusion pairs,
                    no structural findings), the ablation of refine/diagnoses.py
  iterative_paired  the same, keeping only significant gains (loop.accept=paired)
  iterative_confirm the same, retraining unproven gains with more seeds (loop.accept=confirm; the extra runs
                    come out of the budget)
  all_at_once       every group edited every round (the paper's no-IR ablation)
  random       random search over the agent-editable keys (Optuna's RandomSampler)
  optuna       TPE over the same space (Optuna's TPESampler)
random and optuna start from the same label-safe base as the agents (the architect's pipeline)
and search the same keys an engineer may change. Results are saved after every unit, so an
interrupted study resumes where it stopped.
"""
import copy
import io
import json
import logging
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
from omegaconf import OmegaConf, open_dict
from rich.console import Console

from improve.agents.moves import COARSE_DROPOUT, COLOR_JITTER, SCRATCH_LADDER, flips_allowed
from improve.bench.paired import paired
from improve.bench.tasks import TASKS, prepare
from improve.config.compose import compose_config
from improve.config.paths import CHECKPOINT, round_dir
from improve.journal.log import Journal
from improve.pipeline.inference import predict_split
from improve.pipeline.process import train_in_process
from improve.refine.loop import Refinement
from improve.refine.runner import train_config
from improve.refine.state import SPENT, State

LOOPS = {"zero_shot": "greedy", "zero_shot_long": "greedy", "iterative": "greedy", "iterative_curves": "greedy",
         "iterative_paired": "paired", "iterative_confirm": "confirm", "all_at_once": "greedy"}  # strategy -> loop.accept
BLIND = "_blind"  # a suite task's name + this: the task run without a description and under a name that says nothing
STRATEGIES = [*LOOPS, "random", "optuna"]
REFERENCE = "zero_shot_long"  # what a practitioner tries first: every strategy is compared with it
DEFAULT_STRATEGIES = ["zero_shot", "zero_shot_long", "iterative", "all_at_once", "random", "optuna"]
log = logging.getLogger("improve.bench")


@dataclass
class Suite:
    """A named study: its task kinds and the budget every strategy gets on each."""

    datasets: List[str]
    seeds: int  # seeds 0..seeds-1, each its own split and training seed
    runs: int  # training runs per strategy (zero_shot: 1; zero_shot_long: 1 of runs x epochs)
    epochs: int  # epochs of every training run
    strategies: List[str]
    budget: str = "runs"  # what a loop strategy is given (BUDGETS): `runs` runs, or zero_shot_long's training seconds


SUITES = {  # `--suite quick` for iterating on this CPU (about 11 minutes), `--suite full` for the study; both give
    # the loops zero_shot_long's seconds: the budget is compute, and a loop spends it as it judges best
    "quick": Suite(["orientation", "fine_detail", "noisy_labels", "shifted_test", "colour"], 2, 3, 2,
                   ["zero_shot_long", "iterative"], "seconds"),
    "full": Suite([*TASKS, "mirror" + BLIND], 5, 5, 3, STRATEGIES, "seconds"),
}


def search_space(trial, base: Dict[str, Dict], profile: Dict[str, Any]) -> Dict[str, Dict]:
    """One pipeline from the agent-editable keys; transforms stay label-safe for the dataset."""
    augment, model, trainer = (dict(base[g]) for g in ("augment", "model", "trainer"))
    size = augment["image_size"]
    options = {"Affine": {"name": "Affine", "scale": [0.9, 1.1], "translate_percent": [-0.08, 0.08], "p": 0.5},
               "CoarseDropout": copy.deepcopy(COARSE_DROPOUT)}
    if flips_allowed(profile):
        options["HorizontalFlip"] = {"name": "HorizontalFlip", "p": 0.5}
    if profile["channels"] == 3:
        options["ColorJitter"] = copy.deepcopy(COLOR_JITTER)
        options["RandomResizedCrop"] = {"name": "RandomResizedCrop", "size": [size, size], "scale": [0.5, 1.0],
                                        "p": 1.0}
    augment["train_transforms"] = [t for name, t in options.items() if trial.suggest_categorical(name, [False, True])]
    augment["mixup_alpha"] = trial.suggest_categorical("mixup_alpha", [0.0, 0.2, 0.4])
    augment["cutmix_alpha"] = trial.suggest_categorical("cutmix_alpha", [0.0, 1.0])
    augment["mix_prob"] = 0.5
    model["name"] = trial.suggest_categorical("model", SCRATCH_LADDER[:4])
    model["drop_rate"] = trial.suggest_float("drop_rate", 0.0, 0.5)
    trainer["optimizer"] = trial.suggest_categorical("optimizer", ["adamw", "sgd"])
    trainer["lr"] = trial.suggest_float("lr", 1e-4, 3e-2, log=True)
    trainer["weight_decay"] = trial.suggest_float("weight_decay", 0.0, 0.1)
    trainer["label_smoothing"] = trial.suggest_float("label_smoothing", 0.0, 0.2)
    trainer["batch_size"] = trial.suggest_categorical("batch_size", [32, 64, 128])
    return {"augment": augment, "model": model, "trainer": trainer}


def dataset_overrides(dataset: str, data_dir: Path) -> List[str]:
    """A dataset config's name, or a task of the suite (`tasks.py`), written under data_dir on first use; `mirror_blind`
    is task `mirror` without its description (what a user who says nothing about the images runs)."""
    task = dataset[:-len(BLIND)] if dataset.endswith(BLIND) else dataset
    if task in TASKS:
        prepare(task, data_dir)
        return TASKS[task].overrides(data_dir, described=task == dataset)
    return [f"dataset={dataset}"]


def _loop_cfg(dataset: str, seed: int, epochs: int, out: Path, cache_dir: Path, extra: List[str]):
    """Seed s trains with seed s on split s (dataset.seed: a generated set is drawn anew, a suite task's validation
    and training images carved anew), so a mean over seeds is not one split's luck; `dataset.seed=N` among the
    overrides keeps one split for every seed."""
    split = [] if any(o.startswith("dataset.seed=") for o in extra) else [f"dataset.seed={seed}"]
    data = dataset_overrides(dataset, cache_dir.parent / "data")
    hardware = [] if any(o.startswith("hardware=") for o in extra) else ["hardware=cpu"]  # hardware=gpu when lent
    return compose_config("config", [*data, *hardware, "hardware.progress_bar=false",
                                     f"seed={seed}", f"loop.max_epochs={epochs}", "loop.pretrained_reachable=false",
                                     *split, *extra], out, cache_dir)


def run_loop(cfg, out: Path, strategy: str, runs: int, overrides: Optional[List[str]] = None,
             agent=None, time_budget: float = 0.0) -> Dict[str, Any]:
    with open_dict(cfg):
        cfg.loop.rounds = runs - 1
        cfg.loop.time_budget = time_budget
        cfg.loop.strategy = "all_at_once" if strategy == "all_at_once" else "iterative"
        cfg.loop.accept = LOOPS[strategy]
        cfg.loop.diagnose = strategy != "iterative_curves"
    result = Refinement(cfg, out, overrides, console=Console(file=io.StringIO()), agent=agent).run()
    events = Journal(out / "journal.jsonl").events()
    state = State(events)
    vals = [state.decisions[r]["val_acc"] for r in sorted(state.decisions)]
    trained = [d for d in state.decisions.values() if d["decision"] not in ("invalid", "skipped")]
    failed = sum(d["decision"] in ("failed", "invalid", "skipped") for d in state.decisions.values())
    train_s = round(state.training_seconds(), 1)  # an invalid or skipped round trained nothing: 0 s
    chain = _incumbents(out, state)
    if chain and result["test_acc"] is not None and abs(chain[-1][1] - result["test_acc"]) > 1e-9:
        chain.append([train_s, result["test_acc"]])  # the end-of-run average or ensemble: no training, at the end
    return {"vals": vals, "test_acc": result["test_acc"], "selected_val": result["val_acc"], "failed": failed,
            "train_runs": len(trained) + state.extra_runs, "train_s": train_s, "incumbents": chain,
            "seconds": seconds_spent(events)}


def seconds_spent(events: List[Dict[str, Any]]) -> Dict[str, float]:
    """A loop's seconds by what they bought (`State.spent`)."""
    return State(events).spent()


def _incumbents(out: Path, state: State) -> List[List[float]]:
    """[training seconds spent when it was kept, its test accuracy] of every incumbent of a loop in turn: what the
    loop would have delivered had it been stopped at any time (the equal-seconds comparison reads it)."""
    spent, chain = 0.0, []
    for r in sorted(state.decisions):
        d = state.decisions[r]
        spent += d["seconds"] if d["decision"] not in ("invalid", "skipped") else 0.0
        rd = round_dir(out, r)
        if d["decision"] == "kept" and (rd / CHECKPOINT).is_file():
            test = predict_split(OmegaConf.load(rd / "config.yaml"), rd / CHECKPOINT)["acc"]
            chain.append([round(spent, 1), test])
    return chain


def run_search(cfg, out: Path, strategy: str, runs: int, base: Dict[str, Dict], profile: Dict[str, Any],
               timeout: float) -> Dict[str, Any]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = (optuna.samplers.RandomSampler(seed=cfg.seed) if strategy == "random" else
               optuna.samplers.TPESampler(seed=cfg.seed, n_startup_trials=max(1, runs // 3)))
    study = optuna.create_study(direction="maximize", sampler=sampler)
    vals: List[Optional[float]] = []
    seconds = 0.0
    spent = dict.fromkeys(SPENT, 0.0)
    best: Optional[tuple] = None
    incumbents: List[List[float]] = []
    for i in range(runs):
        trial = study.ask()
        pipeline = search_space(trial, base, profile)
        rd = out / "trials" / f"{i:02d}"
        config = train_config(cfg, pipeline, rd)
        start = time.perf_counter()
        metrics = train_in_process(config, rd, timeout)
        took = time.perf_counter() - start
        seconds += took
        val = metrics.get("best_val_acc") if metrics.get("status") == "ok" else None
        spent["failed" if val is None else "kept" if best is None or val > best[0] else "reverted"] += took
        study.tell(trial, val if val is not None else float("nan"))
        vals.append(val)
        if val is not None and (best is None or val > best[0]):
            if best is not None:
                shutil.rmtree(best[2] / "checkpoints", ignore_errors=True)
            best = (val, config, rd)
            test = predict_split(OmegaConf.create(config), rd / CHECKPOINT)["acc"]
            incumbents.append([round(seconds, 1), test])
        else:
            shutil.rmtree(rd / "checkpoints", ignore_errors=True)
    return {"vals": vals, "test_acc": incumbents[-1][1] if incumbents else None,
            "selected_val": best[0] if best else None, "failed": sum(v is None for v in vals), "train_runs": runs,
            "train_s": round(seconds, 1), "incumbents": incumbents, "seconds": {k: round(v, 1) for k, v in spent.items()}}


BUDGETS = ("seconds", "runs")  # what a loop strategy is given: zero_shot_long's training seconds, or `runs` runs
BUDGETED = [s for s in LOOPS if s not in ("zero_shot", REFERENCE)]  # what a loop strategy trains depends on the budget
COMPUTE_ROUNDS = 4  # --budget seconds: rounds a loop may start, per run of the budget (the seconds stop it first)


def run_unit(dataset: str, strategy: str, seed: int, runs: int, epochs: int, out: Path, cache_dir: Path,
             extra: List[str], timeout: float, seconds: Optional[float] = None,
             base: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """One (dataset, strategy, seed): its validation accuracy per run, test accuracy of its best, failures, time.
    `seconds`: a loop strategy gets that loop.time_budget (zero_shot_long's training seconds) and spends it as it
    judges best: round 0 of `epochs` epochs, rounds of up to all the budget's epochs, its final phase. `base`: the
    searches' starting point, the zero_shot unit's `base` ({pipeline, profile}); None: read from its journal."""
    start = time.perf_counter()
    unit_dir = out / dataset / strategy / f"seed{seed}"
    if unit_dir.exists():
        shutil.rmtree(unit_dir)  # an interrupted unit starts afresh
    cfg = _loop_cfg(dataset, seed, epochs, unit_dir, cache_dir, extra)
    if strategy == "zero_shot_long":  # one run with every epoch of the budget, the user's value kept in round 0
        long = [f"trainer.epochs={runs * epochs}"]
        cfg = _loop_cfg(dataset, seed, runs * epochs, unit_dir, cache_dir, [*extra, *long])
        result = run_loop(cfg, unit_dir, strategy, 1, long)
    elif strategy in BUDGETED and seconds is not None:
        first = [f"trainer.epochs={epochs}"]  # round 0 as under equal runs; later rounds may train longer
        cfg = _loop_cfg(dataset, seed, runs * epochs, unit_dir, cache_dir, [*extra, *first])
        result = run_loop(cfg, unit_dir, strategy, COMPUTE_ROUNDS * runs, first, time_budget=seconds)
    elif strategy in LOOPS:
        result = run_loop(cfg, unit_dir, strategy, 1 if strategy == "zero_shot" else runs)
        if strategy == "zero_shot":  # what the searches start from, kept in results.json: it resumes from that alone
            result["base"] = search_base(unit_dir)
    else:
        base = base or search_base(out / dataset / "zero_shot" / f"seed{seed}")
        if base is None:
            raise RuntimeError(f"{strategy} needs the zero_shot run of {dataset} seed {seed} first (its base pipeline)")
        result = run_search(cfg, unit_dir, strategy, runs, base["pipeline"], base["profile"], timeout)
    result["wall_s"] = round(time.perf_counter() - start, 1)
    drop_checkpoints(unit_dir)
    return result


def search_base(unit_dir: Path) -> Optional[Dict[str, Any]]:
    """The architect's pipeline and the dataset profile of a zero_shot unit (its journal): where the searches
    start; None when it has not run."""
    state = State(Journal(unit_dir / "journal.jsonl").events()) if (unit_dir / "journal.jsonl").is_file() else None
    if state is None or 0 not in state.proposals:
        return None
    return {"pipeline": state.proposals[0]["pipeline"], "profile": state.profile}


def drop_checkpoints(unit_dir: Path) -> None:
    """A finished unit's checkpoints: tested already, and a study of many units would fill the disk with them."""
    for ckpt in unit_dir.rglob("*.ckpt"):
        ckpt.unlink()


def _best_so_far(vals: List[Optional[float]], runs: int) -> List[float]:
    out, best = [], 0.0
    for i in range(runs):
        v = vals[i] if i < len(vals) else None  # zero_shot: its one run is all it gets
        best = max(best, v or 0.0)
        out.append(best)
    return out


def _mean_std(values: List[float]) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    return f"{np.mean(values):.4f} ± {np.std(values):.4f}"


def equal_seconds(results: Dict[str, Dict], d: str, seed: int) -> Optional[float]:
    """The training seconds every strategy of (dataset, seed) is compared at: those of zero_shot_long's one run, else
    the fewest any strategy (but zero_shot) used."""
    long = results.get(f"{d}/zero_shot_long/{seed}")
    if long:
        return long["train_s"]
    spent = [u["train_s"] for k, u in results.items() if k.startswith(f"{d}/") and k.endswith(f"/{seed}")
             and "/zero_shot/" not in k]
    return min(spent) if spent else None


def test_at_seconds(unit: Dict[str, Any], seconds: Optional[float]) -> Optional[float]:
    """Test accuracy of the incumbent the unit had after `seconds` of training (its first, if even that took
    longer; its last, if it used fewer)."""
    chain = unit.get("incumbents") or []
    if not chain or seconds is None:
        return unit.get("test_acc")
    within = [test for spent, test in chain if spent <= seconds * 1.02]  # 2 %: the clock's jitter between runs
    return within[-1] if within else chain[0][1]


def summarise(results: Dict[str, Dict], datasets: List[str], strategies: List[str], seeds: List[int],
              runs: int, budget: str = "runs") -> str:
    lines = ["| dataset | strategy | training runs | selected val acc | final test acc | optimism (val - test) | "
             "failed runs | training s | test acc at equal training s |", "|---|---|---|---|---|---|---|---|---|"]
    for d in datasets:
        for s in strategies:
            units = [results[f"{d}/{s}/{seed}"] for seed in seeds if f"{d}/{s}/{seed}" in results]
            if not units:
                continue
            selected = [u.get("selected_val") for u in units]
            optimism = [v - u["test_acc"] for v, u in zip(selected, units) if v is not None and u["test_acc"] is not None]
            at_equal = [test_at_seconds(results[f"{d}/{s}/{seed}"], equal_seconds(results, d, seed))
                        for seed in seeds if f"{d}/{s}/{seed}" in results]
            lines.append(f"| {d} | {s} | {np.mean([u.get('train_runs', len(u['vals'])) for u in units]):.1f} | "
                         f"{_mean_std(selected)} | {_mean_std([u['test_acc'] for u in units])} | "
                         f"{_mean_std(optimism)} | {sum(u['failed'] for u in units)} | "
                         f"{np.mean([u.get('train_s', u['wall_s']) for u in units]):.0f} | {_mean_std(at_equal)} |")
    return "\n".join(lines) + (f"\n\nMean ± std over seeds {seeds} (seed s: training seed and split s, unless "
                               f"dataset.seed is given); budget {runs} training runs per strategy "
                               f"(zero_shot: 1; zero_shot_long: 1 run of all the budget's epochs)"
                               + ("; --budget seconds: the loop strategies were given zero_shot_long's training "
                                  "seconds as loop.time_budget instead (round 0 of the same epochs, then as they "
                                  "judge best, their final phase included)" if budget == "seconds" else "")
                               + ". Optimism is the "
                               "selected validation accuracy minus the final test accuracy. The last column stops every strategy at "
                               "the training seconds of zero_shot_long's one run (same dataset and seed) and tests "
                               "the incumbent it had then.\n")


def _by_seed(results: Dict[str, Dict], d: str, s: str, seeds: List[int]) -> Dict[str, List[Optional[float]]]:
    """Strategy s's final test accuracy and its test accuracy at the equal-seconds point, seed by seed."""
    units = [results.get(f"{d}/{s}/{seed}") for seed in seeds]
    return {"final": [u["test_acc"] if u else None for u in units],
            "equal_s": [test_at_seconds(u, equal_seconds(results, d, seed)) if u else None
                        for u, seed in zip(units, seeds)]}


def paired_summary(results: Dict[str, Dict], datasets: List[str], strategies: List[str], seeds: List[int],
                   half_width: float = 0.02) -> str:
    """Per dataset: each strategy's final test accuracy (mean ± std), its paired difference to zero_shot_long with
    the 95 % interval at equal training runs and at equal training seconds, where its seconds went; then iterative
    against every other strategy; and how many seeds would bring iterative - zero_shot_long to ±half_width."""
    lines = []
    for d in datasets:
        present = [s for s in strategies if any(f"{d}/{s}/{seed}" in results for seed in seeds)]
        if not present:
            continue
        task = d[:-len(BLIND)] if d.endswith(BLIND) else d
        wrong = (f" (a first pipeline can go wrong here: {TASKS[task].wrong}{'; run without a description' if task != d else ''})"
                 if task in TASKS else "")
        lines += ["", f"### {d}{wrong}", "",
                  f"| strategy | final test acc | Δ vs {REFERENCE}, equal runs | test acc at equal s | Δ vs "
                  f"{REFERENCE}, equal s | seconds: {' / '.join(k.replace('_', ' ') for k in SPENT)} |",
                  "|---|---|---|---|---|---|"]
        ref = _by_seed(results, d, REFERENCE, seeds)
        for s in present:
            mine = _by_seed(results, d, s, seeds)
            vs_final, vs_equal = paired(mine["final"], ref["final"]), paired(mine["equal_s"], ref["equal_s"])
            spent = [results[k].get("seconds") for seed in seeds if (k := f"{d}/{s}/{seed}") in results]
            spent = [x for x in spent if x]
            where = " / ".join(f"{np.mean([x.get(k, 0.0) for x in spent]):.0f}" for k in SPENT) if spent else "-"
            lost = [(x.get("reverted", 0.0) + x.get("pruned", 0.0)) / max(sum(x.values()), 1e-9) for x in spent]
            where += f" ({np.mean(lost):.0%} reverted or pruned)" if spent else ""
            lines.append(f"| {s} | {_mean_std(mine['final'])} | "
                         f"{vs_final.text() if vs_final and s != REFERENCE else '-'} | {_mean_std(mine['equal_s'])} | "
                         f"{vs_equal.text() if vs_equal and s != REFERENCE else '-'} | {where} |")
        if "iterative" in present:
            it = _by_seed(results, d, "iterative", seeds)
            others = [s for s in present if s != "iterative"]
            if others:
                lines += ["", "| iterative vs | Δ, equal runs | Δ, equal s |", "|---|---|---|"]
                for s in others:
                    other = _by_seed(results, d, s, seeds)
                    a, b = paired(it["final"], other["final"]), paired(it["equal_s"], other["equal_s"])
                    lines.append(f"| {s} | {a.text() if a else '-'} | {b.text() if b else '-'} |")
            gap = paired(it["final"], ref["final"]) if REFERENCE in present else None
            if gap is not None and gap.n >= 2:
                need = gap.seeds_for(half_width)
                lines += ["", f"iterative - {REFERENCE}: half-width {gap.half_width:.4f} over {gap.n} seeds"
                              + ("" if gap.half_width <= half_width else
                                 f"; about {need} seeds would bring it to ±{half_width}")]
    return "\n".join(lines) + ("\n\nΔ: mean paired difference over the seeds (same split and training seed), its "
                               "95% Student-t interval in brackets; * when the interval excludes 0. Equal s: every "
                               f"strategy stopped at the training seconds of {REFERENCE}'s one run and tested with the "
                               "incumbent it had then. Seconds: mean per seed, the training of kept, reverted, "
                               "pruned and failed runs, confirmation runs, the loop's own work between rounds, and "
                               "the end of run; the share of them that bought a reverted or pruned round.\n"
                               if lines else "")


def plot_paired(results: Dict[str, Dict], datasets: List[str], strategies: List[str], seeds: List[int],
                path: Path) -> Optional[Path]:
    """Each strategy's paired difference to zero_shot_long with its 95 % interval, at equal runs (circles) and at
    equal seconds (squares), one panel per dataset."""
    from improve.results.plots import plt  # the Agg backend, files only

    others = [s for s in strategies if s != REFERENCE]
    if REFERENCE not in strategies or not others:
        return None
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.5 * len(datasets), 0.5 * len(others) + 1.8), dpi=110,
                             squeeze=False)
    for ax, d in zip(axes[0], datasets):
        ref = _by_seed(results, d, REFERENCE, seeds)
        for y, s in enumerate(others):
            mine = _by_seed(results, d, s, seeds)
            for offset, key, marker in ((-0.15, "final", "o"), (0.15, "equal_s", "s")):
                iv = paired(mine[key], ref[key])
                if iv is not None:
                    ax.errorbar(iv.mean, y + offset, xerr=[[iv.mean - iv.low], [iv.high - iv.mean]], fmt=marker,
                                capsize=3, color="C0" if key == "final" else "C1",
                                label=("equal runs" if key == "final" else "equal seconds") if y == 0 else None)
        ax.axvline(0, color="grey", lw=1)
        ax.set_yticks(range(len(others)))
        ax.set_yticklabels(others)
        ax.set_title(d)
        ax.set_xlabel(f"test acc - {REFERENCE} (95% interval)")
        ax.grid(alpha=0.3, axis="x")
    axes[0][0].legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot(results: Dict[str, Dict], datasets: List[str], strategies: List[str], seeds: List[int], runs: int,
         path: Path) -> Path:
    """Best-so-far validation accuracy per run, mean with a ±std band, one panel per dataset (the paper's Fig. 2)."""
    from improve.results.plots import plt  # the Agg backend, files only

    fig, axes = plt.subplots(1, len(datasets), figsize=(5.5 * len(datasets), 4), dpi=110, squeeze=False)
    for ax, d in zip(axes[0], datasets):
        x = np.arange(1, runs + 1)
        for s in strategies:
            curves = [_best_so_far(results[k]["vals"], runs) for seed in seeds if (k := f"{d}/{s}/{seed}") in results]
            if not curves:
                continue
            mean, std = np.mean(curves, 0), np.std(curves, 0)
            ax.plot(x, mean, marker="o", label=s, ls="--" if s == "zero_shot" else "-")
            ax.fill_between(x, mean - std, mean + std, alpha=0.15)
        ax.set_title(d)
        ax.set_xticks(x)
        ax.set_xlabel("training runs")
        ax.set_ylabel("best validation accuracy so far")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def refuse_other_budget(results: Dict[str, Dict], results_file: Path, budget: str, keys: List[str]) -> None:
    """A resumed study reuses its units; a loop unit that ran under another budget would be compared as if it had
    not (a unit without `budget` predates the field and ran under `runs`)."""
    for key in keys:
        ran = results[key].get("budget", "runs") if key in results else budget
        if key.split("/")[1] in BUDGETED and ran != budget:
            raise ValueError(f"{results_file}: unit {key} ran with --budget {ran}, this study asks for --budget "
                             f"{budget}; rerun with --budget {ran} to resume it, or give another --out (or remove "
                             f"that task's units of the loop strategies from results.json) to run under {budget}")


def study(datasets: List[str], strategies: List[str], seeds: List[int], runs: int, epochs: int, out: Path,
          extra: List[str], timeout: float = 900.0, console: Optional[Console] = None,
          budget: str = "runs") -> Dict[str, Any]:
    """The study; `budget`: 'runs' (every strategy `runs` training runs) or 'seconds' (the loop strategies get
    zero_shot_long's training seconds of the same dataset and seed as loop.time_budget)."""
    console = console or Console()
    unknown = sorted(set(strategies) - set(STRATEGIES))
    if unknown:
        raise ValueError(f"strategies {unknown} unknown; choose from {STRATEGIES}")
    if budget not in BUDGETS:
        raise ValueError(f"--budget {budget!r} is not a budget; choose from {list(BUDGETS)}")
    if budget == "seconds" and REFERENCE not in strategies:
        strategies = [REFERENCE, *strategies]  # its seconds are the budget
    if ("random" in strategies or "optuna" in strategies) and "zero_shot" not in strategies:
        strategies = ["zero_shot", *strategies]  # the searches start from its base pipeline
    strategies = [s for s in STRATEGIES if s in strategies]
    out.mkdir(parents=True, exist_ok=True)
    results_file = out / "results.json"
    results = json.loads(results_file.read_text()) if results_file.is_file() else {}
    refuse_other_budget(results, results_file, budget,
                        [f"{d}/{s}/{seed}" for d in datasets for seed in seeds for s in strategies])
    cache_dir = out / "cache"
    for d in datasets:
        for seed in seeds:
            for s in strategies:
                key = f"{d}/{s}/{seed}"
                if key in results:
                    continue  # done before an interruption
                console.print(f"{key}: running", highlight=False)
                long = results.get(f"{d}/{REFERENCE}/{seed}") if budget == "seconds" else None
                zero = results.get(f"{d}/zero_shot/{seed}") or {}
                results[key] = run_unit(d, s, seed, runs, epochs, out, cache_dir, extra, timeout,
                                        long["train_s"] if long else None, zero.get("base"))
                results[key]["budget"] = budget
                best = max([v for v in results[key]["vals"] if v is not None], default=math.nan)
                console.print(f"{key}: best val {best:.4f}, test {results[key]['test_acc']}, "
                              f"{results[key]['wall_s']} s", highlight=False)
                results_file.write_text(json.dumps(results, indent=1))
    table = (summarise(results, datasets, strategies, seeds, runs, budget)
             + paired_summary(results, datasets, strategies, seeds))
    (out / "table.md").write_text(table)
    plot(results, datasets, strategies, seeds, runs, out / "strategies.png")
    plot_paired(results, datasets, strategies, seeds, out / "paired.png")
    return {"table": table, "results": results, "dir": str(out)}
