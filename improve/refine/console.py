"""What a person sees while a refinement run goes: one line per round and one per event worth knowing."""
from pathlib import Path
from typing import Any, Dict, Optional

STYLE = {"kept": "green", "reverted": "yellow", "pruned": "yellow", "failed": "red", "invalid": "red", "skipped": "red"}


def short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


USUAL_AUTHORS = ("architect", "engineer", "engineers")  # anyone else is named on the round line


def evidence_text(evidence) -> str:
    """'±0.0123 p 0.31': half the 95% interval of the paired difference, and its one-sided p-value."""
    if evidence is None:
        return " " * 15
    low, high = evidence.interval
    return f"±{(high - low) / 2:.4f} p {evidence.p_value:.2f}"


def change_text(changes, metrics: Optional[Dict[str, Any]] = None) -> str:
    """A round's changes as one phrase, with the learning rate trainer.lr_find chose when it ran."""
    text = ", ".join(changes) or "-"
    found = (metrics or {}).get("lr_find")
    if found:
        text += f", lr_find chose lr {found['lr']:.3g}" if found["found"] else ", lr_find found no lr (kept)"
    return text


def console_line(r: int, group: str, change: str, val: Optional[float], delta: Optional[float], decision: str,
                 seconds: float, reason: Optional[str] = None, llm: Optional[dict] = None,
                 author: Optional[str] = None, evidence=None) -> str:
    val_s = f"{val:.4f}" if val is not None else "  -   "
    delta_s = f"{delta:+.4f}" if delta is not None else "   -   "
    line = (f"round {r:>2}  {group:<22} {short(change, 48):<48} val {val_s}  Δ {delta_s} {evidence_text(evidence)}  "
            f"[{STYLE.get(decision.split(' ')[0], 'white')}]{decision:<8}[/] {seconds:6.1f} s")
    if llm and llm.get("calls"):
        line += f"  {llm['input_tokens'] + llm['output_tokens']:,} tok ${llm['cost_usd']:.4f}"
        trouble = [f"{llm[k]} {word}" for k, word in (("failed", "failed calls"), ("fallbacks", "fallbacks"))
                   if llm.get(k)]
        if trouble:
            line += f"  [yellow]{', '.join(trouble)}[/]"
    if author and author not in USUAL_AUTHORS:
        line += f"  by {author}"
    if reason and decision.split(" ")[0] in ("failed", "invalid", "pruned"):
        line += f"\n          {short(reason, 200)}"
    return line


def spent_text(spent: Dict[str, float]) -> str:
    """'kept 120 s, reverted 40 s, pruned 9 s, ...; 28% on rounds reverted or pruned': where a run's seconds went."""
    parts = ", ".join(f"{k.replace('_', ' ')} {v:.0f} s" for k, v in spent.items())
    lost = (spent.get("reverted", 0.0) + spent.get("pruned", 0.0)) / max(sum(spent.values()), 1e-9)
    return f"{parts}; {lost:.0%} on rounds reverted or pruned"


AVERAGED = "averaged weights"  # what ensemble_line calls loop.average_top_k's model


def refit_line(refit: Dict[str, Any]) -> str:
    """What the console and report.md say of the refit (the `end` event's `refit`)."""
    if refit["status"] == "ok":
        return (f"refit (loop.refit): the final pipeline retrained from scratch on {refit.get('train_images')} "
                f"training + validation images for {refit['epochs']} epochs in {refit['seconds']:.0f} s is the final "
                f"model: test acc {refit['test_acc']:.4f} (the model validation selected: "
                f"{refit['selected_test_acc']:.4f}); validation has seen its images and cannot judge it")
    return f"refit (loop.refit) {refit['status']}: {refit.get('error')}; the model validation selected is the final one"


def ensemble_line(e: Dict[str, Any], single_test_acc: Optional[float] = None, what: str = "ensemble") -> str:
    """One line on an end-of-run combination of rounds (`what`: the ensemble, or the averaged weights): kept (then
    the test accuracy above is its), not kept, or skipped."""
    if e["decision"] == "skipped":
        return f"{what} skipped: {e['reason']}"
    rounds = ", ".join(map(str, e["members"]))
    if len(e.get("tried", e["members"])) > len(e["members"]):  # a greedy soup left some ingredients out
        rounds += f" (tried {', '.join(map(str, e['tried']))})"
    if e.get("stopped"):  # a try failed part-way: the soup made before it was judged
        rounds += f"; stopped early: {e['stopped']}"
    low, high = e["delta_interval"]
    text = (f"{what} of rounds {rounds}: val {e['val_acc']:.4f} vs {e['single_val_acc']:.4f} alone "
            f"(Δ {e['delta']:+.4f} [{low:+.4f}, {high:+.4f}], p {e['p_value']:.2f}, {e['rule']})")
    if e["decision"] == "kept":
        return text + f": [green]kept[/], the test accuracy above is the {what}'s (round alone {single_test_acc})"
    return text + (": [yellow]not kept[/], the best round alone is the final model" if what == "ensemble"
                   else ": [yellow]not kept[/], the incumbent's own weights stay")


class LoopConsole:
    """The refinement loop's printer, over a rich Console (a StringIO one in tests and benchmarks)."""

    def __init__(self, console=None):
        from rich.console import Console

        self.console = console or Console(soft_wrap=True)

    def say(self, text: str, style: Optional[str] = None) -> None:
        self.console.print(text, style=style, highlight=False)

    def rejected(self, r: int, what: str, kind: str, error: str) -> None:
        self.say(f"round {r}: {what} rejected ({kind}): {error}", "red")

    def round(self, r: int, group: str, change: str, val: Optional[float], delta: Optional[float], decision: str,
              seconds: float, reason: Optional[str] = None, llm: Optional[dict] = None,
              author: Optional[str] = None, evidence=None) -> None:
        self.say(console_line(r, group, change, val, delta, decision, seconds, reason, llm, author, evidence))

    def final(self, result: Dict[str, Any], best_dir: Path, min_accuracy: float) -> None:
        if result["incumbent_round"] is None:
            self.say("no round succeeded: nothing to evaluate", "red")
            return
        self.say(f"[bold green]best: round {result['incumbent_round']}, val acc {result['val_acc']:.4f}, test acc "
                 f"{result['test_acc']:.4f}[/] (validation-to-test gap {result['val_acc'] - result['test_acc']:+.4f}; "
                 f"{result['rounds']} rounds; round 0 test acc {result['round0_test_acc']}) -> {best_dir}")
        if result.get("seconds"):
            self.say(f"seconds: {spent_text(result['seconds'])}")
        if result.get("average"):
            self.say(ensemble_line(result["average"], result.get("single_test_acc"), AVERAGED))
        if result.get("ensemble"):
            self.say(ensemble_line(result["ensemble"], result.get("single_test_acc")))
        if result.get("refit"):
            self.say(refit_line(result["refit"]), "green" if result["refit"]["status"] == "ok" else "yellow")
        if result.get("llm"):
            t = result["llm"]
            self.say(f"LLM: {t['calls']} calls, {t['input_tokens']:,} input + {t['output_tokens']:,} output tokens, "
                     f"${t['cost_usd']:.4f}")
        if result.get("min_accuracy_met") is False:
            self.say(f"constraints.min_accuracy={min_accuracy} not met", "red")

    def llm_failed(self, failed: Dict[str, Any], fallback: str) -> None:
        """Every LLM call of the run failed: said loudly (exit 3 follows unless llm.fallback=heuristic)."""
        text = (f"every one of the {failed['calls']} LLM calls failed at the API, so the offline expert played every role "
                f"(last error: {failed['last_error']})")
        if fallback == "heuristic":
            self.say(f"[bold yellow]warning: {text}. llm.fallback=heuristic accepts that.[/]")
        else:
            self.say(f"[bold red]{text}. Fix the cause above, or choose llm=heuristic (or llm.fallback=heuristic) "
                     f"to run on the offline expert knowingly; exiting with code 3.[/]")
