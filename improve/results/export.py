"""Export the best model of a run: TorchScript, ONNX (optional extra `onnx`), model.json, recipe.yaml.

    python -m improve.export run=<run dir> [format=torchscript,onnx]

Written into <run>/best/ (a training run's files go to <run>/export/):
  model.pt      TorchScript: float32 N,C,H,W pixels in 0..255 -> logits (normalisation inside)
  model.onnx    the same graph in ONNX, batch dimension dynamic (needs `pip install -e '.[onnx]'`)
  model.json    what inference needs: class names, image size, channels, mean/std, input layout
  recipe.yaml   the pipeline as a recipe: copy it to recipes/ and `python -m improve.train recipe=<name>`
"""
import json
import sys
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch
import yaml
from omegaconf import OmegaConf

from improve.config.command_line import parse_args
from improve.config.schema import EDITABLE_GROUPS
from improve.pipeline.inference import EnsemblePredictor, Predictor


def available_formats() -> List[str]:
    try:
        import onnx  # noqa: F401
    except ImportError:
        return ["torchscript"]
    return ["torchscript", "onnx"]


def export(run_dir: Path, formats: Optional[Sequence[str]] = None) -> Dict[str, Path]:
    """Write the requested formats (default: every available one) and model.json, recipe.yaml."""
    run_dir = Path(run_dir)
    predictor = Predictor.from_run(run_dir)
    out = run_dir / "best" if (run_dir / "best").is_dir() else run_dir / "export"
    out.mkdir(exist_ok=True)
    formats = list(formats or available_formats())
    unknown = sorted(set(formats) - {"torchscript", "onnx"})
    if unknown:
        raise ValueError(f"format={','.join(formats)}: unknown {unknown}; use torchscript and/or onnx")
    model = predictor.model.eval()
    example = torch.zeros(2, predictor.channels, predictor.size, predictor.size)
    written: Dict[str, Path] = {}
    if "torchscript" in formats:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated upstream, still the portable format
            traced = torch.jit.trace(model, example)
        traced.save(str(out / "model.pt"))
        written["torchscript"] = out / "model.pt"
    if "onnx" in formats:
        if "onnx" not in available_formats():
            raise ImportError("format=onnx needs the onnx package: pip install -e '.[onnx]'")
        with warnings.catch_warnings():  # the TorchScript-based exporter: no onnxscript needed
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (example,), str(out / "model.onnx"), dynamo=False, input_names=["images"],
                              output_names=["logits"], dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}})
        written["onnx"] = out / "model.onnx"
    cfg = predictor.cfg
    info = {"class_names": predictor.class_names, "image_size": predictor.size, "channels": predictor.channels,
            "mean": [round(float(v) / 255, 6) for v in predictor.classifier.mean.flatten()],
            "std": [round(float(v) / 255, 6) for v in predictor.classifier.std.flatten()],
            "input": "float32 N,C,H,W pixel values 0..255 (normalisation is inside the model), after resizing the "
                     "shorter side to image_size and centre-cropping a square",
            "output": "logits N,num_classes (softmax for probabilities)", "model": cfg.model.name,
            "files": {k: v.name for k, v in written.items()}}
    if isinstance(predictor, EnsemblePredictor):  # recipe.yaml below is its best member's
        info["ensemble"] = [m.cfg.model.name for m in predictor.members]
        info["output"] = "log of the members' averaged class probabilities N,num_classes (softmax gives them back)"
    (out / "model.json").write_text(json.dumps(info, indent=1))
    recipe = {g: OmegaConf.to_container(cfg[g], resolve=True) for g in EDITABLE_GROUPS}
    (out / "recipe.yaml").write_text(
        "# @package _global_\n# The best pipeline of run " + str(run_dir.name) + ". Copy it into recipes/ and train it:\n"
        "#   cp recipe.yaml <project>/recipes/my_best.yaml && python -m improve.train recipe=my_best\n"
        + yaml.safe_dump({"recipe": f"best_of_{run_dir.name}", **recipe}, sort_keys=False))
    written["json"], written["recipe"] = out / "model.json", out / "recipe.yaml"
    return written


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv, ["run", "format"], __doc__)
    if "run" not in args:
        raise SystemExit("usage: python -m improve.export run=<run dir> [format=torchscript,onnx]")
    try:
        written = export(Path(args["run"]), args["format"].split(",") if args.get("format") else None)
    except (FileNotFoundError, ValueError, ImportError) as err:
        raise SystemExit(f"export failed: {err}") from None
    for kind, path in written.items():
        print(f"{kind:12} {path}")


if __name__ == "__main__":
    main()
