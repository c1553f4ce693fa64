"""The command line of `python -m improve.bench`: one subcommand per benchmark, each with its options."""
import argparse
from pathlib import Path

from .strategies import DEFAULT_STRATEGIES, STRATEGIES


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
    strat.add_argument("--datasets", default="digits,shapes,shapes_hard", help="comma-separated dataset configs")
    strat.add_argument("--seeds", type=int, default=3, help="seeds 0..S-1")
    strat.add_argument("--runs", type=int, default=8, help="training runs per strategy (zero_shot: 1)")
    strat.add_argument("--epochs", type=int, default=3, help="epochs of every training run")
    strat.add_argument("--strategies", default=",".join(DEFAULT_STRATEGIES),
                       help=f"comma-separated, from {','.join(STRATEGIES)}")
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
