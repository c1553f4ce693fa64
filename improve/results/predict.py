"""Predict with the best model of a run, in the competition's submission format.

    python -m improve.predict run=<run dir> input=<sample_submission.csv | csv of ids | folder> [output=submission.csv]
                              [tta=true] [probs=true] [images=<folder>] [batch_size=64] [missing=fail|fill]

input: the competition's sample submission (or any CSV whose first column holds the ids): the
output keeps its header, its ids and their order, and writes each label in the competition's
encoding (`dataset.submission_labels`: the class name, or its integer index in the class order).
The images of its ids are looked up in `images=<folder>`, else in `dataset.test_image_dir` (or
`dataset.image_dir`) next to the CSV or under the run's `dataset.path`, named by
`dataset.id_format` and `dataset.image_ext`. A folder input predicts every image file below it,
under the header `dataset.submission_columns`. `probs=true` adds one probability column per class.
A missing or unreadable image fails the command (exit code 1, the files named in
<output>.errors.txt and no output written), as a submission without those rows would be rejected;
`missing=fill` writes them anyway with the sample submission's own label for that row (or the
first class) and says how many.
"""
import csv
import sys
from pathlib import Path
from typing import List, Optional, Sequence

from rich.console import Console
from rich.progress import Progress

from improve.config.command_line import parse_args
from improve.data.inputs import list_inputs
from improve.pipeline.inference import Predictor

TRUE = ("1", "true", "yes", "on")


MISSING_POLICIES = ("fail", "fill")


class IncompleteSubmission(RuntimeError):
    """Some test images are missing or unreadable: a submission without their rows would be rejected."""


def encode(index: int, classes: List[str], labels: str) -> str:
    """A class as the submission writes it: its name, or its integer index in the class order."""
    return str(index) if labels == "index" else classes[index]


def predict(run: Path, source: Path, output: Path, tta: bool = False, probs: bool = False,
            images: Optional[Path] = None, batch_size: int = 64, console: Optional[Console] = None,
            missing: str = "fail") -> dict:
    if missing not in MISSING_POLICIES:
        raise ValueError(f"missing={missing!r} is not a policy; use one of {list(MISSING_POLICIES)}")
    console = console or Console(stderr=True)
    predictor = Predictor.from_run(run)
    ds = predictor.cfg.dataset
    inputs = list_inputs(source, ds, images)
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("predicting", total=len(inputs.rows))
        scores, bad = predictor.predict_files([p for _, p in inputs.rows], batch_size, tta,
                                              progress=lambda n: bar.advance(task, n))
    errors = output.with_name(output.name + ".errors.txt")
    if bad:
        errors.write_text("\n".join(bad) + "\n")
        listing = "\n  ".join(bad[:20]) + (f"\n  ... and {len(bad) - 20} more" if len(bad) > 20 else "")
        if missing == "fail":
            raise IncompleteSubmission(
                f"{len(bad)} test image(s) missing or unreadable (all listed in {errors}):\n  {listing}\nA submission "
                f"without their rows would be rejected, so none was written. Put the images there, pass "
                f"images=<folder>, or add missing=fill to write them with the sample submission's label")
        console.print(f"[yellow]missing=fill: {len(bad)} missing or unreadable test image(s) written with the sample "
                      f"submission's label (or the first class), listed in {errors}:[/]\n  {listing}",
                      highlight=False, soft_wrap=True)
    classes, labels = predictor.class_names, ds.get("submission_labels") or "name"
    fallback = encode(0, classes, labels)
    with open(output, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(inputs.header[:2] + ([f"p_{c}" for c in classes] if probs else []))
        for image_id, path in inputs.rows:
            if path in scores:
                p = scores[path]
                writer.writerow([image_id, encode(int(p.argmax()), classes, labels)]
                                + ([f"{v:.6f}" for v in p] if probs else []))
            else:
                writer.writerow([image_id, inputs.placeholders.get(image_id, fallback)]
                                + ([""] * len(classes) if probs else []))
    console.print(f"{len(scores)} prediction(s) -> {output}", highlight=False, soft_wrap=True)
    return {"predicted": len(scores), "unreadable": bad, "filled": len(bad), "output": str(output)}


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv,
                      ["run", "input", "output", "tta", "probs", "images", "batch_size", "missing"], __doc__)
    if "run" not in args or "input" not in args:
        raise SystemExit(__doc__)
    try:
        predict(Path(args["run"]), Path(args["input"]), Path(args.get("output", "submission.csv")),
                tta=args.get("tta", "false").lower() in TRUE, probs=args.get("probs", "false").lower() in TRUE,
                images=Path(args["images"]) if args.get("images") else None,
                batch_size=int(args.get("batch_size", 64)), missing=args.get("missing", "fail"))
    except (FileNotFoundError, ValueError, IncompleteSubmission) as err:
        raise SystemExit(f"predict failed: {err}") from None


if __name__ == "__main__":
    main()
