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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from rich.console import Console
from rich.progress import Progress

from .cli import parse_args
from .inference import Predictor
from .paths import project_path
from .sources import image_file_name

TRUE = ("1", "true", "yes", "on")
MISSING_POLICIES = ("fail", "fill")


class IncompleteSubmission(RuntimeError):
    """Some test images are missing or unreadable: a submission without their rows would be rejected."""


@dataclass
class Inputs:
    """What to predict and how the submission looks."""

    header: List[str]  # the submission's header: id column, label column (and any further columns of the sample)
    rows: List[Tuple[str, str]]  # (id, image path), in the submission's order
    placeholders: Dict[str, str] = field(default_factory=dict)  # id -> the sample submission's own label


def _image_folder(source: Path, ds, images: Optional[Path]) -> Path:
    if images is not None:
        return images
    sub = ds.get("test_image_dir") or ds.get("image_dir") or "images"
    tried = [source.parent / sub] + ([project_path(ds.path) / sub] if ds.get("path") else [])
    for folder in tried:
        if folder.is_dir():
            return folder
    raise FileNotFoundError(f"no folder of test images for input={source}: looked for {' and '.join(map(str, tried))} "
                            f"(dataset.test_image_dir={sub!r}); pass images=<folder> to say where they are")


def list_inputs(source: Path, ds, images: Optional[Path]) -> Inputs:
    """The ids and image files of a sample-submission CSV or of a folder of images."""
    columns = list(ds.get("submission_columns") or ["id", "label"])
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.is_file() and not p.name.startswith("."))
        # a CSV dataset whose ids are whole file names (no dataset.image_ext, e.g. cassava) keeps them; else the stem
        whole = ds.get("source") == "csv" and not ds.get("image_ext")
        return Inputs(columns, [(p.name if whole else p.stem, str(p)) for p in files])
    if not source.is_file():
        raise FileNotFoundError(f"input={source} is neither a folder of images nor a CSV file of ids")
    with open(source, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if not header:
            raise ValueError(f"input={source} is empty; expected a CSV whose first column holds image ids")
        table = [row for row in reader if row]
    header = header if len(header) >= 2 else [header[0], columns[1]]
    folder = _image_folder(source, ds, images)
    return Inputs(header, [(row[0], str(folder / image_file_name(ds, row[0]))) for row in table],
                  {row[0]: row[1] for row in table if len(row) >= 2})


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
                      ["run", "input", "output", "tta", "probs", "images", "batch_size", "missing"])
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
