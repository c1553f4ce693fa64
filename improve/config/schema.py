"""Typed schema of every config group: the one source of truth.

Hydra merges each group's YAML onto these dataclasses, so an unknown key or a wrong
type fails at compose time, before any compute is spent. The `help` metadata is what
the docs and the LLM agents read; `ge`/`le`/`choices` are range rules that
`schema_meta.check_ranges` enforces (OmegaConf checks types, not ranges). The defaults here are
the only ones: each `conf/<group>/default.yaml` repeats them with comments for people, and a
test fails when the two disagree.

Groups: `dataset` and `hardware` belong to the user; `augment`, `model` and `trainer`
are the agent-editable pipeline (EDITABLE_GROUPS).
"""
import copy
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf


def _f(default: Any, help: str, **rules: Any) -> Any:
    """A schema field: default, one-line help, and optional ge/le/gt/choices rules."""
    meta = {"help": help, **rules}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class DatasetConfig:
    name: str = _f(MISSING, "short name, used in logs and cache keys")
    source: str = _f(MISSING, "loader to use", choices=[
        "digits", "shapes", "folder", "csv", "cifar10", "cifar10c", "svhn", "tinyimagenet", "dsprites"])
    path: Optional[str] = _f(None, "root folder of the data (folder/csv/torchvision sources)")
    class_dir: str = _f("", "folder source: folder holding the class subfolders, relative to path ('' = path itself)")
    test_path: Optional[str] = _f(None, "folder source: optional separate test folder with the same class subfolders")
    test_image_dir: Optional[str] = _f(None, "the competition's unlabelled test images, relative to path (predict finds "
                                             "a sample submission's ids there); null = image_dir")
    sample_submission: Optional[str] = _f(None, "the competition's sample submission CSV, relative to path "
                                                "(its header, ids and order are what predict writes)")
    submission_columns: List[str] = _f(["id", "label"], "header predict writes for a folder of test images (a sample "
                                                        "submission's own header wins)", min_items=2, max_items=2)
    submission_labels: str = _f("name", "how a submission encodes the class: name (the class name) or index (its "
                                        "integer position in the class order)", choices=["name", "index"])
    description: str = _f("", "what the images show and what the label means, in the user's words (agents read it)")
    kaggle: Optional[str] = _f(None, "Kaggle competition slug the data comes from (named in the 'missing data' error)")
    csv: str = _f("train.csv", "csv source: file with one row per training image")
    image_dir: str = _f("images", "csv source: folder holding the images, relative to path")
    id_column: str = _f("id", "csv source: column holding the image id or file name")
    label_column: str = _f("label", "csv source: column holding the class label")
    image_ext: str = _f("", "csv source: extension appended to ids that have none, e.g. '.jpg'")
    id_format: str = _f("{}", "csv source: python format applied to the id to get the file name, e.g. '{:0>4}'")
    classes: int = _f(8, "shapes/dsprites: number of orientation classes", ge=2, le=360)
    sprites: str = _f("all", "dsprites: which sprite shapes: all (VTAB's orientation task) or heart",
                      choices=["all", "heart"])
    corrupted_path: Optional[str] = _f(None, "cifar10c: folder holding CIFAR-10-C's <corruption>.npy and labels.npy")
    severity: int = _f(5, "cifar10c: corruption severity of the test set, 1 (mild) to 5 (strong)", ge=1, le=5)
    samples_per_class: int = _f(200, "shapes: images generated per class; dsprites: images sampled per class", ge=1)
    native_size: int = _f(32, "shapes: canvas size in pixels of the generated images", ge=8, le=512)
    noise: float = _f(0.15, "shapes: std of the Gaussian pixel noise, as a fraction of full brightness", ge=0.0, le=1.0)
    download: bool = _f(True, "torchvision sources: download when the files are missing (needs internet)")
    channels: int = _f(0, "1 = grayscale, 3 = RGB, 0 = infer from the data", choices=[0, 1, 3])
    val_fraction: float = _f(0.15, "share of the training data held out (stratified) for model selection", gt=0.0, lt=1.0)
    test_fraction: float = _f(0.2, "share carved out as test split when the dataset has no labelled test set", gt=0.0, lt=1.0)
    max_train: int = _f(0, "keep at most this many training images (stratified); 0 = all", ge=0)
    folds: int = _f(0, "k-fold cross-validation: split train+validation into this many stratified folds; 0 = one "
                       "validation split (set by loop.folds)", ge=0, le=20)
    fold: int = _f(0, "with folds >= 2: which fold is the validation split (0 .. folds-1)", ge=0)
    refit: bool = _f(False, "train on the training and validation images together: validation then scores images "
                            "the model has seen and cannot judge it (set by loop.refit for the final model)")
    strict: bool = _f(False, "true: an unreadable image is an error; false: skip it with a warning")
    seed: int = _f(0, "seed of the splits and of generated data (not of training)")


EDITABLE_GROUPS = ("augment", "model", "trainer")


@dataclass
class AugmentConfig:
    image_size: int = _f(32, "square side in pixels the images are resized/centre-cropped to", ge=8, le=1024)
    train_transforms: List[Dict[str, Any]] = _f(
        [{"name": "Affine", "scale": [0.9, 1.1], "translate_percent": [-0.08, 0.08], "rotate": [-10, 10], "p": 0.7}],
        "albumentations transforms applied to training images, in order: [{name: ClassName, <param>: value, ...}]; "
        "also the named policies {name: RandAugment, num_ops: 2, magnitude: 0-10} and {name: TrivialAugment}",
        max_items=16)
    crop_margin: float = _f(1.15, "when a transform crops a fixed-size window (RandomResizedCrop, RandomCrop, ...), "
                                  "training images are cached this much larger, so crops cut from more pixels; "
                                  "evaluation still sees the whole image at image_size; 1 = off", ge=1.0, le=2.0)
    mean: Optional[List[float]] = _f(None, "per-channel normalisation mean in [0,1], one value per channel; null = the "
                                           "model's default (ImageNet)", min_items=1, max_items=3,
                                     items={"ge": 0.0, "le": 1.0})
    std: Optional[List[float]] = _f(None, "per-channel normalisation std in (0,1], one value per channel; null = the "
                                          "model's default (ImageNet)", min_items=1, max_items=3,
                                    items={"gt": 0.0, "le": 1.0})
    tta: bool = _f(False, "test-time augmentation: validation, test and predict average label-safe views (a mirror "
                          "when training flips, else 2-pixel shifts); selection sees it too")
    mixup_alpha: float = _f(0.0, "MixUp beta-distribution alpha; 0 disables MixUp", ge=0.0, le=10.0)
    cutmix_alpha: float = _f(0.0, "CutMix beta-distribution alpha; 0 disables CutMix", ge=0.0, le=10.0)
    mix_prob: float = _f(1.0, "probability that a training batch is mixed at all (when MixUp or CutMix is on)", ge=0.0, le=1.0)
    switch_prob: float = _f(0.5, "when both are on, probability of CutMix instead of MixUp for a batch", ge=0.0, le=1.0)


@dataclass
class ModelConfig:
    name: str = _f("resnet10t", "timm model name (timm.list_models()), e.g. resnet18, convnext_nano, vit_tiny_patch16_224")
    pretrained: bool = _f(False, "start from timm's pretrained weights (needs internet or pretrained_file)")
    pretrained_file: Optional[str] = _f(None, "local weights file (.pth/.safetensors) used when pretrained=true; the head is adapted")
    drop_rate: Optional[float] = _f(0.0, "dropout before the classifier head; null = the model's default", ge=0.0,
                                    lt=1.0)
    drop_path_rate: Optional[float] = _f(None, "stochastic depth rate (models that support it); null = the model's "
                                               "default", ge=0.0, lt=1.0)
    kwargs: Dict[str, Any] = _f({}, "extra keyword arguments for timm.create_model (e.g. global_pool: avg)",
                                max_items=8)


@dataclass
class TrainerConfig:
    epochs: int = _f(15, "training epochs", ge=1, le=1000)
    batch_size: int = _f(64, "images per optimisation step (per device)", ge=2, le=4096)
    optimizer: str = _f("adamw", "timm optimiser name (timm.optim.list_optimizers()), e.g. adamw, sgd, lamb, lion")
    lr: float = _f(3e-3, "peak learning rate", gt=0.0, le=10.0)
    weight_decay: float = _f(0.05, "decoupled weight decay (adamw) or L2 (sgd)", ge=0.0, le=1.0)
    momentum: float = _f(0.9, "momentum for SGD-family optimisers", ge=0.0, lt=1.0)
    scheduler: str = _f("cosine", "learning-rate schedule", choices=["cosine", "step", "onecycle", "none"])
    warmup_epochs: float = _f(1.0, "linear warm-up length in epochs (fractions allowed), at most epochs", ge=0.0)
    min_lr: float = _f(1e-5, "floor of the cosine schedule, below lr", ge=0.0)
    step_epochs: int = _f(30, "step schedule: epochs between decays", ge=1)
    step_gamma: float = _f(0.1, "step schedule: factor applied at each decay", gt=0.0, le=1.0)
    label_smoothing: float = _f(0.0, "label smoothing of the cross-entropy targets", ge=0.0, lt=1.0)
    grad_clip: float = _f(0.0, "clip the gradient norm to this value; 0 = no clipping", ge=0.0)
    early_stopping: int = _f(0, "stop after this many epochs without val accuracy gain; 0 = off", ge=0)
    ema_decay: float = _f(0.0, "exponential moving average of the weights, e.g. 0.999: validation, checkpoints and the "
                               "final model use the averaged weights; 0 = off", ge=0.0, lt=1.0)
    layer_decay: float = _f(1.0, "layer-wise lr decay for fine-tuning a pretrained backbone: each layer nearer the "
                                 "input gets this factor of the lr of the layer above (timm); 1 = off", gt=0.0, le=1.0)
    freeze_epochs: int = _f(0, "train only the classifier head for this many first epochs (a pretrained backbone stays "
                               "frozen meanwhile); 0 = off, fewer than epochs", ge=0)
    lr_find: bool = _f(False, "before training, a learning-rate range test (Lightning's tuner, on up to 100 "
                              "steps) picks trainer.lr; the lr found is recorded in metrics.json and shown")
    warm_start: bool = _f(False, "refinement rounds: start from the incumbent's weights when the model group is "
                                 "unchanged but for dropout (continue training: epochs add up across rounds); else "
                                 "from scratch")
    balance: str = _f("none", "class imbalance: none, sampler (each class drawn equally often) or loss (cross-entropy "
                              "weighted by inverse class frequency)", choices=["none", "sampler", "loss"])


@dataclass
class HardwareConfig:
    accelerator: str = _f("auto", "cpu, gpu, mps, tpu or auto")
    devices: Any = _f("auto", "number of devices, a list of ids, or auto")
    num_nodes: int = _f(1, "machines taking part in distributed training", ge=1)
    strategy: str = _f("auto", "Lightning strategy: auto, ddp, ddp_spawn, fsdp, ...")
    precision: str = _f("auto", "numeric precision: 32-true, 16-mixed, bf16-mixed, or auto (bf16/16 mixed on a GPU "
                                "by what it supports, 32-true on CPU)")
    num_workers: int = _f(-1, "data-loading worker processes per device; -1 = auto (on a GPU: the spare CPU cores, "
                              "at most 8 per device; on CPU: 0)", ge=-1)
    channels_last: bool = _f(False, "NHWC memory layout for the model: faster convolutions on tensor-core GPUs")
    compile: bool = _f(False, "torch.compile the model (slow first steps, faster after; needs a C compiler on CPU)")
    threads: int = _f(0, "torch CPU threads; 0 = torch's default", ge=0)
    progress_bar: bool = _f(True, "show Lightning's progress bar")
    deterministic: bool = _f(False, "ask torch for deterministic kernels (slower)")


@dataclass
class PathsConfig:
    data_dir: str = _f("data", "where datasets live; relative paths are taken from the project root")
    cache_dir: str = _f("data/.cache", "where decoded image arrays are cached")
    output_dir: str = _f(MISSING, "where this run writes metrics.json, checkpoints and logs")


@dataclass
class LoggerConfig:
    name: str = _f("csv", "where each run logs its params and per-epoch metrics (besides metrics.json and csv/)",
                   choices=["csv", "tensorboard", "mlflow", "wandb"])
    save_dir: Optional[str] = _f(None, "where the logger writes; null = the run's folder (tensorboard; the loop: the "
                                       "refinement run's tensorboard/), outputs/mlruns (mlflow), outputs/wandb (wandb)")
    tracking_uri: Optional[str] = _f(None, "mlflow: tracking server or store URI; null = a local sqlite store in save_dir")
    experiment: str = _f("improve", "mlflow experiment, wandb project")
    group: Optional[str] = _f(None, "what groups runs together: the refinement run's folder name (set by the loop)")
    run_name: Optional[str] = _f(None, "this run's name; null = its output folder's name (the loop: round NN)")
    offline: bool = _f(True, "wandb: log offline (upload later with `wandb sync`); false = to the wandb server")


@dataclass
class Groups:
    """The config groups both entry points share."""

    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    hardware: HardwareConfig = field(default_factory=HardwareConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)


@dataclass
class TrainConfig(Groups):
    """`train.yaml`: one training run."""

    seed: int = _f(0, "seed of weights init, data order and augmentation")
    test: bool = _f(True, "evaluate the best checkpoint on the test split after training")
    ckpt_path: Optional[str] = _f(None, "resume training from this checkpoint (e.g. <run>/checkpoints/last.ckpt)")
    init_checkpoint: Optional[str] = _f(None, "initialise the network from this checkpoint's weights (same model; "
                                              "the refinement loop sets it for trainer.warm_start)")
    save_last: bool = _f(True, "also write checkpoints/last.ckpt after every epoch, to resume this run with ckpt_path")
    save_val_predictions: bool = _f(False, "write val_predictions.json: the best checkpoint's prediction for every "
                                           "validation image (the refinement loop's paired decisions use it)")
    recipe: Optional[str] = _f(None, "name of the recipe the pipeline started from (set by recipe files)")
    stop_epoch: Optional[int] = _f(None, "end the run after this many of its epochs, the schedule still planned for "
                                         "all (go on later with ckpt_path=<run>/checkpoints/last.ckpt); set by the "
                                         "loop's successive halving", ge=1)
    prune: Optional[Dict[str, Any]] = _f(None, "stop the run once its best val accuracy is behind this reference "
                                               "curve ({reference: [one value per epoch or null], start: first "
                                               "epoch index it may stop at}); set by the loop under loop.prune")
    deadline_s: Optional[float] = _f(None, "seconds training (its validation included) may take: it stops at an "
                                           "epoch's end when one more as long as the longest so far would not fit, "
                                           "mid-epoch if one runs over; set by the loop under loop.time_budget",
                                     gt=0.0)
    fill: Optional[Dict[str, Any]] = _f(None, "{seconds, below_rounds, max_epochs}: after the first epoch, when "
                                              "`seconds` buy fewer than below_rounds runs as planned, re-plan the "
                                              "schedule for all the epochs they buy (pipeline/fill.py); set by the "
                                              "loop for round 0 under loop.fill_below")


@dataclass
class LoopConfig:
    rounds: int = _f(5, "refinement rounds after round 0 (the paper used 20)", ge=0, le=1000)
    time_budget: float = _f(0.0, "stop starting new rounds after this many training seconds (the rounds' own; the loop's work between rounds is reported apart); 0 = no limit", ge=0.0)
    target: float = _f(0.0, "stop early once validation accuracy reaches this; 0 = off", ge=0.0, le=1.0)
    min_delta: float = _f(0.0, "keep a candidate only if val accuracy beats the incumbent by more than this", ge=0.0)
    accept: str = _f("greedy", "greedy: keep any gain above min_delta (the paper's rule); paired: keep only a gain "
                               "significant on the same validation images (exact McNemar p < alpha); confirm: "
                               "paired, and a gain not yet significant is retrained with more seeds",
                     choices=["greedy", "paired", "confirm"])
    alpha: float = _f(0.05, "significance level of loop.accept=paired and confirm", gt=0.0, lt=1.0)
    confirm_seeds: int = _f(2, "loop.accept=confirm: extra seeds a promising, unproven candidate (and its incumbent) "
                               "are trained with; each run counts against loop.rounds", ge=1, le=10)
    folds: int = _f(0, "score each round by stratified k-fold cross-validation over train+validation (k training "
                       "runs a round, pooled out-of-fold predictions) for small datasets; 0 or 1 = one split",
                    ge=0, le=20)
    candidates: int = _f(1, "edits of the chosen group trained at once each round; the best of them is judged "
                            "(several GPUs or machines)", ge=1, le=16)
    executor: str = _f("local", "where a round's candidates train: local (processes on this machine, sharing its "
                                "threads and GPUs) or ray (Ray tasks)", choices=["local", "ray"])
    ray_address: Optional[str] = _f(None, "executor=ray: address of an existing Ray cluster; null = start Ray here")
    ensemble_top_k: int = _f(0, "at the end, average the predictions of the k best finished rounds (same image "
                                "size); kept only if it beats the best round on validation under loop.accept, then "
                                "tested, exported and used by predict; 0 or 1 = off", ge=0, le=10)
    average_top_k: int = _f(5, "at the end, a greedy soup of the incumbent's weights: its warm-start ancestors and "
                               "the rounds (kept or reverted) that continued from them join the average best first, "
                               "each only if validation accuracy does not drop (at most k rounds, same image size, "
                               "BatchNorm recomputed); kept only if it beats the incumbent on validation under "
                               "loop.accept; 0 or 1 = off", ge=0, le=10)
    noise_floor: bool = _f(False, "train round 0's pipeline once more with another seed and show how far chance alone "
                                  "moves validation accuracy (one extra training run)")
    strategy: str = _f("iterative", "iterative: one group a round; all_at_once: every group every round (no-IR ablation)",
                       choices=["iterative", "all_at_once"])
    init: str = _f("unified", "unified: the architect writes the whole first pipeline; sequential: one group at a time",
                   choices=["unified", "sequential"])
    max_repairs: int = _f(2, "times an engineer may fix an edit that failed validation", ge=0, le=10)
    diagnose: bool = _f(True, "read the incumbent's validation errors before each round: its most confused class "
                              "pairs, tested on the training images for mirror-image, colour-only, fine-detail and "
                              "imbalance causes (refine/diagnoses.py); the agents act on what is found")
    final_phase: float = _f(0.3, "share of loop.time_budget kept for the final phase: the incumbent continued from "
                                 "its weights with one long schedule for what is left (refine/final_phase.py); "
                                 "0 = off; no effect without a time budget", ge=0.0, lt=1.0)
    fill_below: float = _f(2.0, "under loop.time_budget: when it buys fewer than this many runs of round 0 (timed on "
                                "its first epoch), round 0 re-plans its schedule for all the epochs the budget buys "
                                "and no other round starts: a look and a second round cannot pay at that budget "
                                "(pipeline/fill.py); 0 = off", ge=0.0)
    halving: bool = _f(True, "with loop.candidates >= 2, successive halving: all train a quarter or half of their "
                             "epochs, the better half goes on from where it stopped, until one trains to the end")
    refit: bool = _f(False, "at the end, retrain the final pipeline from scratch on training + validation images "
                            "for all the epochs its rounds trained, in one schedule; it becomes the final model "
                            "(tested, exported), reported beside the selected one; validation cannot judge it")
    prune: bool = _f(True, "stop a round early once its best val accuracy is behind the incumbent's curve at the "
                           "same point of training, an epoch earlier, by more than the noise (refine/prune.py); it is "
                           "reverted as pruned")
    prune_after: float = _f(0.25, "fraction of a round's epochs it always trains before it may be pruned", ge=0.0,
                            le=1.0)
    prune_margin: Optional[float] = _f(None, "val accuracy a round may be behind the incumbent's curve before it is "
                                             "pruned; null = two standard errors at the curve's lowest prunable point",
                                       ge=0.0, le=1.0)
    round_timeout: float = _f(900.0, "wall-clock seconds a training round may take before it is killed", gt=0.0)
    validate_timeout: float = _f(10.0, "seconds checking one edit (parse, schema, build, one step, its cost) may "
                                       "take before the edit is rejected as too slow", gt=0.0)
    validate_memory_gb: Optional[float] = _f(None, "memory (GiB) checking one edit may take before it is rejected; "
                                                   "null = what this machine lets pre-flight train", gt=0.0)
    max_epochs: int = _f(40, "most epochs an agent may give one round", ge=1)
    pretrained_reachable: Any = _f("auto", "whether pretrained weights can be downloaded: true, false or auto")


@dataclass
class ConstraintsConfig:
    max_params: int = _f(0, "reject models with more parameters than this; 0 = no limit", ge=0)
    max_latency_ms: float = _f(0.0, "reject pipelines whose single-image CPU inference is slower; 0 = no limit", ge=0.0)
    min_accuracy: float = _f(0.0, "accuracy the final model must reach (reported as met or not); 0 = none", ge=0.0,
                             le=1.0)


@dataclass
class LLMConfig:
    provider: str = _f("auto", "auto, heuristic (offline expert), anthropic or openai",
                       choices=["auto", "heuristic", "anthropic", "openai"])
    model: Optional[str] = _f(None, "model name; null = the provider's default (see improve/llm/__init__.py)")
    role_models: Dict[str, Optional[str]] = _f({"architect": None, "analyst": None, "engineer": None},
                                               "optional cheaper/other model per role; null = llm.model")
    base_url: Optional[str] = _f(None, "API base URL, e.g. http://localhost:8000/v1 for vLLM, Ollama or llama.cpp")
    temperature: float = _f(0.2, "sampling temperature (OpenAI-compatible APIs; Anthropic's takes none)", ge=0.0,
                            le=2.0)
    max_tokens: int = _f(2000, "most tokens one reply may use", ge=64)
    timeout: float = _f(60.0, "seconds one request may take", gt=0.0)
    retries: int = _f(3, "retries after 429/5xx/connection errors/timeouts, with exponential backoff", ge=0, le=10)
    structured: bool = _f(True, "use the API's native JSON-schema mechanism; false = parse JSON out of plain text")
    budget_usd: float = _f(0.0, "end the run cleanly once LLM calls have cost this much; 0 = no limit", ge=0.0)
    max_calls: int = _f(0, "end the run cleanly after this many LLM calls; 0 = no limit", ge=0)
    fallback: str = _f("auto", "a failed call: auto (the offline expert answers; a run where every call failed exits 3), "
                               "heuristic (the expert answers, the run exits 0 with a warning) or skip (the round)",
                       choices=["auto", "heuristic", "skip"])
    verbose: bool = _f(False, "print the SDKs' and httpx's request and retry logs on the console")
    cache: bool = _f(True, "replay identical requests from the response cache (exact reruns, no server in tests)")
    prices: Dict[str, Dict[str, float]] = _f({}, "USD per million tokens by model: {model: {input: x, output: y}}")


@dataclass
class RefineConfig(Groups):
    """`config.yaml`: the refinement run."""

    loop: LoopConfig = field(default_factory=LoopConfig)
    constraints: ConstraintsConfig = field(default_factory=ConstraintsConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)
    seed: int = _f(0, "seed of the agents and of every round's training")
    resume: Optional[str] = _f(None, "run directory to continue (python -m improve resume=outputs/improve/...)")


GROUP_SCHEMAS = {
    "dataset": DatasetConfig,
    "augment": AugmentConfig,
    "model": ModelConfig,
    "trainer": TrainerConfig,
    "hardware": HardwareConfig,
    "logger": LoggerConfig,
    "loop": LoopConfig,
    "constraints": ConstraintsConfig,
    "llm": LLMConfig,
}


def group_defaults(group: str) -> Dict[str, Any]:
    """The default values of one group, as a plain dict (the YAML defaults must equal these: tests/test_configs)."""
    return OmegaConf.to_container(OmegaConf.structured(GROUP_SCHEMAS[group]))


def register_configs() -> None:
    """Register the schemas as the bases of `train.yaml` and `config.yaml` (Hydra structured configs)."""
    ConfigStore.instance().store(name="train_schema", node=TrainConfig)
    ConfigStore.instance().store(name="refine_schema", node=RefineConfig)
