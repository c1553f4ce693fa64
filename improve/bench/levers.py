"""`python -m improve.bench levers`: the offline expert with the competition levers against without them.

Both arms run the refinement loop (iterative, greedy) on the same dataset, seeds and budget of training runs.
With levers, the expert may reach for EMA of the weights, test-time augmentation and RandAugment, and the run
ends with a greedy soup of its warm-started rounds (`loop.average_top_k`, on by default) and
`loop.ensemble_top_k=3`; without, it may not (`HeuristicAgent(levers=False)`, `loop.average_top_k=0`) and keeps
the best round alone. Every other rule of the expert is the same. Final test accuracy, mean ± std over seeds.
"""
import json
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
from rich.console import Console

from improve.agents import HeuristicAgent
from improve.bench.strategies import _loop_cfg, drop_checkpoints, run_loop
from improve.journal.log import Journal

ARMS = {"with levers": (True, ["loop.ensemble_top_k=3"]), "without levers": (False, ["loop.average_top_k=0"])}


def bench_levers(dataset: str, seeds: List[int], runs: int, epochs: int, out: Path, extra: List[str],
                 console: Console) -> Dict[str, Any]:
    """Run both arms for every seed (resumable through results.json) and tabulate."""
    out.mkdir(parents=True, exist_ok=True)
    results_file = out / "results.json"
    results = json.loads(results_file.read_text()) if results_file.is_file() else {}
    for seed in seeds:
        for arm, (levers, settings) in ARMS.items():
            key = f"{arm}/{seed}"
            if key in results:
                continue
            unit = out / ("with" if levers else "without") / f"seed{seed}"
            cfg = _loop_cfg(dataset, seed, epochs, unit, out / "cache", ["llm=heuristic", *settings, *extra])
            console.print(f"{key}: running", highlight=False)
            results[key] = run_loop(cfg, unit, "iterative", runs, agent=HeuristicAgent(levers=levers))
            ensemble = next((e for e in Journal(unit / "journal.jsonl").events() if e["event"] == "ensemble"), None)
            results[key]["ensemble"] = ensemble and ensemble["decision"]
            drop_checkpoints(unit)
            console.print(f"{key}: test {results[key]['test_acc']}", highlight=False)
            results_file.write_text(json.dumps(results, indent=1))
    lines = ["| arm | final test acc | selected val acc | training runs | training s | ensembles kept |",
             "|---|---|---|---|---|---|"]
    for arm in ARMS:
        units = [results[f"{arm}/{s}"] for s in seeds if f"{arm}/{s}" in results]
        tests, vals = [u["test_acc"] for u in units], [u["selected_val"] for u in units]
        lines.append(f"| {arm} | {np.mean(tests):.4f} ± {np.std(tests):.4f} | {np.mean(vals):.4f} ± "
                     f"{np.std(vals):.4f} | {np.mean([u['train_runs'] for u in units]):.1f} | "
                     f"{np.mean([u['train_s'] for u in units]):.0f} | "
                     f"{sum(u.get('ensemble') == 'kept' for u in units)} of {len(units)} |")
    table = "\n".join(lines) + (f"\n\n{dataset}, offline expert, {runs} training runs of at most {epochs} epochs per "
                                f"loop; mean ± std over seeds {seeds}.\n")
    (out / "table.md").write_text(table)
    return {"table": table, "results": results}
