"""What a person reads after (and during) a run: report.md with the round table, its plots and the test split."""
import json
import re
from pathlib import Path
from typing import Any

from improve.config.paths import round_dir
from improve.pipeline.fill import fill_reason
from improve.refine.console import AVERAGED, ensemble_line, refit_line, spent_text
from improve.refine.console import short as _short


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def write_report(run_dir: Path, state) -> Path:
    """report.md: the run's round table and its outcome (rewritten after every round)."""
    lines = [f"# Refinement run `{run_dir.name}`", ""]
    profile = state.profile or {}
    if profile:
        lines += [f"Dataset **{profile.get('name')}**: {profile.get('train_images')} training images, "
                  f"{profile.get('num_classes')} classes, {profile.get('channels')} channel(s)."
                  + (f" Description: {profile.get('description')}" if profile.get("description") else ""), ""]
    if state.incumbent:
        inc = state.incumbent
        lines.append(f"Incumbent: round {inc['round']}, validation accuracy **{inc['val_acc']:.4f}**.")
    if state.final and state.final.get("test_acc") is not None:
        refit = (state.final.get("refit") or {}).get("status") == "ok"
        lines.append(f"Final test accuracy of the {'refit final model' if refit else 'incumbent'} (evaluated once, at "
                     f"the end): "
                     f"**{state.final['test_acc']:.4f}**, {state.final['val_acc'] - state.final['test_acc']:+.4f} "
                     f"below its selected validation accuracy"
                     + (f" (the first pipeline, round 0: {state.final['round0_test_acc']:.4f})."
                        if state.final.get("round0_test_acc") is not None else "."))
    if state.final and state.final.get("average"):
        text = ensemble_line(state.final["average"], state.final.get("single_test_acc"), AVERAGED)
        lines += ["", "Weight averaging (loop.average_top_k): " + re.sub(r"\[/?[a-z]*\]", "", text) + "."]
    if state.final and state.final.get("ensemble"):
        text = ensemble_line(state.final["ensemble"], state.final.get("single_test_acc"))
        lines += ["", "Ensemble (loop.ensemble_top_k): " + re.sub(r"\[/?[a-z]*\]", "", text) + "."]
    if state.final and state.final.get("refit"):
        text = refit_line(state.final["refit"])
        lines += ["", text[0].upper() + text[1:] + "."]
    if state.noise_floor:
        nf = state.noise_floor
        lines += ["", f"Noise floor: round 0's pipeline trained again with another seed moved validation accuracy by "
                      f"{nf['delta']:+.4f} (95% interval [{nf['delta_interval'][0]:+.4f}, "
                      f"{nf['delta_interval'][1]:+.4f}]; {nf['wins'] + nf['losses']} of {nf['n']} images changed)."]
    if state.folds >= 2:
        lines += ["", f"Scoring: {state.folds}-fold cross-validation (loop.folds): each round trained {state.folds} "
                      f"times, its validation accuracy and evidence from the pooled out-of-fold predictions of every "
                      f"train+validation image; its checkpoint is fold 0's model."]
    if state.confirmations:
        rounds = sorted({c["round"] for c in state.confirmations})
        lines += ["", f"Extra training runs (seed confirmations, noise floor): {len(state.confirmations)}, in round(s) "
                      f"{', '.join(map(str, rounds))}; they count against loop.rounds and loop.time_budget."]
    if state.decisions:
        pruned = [d for d in state.decisions.values() if d["decision"] == "pruned"]
        stopped = (f" ({len(pruned)} round(s) stopped early by loop.prune: "
                   + ", ".join(f"round {d['round']} at epoch {d['pruned']['epoch']} of {d['pruned']['epochs']}"
                               for d in pruned) + ")") if pruned else ""
        lines += ["", f"Where the seconds went: {spent_text(state.spent())}{stopped}."]
        if state.filled:  # loop.fill_below: the budget was round 0's
            lines.append(f"- round 0: {fill_reason(state.filled)}.")
    for cut in state.confirmation_cuts:
        lines.append(f"- round {cut['round']}: confirmation cut to {cut['seeds']} of {cut['wanted']} seeds "
                     f"(the budget had {cut['runs_left']} training runs left).")
    if state.recovered:
        lines += ["", "Recovered after an interruption (files a kill or a full disk left unreadable):"]
        lines += [f"- {'round ' + str(e['round']) + ': ' if e['round'] is not None else ''}{e['reason']}: "
                  f"{e['action']}" for e in state.recovered]
    if state.warm_start_skips:
        lines += ["", "Warm starts that could not happen (these rounds trained from scratch):"]
        lines += [f"- round {e['round']}: {e['reason']}" for e in state.warm_start_skips]
    rules = sorted({d.get("rule") for d in state.decisions.values() if d.get("rule")})
    if rules:
        lines += ["", f"Decision rule: {', '.join(rules)}. Δ is the candidate's validation accuracy minus the "
                      f"incumbent's, with its 95% interval and the one-sided exact McNemar p-value, both from the "
                      f"same validation images (greedy keeps any gain; paired only a significant one)."]
    lines += ["", "| round | author | group | change | rationale | val acc | Δ | decision | seconds | tokens | cost |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(state.decisions):
        d, p = state.decisions[r], state.proposals.get(r, {})
        val = f"{d['val_acc']:.4f}" if d["val_acc"] is not None else "-"
        delta = f"{d['delta']:+.4f}" if d["delta"] is not None else "-"
        if d.get("delta_interval"):
            low, high = d["delta_interval"]
            delta += f" [{low:+.3f}, {high:+.3f}], p {d['p_value']:.2f}"
        decision = d["decision"] + (f" ({_short(d['reason'], 120)})" if d.get("reason") else "")
        if d.get("candidates"):  # loop.candidates: the best of several edits of the group was judged
            vals = ", ".join(f"{c['val_acc']:.4f}" if c["val_acc"] is not None else "failed" for c in d["candidates"])
            decision += f"; best of {len(d['candidates'])} candidates ({vals})"
        lines.append(f"| {r} | {d['author']} | {d['group']} | {_cell('; '.join(d['changes'])[:300] or '-')} | "
                     f"{_cell(_short(p.get('rationale') or d.get('reason') or '', 160))} | {val} | {delta} | "
                     f"{_cell(decision)} | {d['seconds']} | {_tokens(d)} | {_cost(d)} |")
    if state.final and state.final.get("llm"):
        t = state.final["llm"]
        lines += ["", f"LLM use: {t['calls']} calls, {t['input_tokens']:,} input and {t['output_tokens']:,} output "
                      f"tokens, ${t['cost_usd']:.4f}."]
    lines += _llm_trouble(state)
    lines += _diagnoses(state)
    lines += _pictures(run_dir, state)
    path = run_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _diagnoses(state) -> list:
    """What the errors said before each round (refine/diagnoses.py), and the round that acted on each finding."""
    events = [state.diagnosed[r] for r in sorted(state.diagnosed) if state.diagnosed[r]["findings"]]
    if not events:
        return []
    lines = ["", "## What the errors said", "",
             "Before a round, the incumbent's most confused validation pairs were tested on the training images "
             "(loop.diagnose); each finding names the edit it asks for."]
    for e in events:
        for f in e["findings"]:
            acted = [r for r in sorted(state.decisions) if r >= e["round"]
                     and (state.proposals.get(r, {}).get("rationale") or "").startswith(f["rule"] + ":")]
            done = (f"; round {acted[0]} acted on it: {state.decisions[acted[0]]['decision']}" if acted else
                    "" if f.get("actionable") else "; nothing left to change")
            lines.append(f"- before round {e['round']} (errors of round {e['of_round']}): **{f['rule']}**, "
                         f"{_cell(f['edit'])} ({_cell(_short(f['evidence'], 300))}){done}")
    return lines


def _pair_rates(state) -> tuple:
    """Rows: each decided round's incumbent; columns: the pairs most confused by any of them; cells: how often the
    incumbent mistook the pair for each other, of its images."""
    rows, incumbent, table = [], None, {}
    for r in sorted(state.decisions):
        if state.decisions[r]["decision"] == "kept":
            incumbent = r
        errors = (state.decisions[incumbent]["summary"] or {}).get("errors") if incumbent is not None else None
        if errors:
            rows.append(f"after {r} (round {incumbent})")
            table[rows[-1]] = {f"{p['a']} / {p['b']}": p["rate"] for p in errors["pairs"]}
    pairs = sorted({k for v in table.values() for k in v}, key=lambda k: -max(v.get(k, 0) for v in table.values()))
    return rows, pairs[:10], table


def _pictures(run_dir: Path, state) -> list:
    """PNG files next to report.md, and the sections that show them."""
    from improve.results import plots

    lines = []
    decisions = list(state.decisions.values())
    if decisions:
        plots.rounds_plot(decisions, run_dir / "rounds.png", state.noise_floor)
        lines += ["", "## Validation accuracy per round", "", "![validation accuracy per round](rounds.png)"]
    if state.incumbent:
        r = state.incumbent["round"]
        metrics_file = round_dir(run_dir, r) / "metrics.json"
        if metrics_file.is_file() and plots.curves_plot(json.loads(metrics_file.read_text()),
                                                        f"round {r} (best)", run_dir / "curves.png"):
            lines += ["", f"## Learning curves of the best round ({r})", "", "![learning curves](curves.png)"]
    rows, pairs, table = _pair_rates(state)
    if rows and pairs:
        plots.pairs_plot(rows, pairs, [[table[r].get(p, 0.0) for p in pairs] for r in rows], run_dir / "pairs.png")
        lines += ["", "## Most confused validation pairs of the incumbent, round by round", "",
                  "![confused pairs](pairs.png)", "",
                  "Each cell: the share of the pair's validation images the incumbent mistook for the other class "
                  "(blank: not among that incumbent's five most confused pairs)."]
    predictions = run_dir / "test_predictions.json"
    if predictions.is_file():
        p = json.loads(predictions.read_text())
        classes = p["classes"]
        matrix = plots.confusion(p["y_true"], p["y_pred"], len(classes))
        plots.confusion_plot(matrix, classes, run_dir / "confusion.png")
        lines += ["", f"## Test split: accuracy {p['acc']:.4f}", "", "![confusion matrix](confusion.png)", "",
                  "| class | test images | accuracy |", "|---|---|---|"]
        for i, name in enumerate(classes):
            total = int(matrix[i].sum())
            acc = f"{matrix[i, i] / total:.4f}" if total else "-"
            lines.append(f"| {_cell(name)} | {total} | {acc} |")
    return lines


def main(argv=None) -> None:
    """python -m improve.report <run dir>: rebuild report.md and its PNGs from the run directory alone."""
    import sys

    from improve.config.command_line import wants_help
    from improve.journal.log import Journal
    from improve.refine.state import State

    args = sys.argv[1:] if argv is None else list(argv)
    wants_help(args, "usage: python -m improve.report <run dir>: rebuild report.md and its PNGs from the run directory")
    if len(args) != 1:
        raise SystemExit("usage: python -m improve.report <run dir>")
    run_dir = Path(args[0])
    journal = run_dir / "journal.jsonl"
    if not journal.is_file():
        raise SystemExit(f"{run_dir} holds no journal.jsonl: give the directory of a `python -m improve` run")
    print(write_report(run_dir, State(Journal(journal).events())))


def _tokens(decision: dict) -> str:
    llm = decision.get("llm") or {}
    if not llm.get("calls"):
        return "-"
    trouble = [f"{llm[k]} {word}" for k, word in (("failed", "failed"), ("fallbacks", "fell back")) if llm.get(k)]
    return f"{llm['input_tokens'] + llm['output_tokens']:,}" + (f" ({', '.join(trouble)})" if trouble else "")


def _llm_trouble(state) -> list:
    """A table of every LLM call that failed or whose answer the offline expert gave instead."""
    if not state.llm_trouble:
        return []
    lines = ["", "## LLM calls that failed or fell back to the offline expert", "",
             "| round | role | what happened |", "|---|---|---|"]
    for e in state.llm_trouble:
        what = (f"fell back ({e['fallback']}): {e['error']}" if e["event"] == "llm_fallback"
                else f"{e.get('error_kind') or ('refused' if e.get('permanent') else 'failed')}: {e['error']}")
        lines.append(f"| {e['round']} | {e['role']} | {_cell(_short(what, 300))} |")
    failed = (state.final or {}).get("llm_failed")
    if failed:
        lines += ["", f"**Every one of the {failed['calls']} LLM calls failed: the offline expert played every "
                      f"role.**"]
    return lines


def _cost(decision: dict) -> str:
    llm = decision.get("llm") or {}
    return f"${llm['cost_usd']:.4f}" if llm.get("calls") else "-"


if __name__ == "__main__":
    main()
