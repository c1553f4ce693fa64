"""Predict with the best model of a run; Kaggle's submission format by default.

    python -m improve.predict run=<run dir> input=<folder | csv of ids> [output=submission.csv]
                              [tta=true] [probs=true] [images=<folder>] [batch_size=64]

input: a folder (every file below it; the id is the file name without extension), or a CSV whose
first column holds ids; their images are found the way the run's dataset config says
(`dataset.image_dir`, `id_format`, `image_ext`), relative to the CSV, or in `images=<folder>`.
output: CSV `id,label` (the id column keeps the input CSV's header); `probs=true` adds one
probability column per class. Unreadable images are listed, written to <output>.errors.txt
and left out; they never stop the run.
"""
import csv
import sys
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from rich.console import Console
from rich.progress import Progress

from .cli import parse_args
from .inference import Predictor
from .sources import image_file_name

TRUE = ("1", "true", "yes", "on")


def list_inputs(source: Path, predictor: Predictor, images: Optional[Path]) -> Tuple[str, List[Tuple[str, str]]]:
    """(id column name, [(id, image path)]) for a folder or a CSV of ids."""
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.is_file())
        return "id", [(p.stem, str(p)) for p in files]
    if not source.is_file():
        raise FileNotFoundError(f"input={source} is neither a folder of images nor a CSV file of ids")
    ds = predictor.cfg.dataset
    folder = images or source.parent / (ds.get("image_dir") or "images")
    with open(source, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if not header:
            raise ValueError(f"input={source} is empty; expected a CSV whose first column holds image ids")
        rows = [row[0] for row in reader if row]
    return header[0], [(image_id, str(folder / image_file_name(ds, image_id))) for image_id in rows]


def predict(run: Path, source: Path, output: Path, tta: bool = False, probs: bool = False,
            images: Optional[Path] = None, batch_size: int = 64, console: Optional[Console] = None) -> dict:
    console = console or Console(stderr=True)
    predictor = Predictor.from_run(run)
    id_column, pairs = list_inputs(source, predictor, images)
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("predicting", total=len(pairs))
        scores, bad = predictor.predict_files([p for _, p in pairs], batch_size, tta,
                                              progress=lambda n: bar.advance(task, n))
    classes = predictor.class_names
    with open(output, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([id_column, "label"] + ([f"p_{c}" for c in classes] if probs else []))
        for image_id, path in pairs:
            if path in scores:
                p = scores[path]
                writer.writerow([image_id, classes[int(p.argmax())]] + ([f"{v:.6f}" for v in p] if probs else []))
    errors = output.with_name(output.name + ".errors.txt")
    if bad:
        errors.write_text("\n".join(bad) + "\n")
        console.print(f"[yellow]{len(bad)} unreadable image(s) left out (listed in {errors}):[/]\n  "
                      + "\n  ".join(bad), highlight=False, soft_wrap=True)
    console.print(f"{len(scores)} prediction(s) -> {output}", highlight=False, soft_wrap=True)
    return {"predicted": len(scores), "unreadable": bad, "output": str(output)}


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv,
                      ["run", "input", "output", "tta", "probs", "images", "batch_size"])
    if "run" not in args or "input" not in args:
        raise SystemExit(__doc__)
    try:
        predict(Path(args["run"]), Path(args["input"]), Path(args.get("output", "submission.csv")),
                tta=args.get("tta", "false").lower() in TRUE, probs=args.get("probs", "false").lower() in TRUE,
                images=Path(args["images"]) if args.get("images") else None,
                batch_size=int(args.get("batch_size", 64)))
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f"predict failed: {err}") from None


if __name__ == "__main__":
    main()
