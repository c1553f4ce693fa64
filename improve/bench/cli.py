"""Benchmarks that print numbers: `python -m improve.bench {speed,strategies,candidates,levers,flip,llm} [options]`.

strategies  equal-budget comparison of zero_shot(_long), iterative, all_at_once, random and optuna, at equal
            training runs and at equal training seconds (strategies.py): markdown table, best-so-far
            plot, raw JSON; resumable.
candidates  K candidates a round against one, at equal wall-clock time (candidates.py).
llm         a run's LLM calls summarised per role (llm.py).
levers      the offline expert with EMA, TTA, RandAugment and an ensemble against without them
            (levers.py).

speed       the framework's and the loop's share of a training run's cost, the dataset cache (speed.py).
flip        the orientation task with and without a horizontal flip, which changes the label (speed.py).
validation  one edit checked in its bounded child process against the same checks in the loop's process
            (validation.py).
"""
import argparse
import json
import shutil
import tempfile
from pathlib import Path

from improve.bench.llm import format_summary, llm_summary
from improve.bench.speed import bench_cache, bench_flip, bench_loop_work, bench_round, bench_throughput
from improve.bench.strategies import BUDGETS, DEFAULT_STRATEGIES, STRATEGIES, SUITES, Suite, study
from improve.bench.tasks import TASKS


def build_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m improve.bench", description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", type=Path, help="also write the results to this JSON file")
    sub = parser.add_subparsers(dest="command", required=True)
    speed = sub.add_parser("speed", parents=[common], help="training vs raw model images/s; cache load times")
    speed.add_argument("--cache-images", type=int, default=10_000, help="images written for the cache benchmark")
    speed.add_argument("--cache-size", type=int, default=32, help="image size of the cache benchmark")
    speed.add_argument("--repeats", type=int, default=5,
                       help="training runs whose images/s ratio is measured; the median is reported")
    speed.add_argument("--round-epochs", type=int, default=40,
                       help="epochs of the round whose overhead is measured (40 = about a minute of digits here)")
    speed.add_argument("overrides", nargs="*", default=["trainer.epochs=5"],
                       help="train.yaml overrides for the throughput run (default: digits, default pipeline)")
    strat = sub.add_parser("strategies", parents=[common],
                           help="equal-budget study: zero_shot(_long), iterative (greedy, paired, confirm), "
                                "all_at_once, random, optuna")
    strat.add_argument("--suite", choices=sorted(SUITES),
                       help="a named study of the generated task kinds (bench/tasks.py): quick (about 11 minutes on "
                            "a 2-core CPU) or full (6-10 hours; rerun with the same --out to resume); sets the "
                            "defaults of the options below")
    strat.add_argument("--datasets", help="comma-separated dataset configs or suite tasks "
                                          f"({','.join(TASKS)}); default: digits,shapes,shapes_hard")
    strat.add_argument("--seeds", type=int, help="seeds 0..S-1 (default 3)")
    strat.add_argument("--runs", type=int, help="training runs per strategy (zero_shot: 1; default 8)")
    strat.add_argument("--epochs", type=int, help="epochs of every training run (default 3)")
    strat.add_argument("--budget", choices=BUDGETS,
                       help="runs: every strategy gets --runs training runs; seconds: the loop strategies get "
                            "zero_shot_long's training seconds (same dataset and seed) as loop.time_budget and "
                            "spend them as they judge best (default: the suite's, seconds; without --suite: runs)")
    strat.add_argument("--strategies", help=f"comma-separated, from {','.join(STRATEGIES)} (default: "
                                            f"{','.join(DEFAULT_STRATEGIES)})")
    strat.add_argument("--out", type=Path, default=Path("outputs/bench/strategies"),
                       help="results, table and plot; rerun with the same --out to resume")
    strat.add_argument("overrides", nargs="*", default=[],
                       help="config.yaml overrides for every run (e.g. llm=anthropic, dataset.max_train=500)")
    cand = sub.add_parser("candidates", parents=[common],
                          help="K candidates a round (one thread each) vs one (all threads) at equal wall-clock time")
    cand.add_argument("--dataset", default="shapes_hard", help="dataset config")
    cand.add_argument("--ks", default="1,2", help="comma-separated candidates per round")
    cand.add_argument("--seeds", type=int, default=2, help="seeds 0..S-1")
    cand.add_argument("--minutes", type=int, default=4, help="wall-clock minutes per loop")
    cand.add_argument("--epochs", type=int, default=3, help="loop.max_epochs: most epochs of one round")
    cand.add_argument("--out", type=Path, default=Path("outputs/bench/candidates"), help="results and table")
    cand.add_argument("overrides", nargs="*", default=[], help="config.yaml overrides for every loop")
    flip = sub.add_parser("flip", parents=[common], help="shapes orientation task with and without a horizontal flip")
    flip.add_argument("overrides", nargs="*", default=[], help="train.yaml overrides for both runs")
    val = sub.add_parser("validation", parents=[common],
                         help="seconds of one edit's validation in its bounded child vs in the loop's process")
    val.add_argument("--repeats", type=int, default=10, help="times each of three edits is checked each way")
    val.add_argument("overrides", nargs="*", default=[], help="config.yaml overrides (the pipeline the edits change)")
    llm = sub.add_parser("llm", parents=[common], help="how the LLM did in finished runs: seconds, tokens/s, validity")
    llm.add_argument("runs", nargs="+", type=Path, help="run directories of python -m improve")
    lev = sub.add_parser("levers", parents=[common],
                         help="the offline expert with EMA, TTA, RandAugment and an ensemble against without them")
    lev.add_argument("--dataset", default="shapes_hard", help="dataset config")
    lev.add_argument("--seeds", type=int, default=3, help="seeds 0..S-1")
    lev.add_argument("--runs", type=int, default=8, help="training runs per loop")
    lev.add_argument("--epochs", type=int, default=3, help="loop.max_epochs: most epochs of one run")
    lev.add_argument("--out", type=Path, default=Path("outputs/bench/levers"), help="results and table")
    lev.add_argument("overrides", nargs="*", default=[], help="config.yaml overrides for every loop")
    return parser


def main(argv=None) -> None:
    args = build_parser(__doc__).parse_args(argv)
    if args.command == "llm":
        results = {str(run): llm_summary(run) for run in args.runs}
        print("\n".join(line for run, s in results.items() for line in format_summary(run, s)))
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))
        return

    import logging

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    if args.command == "strategies":
        suite = SUITES[args.suite] if args.suite else Suite(["digits", "shapes", "shapes_hard"], 3, 8, 3,
                                                            DEFAULT_STRATEGIES)
        results = study(args.datasets.split(",") if args.datasets else suite.datasets,
                        args.strategies.split(",") if args.strategies else suite.strategies,
                        list(range(args.seeds if args.seeds is not None else suite.seeds)),
                        args.runs or suite.runs, args.epochs or suite.epochs, args.out, args.overrides,
                        budget=args.budget or suite.budget)
        print("\n" + results["table"])
        print(f"table, plots and raw results in {args.out}/ (table.md, strategies.png, paired.png, results.json)")
        if args.json:
            args.json.write_text(json.dumps(results["results"], indent=1))
        return
    if args.command == "validation":
        from improve.bench.validation import bench_validation

        r = bench_validation(args.repeats, args.overrides)
        print(f"validation of one edit ({r['model']} at {r['image_size']} px, median of {r['checks']}): in the "
              f"loop's process {r['in_process_s']:.3f} s, in its bounded child {r['bounded_s']:.3f} s "
              f"(+{r['overhead_s']:.3f} s for the child)")
        if args.json:
            args.json.write_text(json.dumps(r, indent=1))
        return
    if args.command == "levers":
        from rich.console import Console

        from improve.bench.levers import bench_levers

        results = bench_levers(args.dataset, list(range(args.seeds)), args.runs, args.epochs, args.out,
                               args.overrides, Console())
        print("\n" + results["table"])
        return
    if args.command == "candidates":
        from rich.console import Console

        from improve.bench.candidates import bench_candidates

        results = bench_candidates(args.dataset, [int(k) for k in args.ks.split(",")], list(range(args.seeds)),
                                   args.minutes, args.epochs, args.out, args.overrides, Console())
        print("\n" + results["table"])
        if args.json:
            args.json.write_text(json.dumps(results["results"], indent=1))
        return
    work = Path(tempfile.mkdtemp(prefix="improve-bench-"))
    try:
        if args.command == "speed":
            results = {"throughput": bench_throughput(args.overrides, work, args.repeats),
                       "cache": bench_cache(args.cache_images, args.cache_size, work),
                       "round": bench_round(args.round_epochs, work), "loop": bench_loop_work(work)}
            tp, c, rd, lp = results["throughput"], results["cache"], results["round"], results["loop"]
            print(f"\ntraining {tp['train_images_per_s']} img/s / raw model {tp['raw_images_per_s']} img/s "
                  f"= ratio {tp['ratio']:.3f} (target >= 0.85; {tp['model']}, batch {tp['batch_size']}, "
                  f"{tp['image_size']} px, {tp['threads']} threads; median of the ratios {tp['ratios']}, each "
                  f"against the raw speed just before and after its run: {tp['raw_series']} img/s)")
            print(f"cache, {c['images']} images at {c['image_size']} px: first load {c['first_load_s']:.2f} s, "
                  f"cached load {c['cached_load_s']:.3f} s (target <= 1 s)")
            print(f"round of {rd['round_s']:.1f} s ({rd['epochs']} epochs): training {rd['training_s']:.1f} s; overhead "
                  f"{rd['overhead_s']:.1f} s = {rd['overhead_share']:.1%} (target <= 10%): process start to first "
                  f"batch {rd['startup_s']:.1f} s, validation {rd['validation_s']:.1f} s, checkpoints and fit setup "
                  f"{rd['checkpoints_and_fit_setup_s']:.1f} s, results and exit {rd['results_and_exit_s']:.1f} s; "
                  f"once per run, round 0 also waits {rd['first_round_start_s']:.1f} s for the forkserver's imports")
            lp["share_of_round"] = round(lp["loop_work_per_round_s"] / rd["round_s"], 4)
            print(f"the loop's own work per round (agent, validation, pre-flight): {lp['loop_work_per_round_s']} s "
                  f"= {lp['share_of_round']:.1%} of that round (mean of {lp['rounds']} rounds, offline expert)")
        else:
            results = bench_flip(args.overrides, work)
            print(f"\nshapes orientation, test accuracy: no flip {results['no_flip']['test_acc']:.3f}, "
                  f"horizontal flip {results['hflip']['test_acc']:.3f}")
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)
