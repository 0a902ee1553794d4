"""The options of a run, section by section: each field with its label, help, range and
choices, from which engine.config builds validation, TOML and ``--set``, and the app its
forms. A new option is one edit here.

``relevant_when`` says when a field is used at all, as plain data the engine evaluates
(engine.config.applies): ``{"optim.name": ["sgd", "rmsprop"]}`` (the key's value is one
of these), ``{"distill.teacher": {"not": [""]}}`` (none of these), ``{"key": {">": 0}}``,
``{"data.dataset": {"prefix": ["table:"]}}`` (a string that starts with one of these;
``"not_prefix"``: with none of these).
Conditions in one dict must all hold; a list of dicts holds when any of them does. A
field that does not apply is hidden in the form, left out of saved files and not
range-checked, because nothing reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


def opt(default, label: str, help: str, *, min=None, max=None, min_exclusive=False,
        max_exclusive=False, choices=None, pattern=None, pattern_hint=None, item_min=None,
        item_max=None, item_max_exclusive=False, min_items=None, max_items=None,
        relevant_when=None):
    """A config field with the metadata forms and validation are built from.

    List fields bound each item (item_min, item_max) and their length (min_items,
    max_items; item_min also makes an empty list an error), so no value a file or
    --set can carry reaches the builders unchecked.
    """
    meta = dict(label=label, help=help, min=min, max=max, min_exclusive=min_exclusive,
                max_exclusive=max_exclusive, choices=tuple(choices) if choices else None,
                pattern=pattern, pattern_hint=pattern_hint, item_min=item_min,
                item_max=item_max, item_max_exclusive=item_max_exclusive,
                min_items=min_items, max_items=max_items, relevant_when=relevant_when)
    if isinstance(default, list):
        return field(default_factory=lambda d=tuple(default): list(d), metadata=meta)
    return field(default=default, metadata=meta)


DATASETS = ("digits", "iris", "wine", "breast_cancer", "diabetes", "synthetic", "moons")
REGRESSION_DATASETS = ("diabetes",)
IMAGE_DATASETS = ("digits",)
ARCHS = ("mlp", "cnn", "resnet")
OPTIMIZER_IMPLEMENTATIONS = ("auto", "fused", "foreach", "for-loop")
# torch.optim's fused=True, and the devices each one has it on
FUSED_OPTIMIZERS = {"adam": ("cuda", "mps", "xpu", "cpu"), "adamw": ("cuda", "mps", "xpu", "cpu"),
                    "sgd": ("cuda", "mps", "xpu", "cpu"), "adagrad": ("cpu",)}
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad", "lbfgs")
SCHEDULES = ("constant", "step", "multistep", "exponential", "cosine", "warmup_cosine",
             "onecycle", "plateau")
CLASSIFICATION_LOSSES = ("cross_entropy", "bce", "hinge")
REGRESSION_LOSSES = ("mse", "l1", "huber")
MONITORED = ("val_loss", "val_accuracy", "val_mse", "val_mae", "val_r2")
IMAGES_PREFIX = "images:"  # data.dataset = "images:path/to/folder" (engine.data.images)
TASKS = ("auto", "classification", "regression")
TABLE = {"data.dataset": {"prefix": ["table:"]}}  # options of a table file's data
BUILT_IN_ARCHS = {"model.arch": list(ARCHS)}  # not custom:file.py, which builds itself
# Options of image folders alone, and of any image data (a built-in image set or a folder).
IMAGE_FOLDER = {"data.dataset": {"prefix": [IMAGES_PREFIX]}}
IMAGE_DATA = [{"data.dataset": list(IMAGE_DATASETS)}, IMAGE_FOLDER]
# Hidden widths and batch norm: the MLP, the cnn's head and conv stages, resnet on tabular
# data (on images resnet always normalizes); conv channels: the cnn, resnet on images.
HIDDEN_LAYERS = [{"model.arch": ["mlp", "cnn"]},
                  {"model.arch": ["resnet"], "data.dataset": {"not": list(IMAGE_DATASETS),
                                                              "not_prefix": [IMAGES_PREFIX]}}]
CONV_CHANNELS = [{"model.arch": ["cnn"]},
                 {"model.arch": ["resnet"], "data.dataset": list(IMAGE_DATASETS)},
                 {"model.arch": ["resnet"], **IMAGE_FOLDER}]
# Augmentation options: image data with augment.enabled on.
AUGMENTING = [{"augment.enabled": [True], **rule} for rule in IMAGE_DATA]


def is_image_dataset(name: str) -> bool:
    """A built-in image set or an image folder: data whose samples are (C, H, W)."""
    return name in IMAGE_DATASETS or name.startswith(IMAGES_PREFIX)


@dataclass
class DataConfig:
    dataset: str = opt("digits", "Dataset", "Built-in dataset (no downloads): scikit-learn's "
                       "bundled sets, or generated 'synthetic' / 'moons' data; or your own "
                       "images: images:path/to/folder (one subfolder per class) or "
                       "images:path/to/labels.csv (rows of path,label); or a table: "
                       "table:path/to/file.csv (.tsv, .parquet; "
                       "table:pkg://palmerpenguins/penguins.csv reads a file an installed "
                       "package ships). Relative paths start from the config file's folder.",
                       choices=DATASETS, pattern=r"images:.+|table:.+\.(?i:csv|tsv|parquet)",
                       pattern_hint="images:path/to/folder or table:path/to/file.csv")
    batch_size: int = opt(64, "Batch size", "Samples per forward pass (per micro-batch when "
                          "accumulating gradients).", min=1, max=1_000_000)
    val_fraction: float = opt(0.2, "Validation fraction", "Share of the data held out for "
                              "validation (stratified for classification).",
                              min=0.0, max=0.9, min_exclusive=True)
    n_samples: int = opt(2000, "Samples", "Number of generated samples (synthetic and moons).",
                         min=20, max=100_000_000,
                         relevant_when={"data.dataset": ["synthetic", "moons"]})
    n_features: int = opt(20, "Features", "Number of generated features (synthetic).",
                          min=2, max=100_000,
                          relevant_when={"data.dataset": ["synthetic"]})
    n_classes: int = opt(2, "Classes", "Number of generated classes (synthetic).", min=2, max=1000,
                         relevant_when={"data.dataset": ["synthetic"]})
    noise: float = opt(0.2, "Noise", "Standard deviation of the noise added to 'moons'.",
                       min=0.0, max=10.0,
                       relevant_when={"data.dataset": ["moons"]})
    standardize: bool = opt(True, "Standardize features", "Scale features to zero mean and unit "
                            "variance, fitted on the training split only (an image folder "
                            "always normalizes each channel so; tables: preprocess.scaling).",
                            relevant_when={"data.dataset": {"not_prefix": [IMAGES_PREFIX,
                                                                           "table:"]}})
    num_workers: int = opt(0, "Loader workers", "DataLoader worker processes; 0 loads in the "
                           "training process, fastest for in-memory data.", min=0, max=64)
    pin_memory: bool = opt(False, "Pin memory", "Page-locked host batches for faster, "
                           "asynchronous copies to a CUDA device.")
    image_size: int = opt(32, "Image size", "Images are resized (squashed, bilinear) to this "
                          "many pixels square when they are first decoded.", min=4, max=1024,
                          relevant_when=IMAGE_FOLDER)
    channels: int = opt(3, "Channels", "1 decodes every image to grey, 3 to colour (RGB), "
                        "whatever each file holds.", min=1, max=3,
                        relevant_when=IMAGE_FOLDER)
    on_bad_file: str = opt("skip", "Undecodable images", "skip: leave out images that cannot "
                           "be decoded (the log names the first few); fail: stop the run "
                           "before training.", choices=("skip", "fail"),
                           relevant_when=IMAGE_FOLDER)
    image_loading: str = opt("auto", "Image loading", "memory: hold the decoded images as "
                             "tensors; stream: read each batch from the on-disk cache (through "
                             "the loader workers), for folders larger than memory; auto: "
                             "stream when the tensors would take over half the free memory.",
                             choices=("auto", "memory", "stream"), relevant_when=IMAGE_FOLDER)
    target: str = opt("", "Target column", "The table's column to predict.", relevant_when=TABLE)
    features: list[str] = opt([], "Feature columns", "The table's columns the model reads; "
                              "empty: every column but the target (less preprocess.drop_columns).",
                              max_items=100_000, pattern_hint="bill_length_mm, island",
                              relevant_when=TABLE)
    task: str = opt("auto", "Task", "auto: a non-numeric target, or an integer target with at "
                    "most 20 distinct values, is classification; anything else regression. The "
                    "choice is written to the run's log.", choices=TASKS, relevant_when=TABLE)
    test_fraction: float = opt(0.0, "Test fraction", "Share of the data held out as a test "
                               "split (stratified for classification), taken before the "
                               "validation split and never used for early stopping or model "
                               "selection; 0: no test split.", min=0.0, max=0.9,
                               max_exclusive=True)
    test_path: str = opt("", "Test table", "A table with the same columns used as the test split "
                         "instead of data.test_fraction (relative to the config file's folder); "
                         "it goes through the preprocessing fitted on the training split.",
                         pattern=r"(.+\.(?i:csv|tsv|parquet))?",
                         pattern_hint="path/to/test.csv", relevant_when=TABLE)
    group_column: str = opt("", "Group column", "A table column whose rows belong together (a "
                            "patient, a session): it is not a feature, and with "
                            "train.cv_folds a group stays on one side of every fold "
                            "(group k-fold).", relevant_when=TABLE)
    oversample: bool = opt(False, "Oversample rare classes", "Draw training batches with a "
                           "weighted sampler so each class is drawn equally often on average "
                           "(weights from the training split's class counts; classification).")


@dataclass
class ModelConfig:
    arch: str = opt("mlp", "Architecture", "mlp, cnn (image data), resnet, or "
                    "custom:path/to/file.py exposing build_model(input_shape, num_outputs). "
                    "A custom file is Python code and runs when the model is built: load only "
                    "files you trust.", choices=ARCHS, pattern=r"custom:.+\.py",
                    pattern_hint="custom:path/to/file.py")
    hidden: list[int] = opt([128, 64], "Hidden widths", "Width of each hidden layer of the MLP "
                            "(and of the residual blocks of resnet on tabular data).",
                            item_min=1, item_max=10**9, max_items=1000,
                            relevant_when=HIDDEN_LAYERS)
    channels: list[int] = opt([32, 64], "Conv channels", "Output channels of each convolution "
                              "stage (cnn, resnet on image data).",
                              item_min=1, item_max=10**6, max_items=1000,
                              relevant_when=CONV_CHANNELS)
    activation: str = opt("relu", "Activation", "Non-linearity between layers.",
                          choices=("relu", "gelu", "silu", "tanh", "leaky_relu"),
                          relevant_when=BUILT_IN_ARCHS)
    dropout: float = opt(0.0, "Dropout", "Probability of zeroing an activation during training.",
                         min=0.0, max=1.0, max_exclusive=True,
                         relevant_when=BUILT_IN_ARCHS)
    batch_norm: bool = opt(False, "Batch norm", "Batch normalization after each hidden layer.",
                           relevant_when=HIDDEN_LAYERS)
    init: str = opt("", "Start from weights", "A trained run (its id or name in the workspace) "
                    "or a .safetensors file (from `torchwork export` or `torchwork compress`) "
                    "whose weights the model starts from instead of a random initialization. "
                    "For the same inputs and outputs, layers take the saved sizes, so a pruned "
                    "model fine-tunes as an ordinary run; for other data (another number of "
                    "classes or inputs) the layers whose shapes match are loaded and the rest, "
                    "the output head, start fresh; the run's log lists both. Empty: random "
                    "initialization.",
                    # a weights file of another kind is a mistake, not a run's name
                    pattern=r"(?!.*\.(pt|pth|pt2|ckpt|bin|onnx|h5)$).*",
                    pattern_hint="a run id or name, or path/to/model.safetensors")
    freeze: list[str] = opt([], "Freeze layers", "Layer-name prefixes whose parameters stay "
                            "fixed while the run trains (their batch-norm statistics too), "
                            "e.g. 0, 2 for the first two Linear layers of an MLP; a name "
                            "matches itself and what is inside it. Empty: everything trains.",
                            max_items=1000)


@dataclass
class OptimConfig:
    name: str = opt("adam", "Optimizer", "Update rule.", choices=OPTIMIZERS)
    lr: float = opt(1e-3, "Learning rate", "Step size (the peak rate for schedules with warmup "
                    "or one-cycle).", min=0.0, max=10.0, min_exclusive=True)
    weight_decay: float = opt(0.0, "Weight decay", "Passed to the optimizer: decoupled decay for "
                              "AdamW, an L2 term folded into the gradient for the others.",
                              min=0.0, max=1.0)
    momentum: float = opt(0.9, "Momentum", "Momentum for SGD and RMSprop.", min=0.0, max=1.0,
                          max_exclusive=True,
                          relevant_when={"optim.name": ["sgd", "rmsprop"]})
    nesterov: bool = opt(False, "Nesterov", "Nesterov momentum (SGD with momentum > 0 only).",
                         relevant_when={"optim.name": ["sgd"]})
    betas: list[float] = opt([0.9, 0.999], "Betas", "Adam/AdamW moment coefficients.",
                             item_min=0.0, item_max=1.0, item_max_exclusive=True,
                             min_items=2, max_items=2,
                             relevant_when={"optim.name": ["adam", "adamw"]})
    lbfgs_history: int = opt(10, "L-BFGS history", "Update history size for L-BFGS.",
                             min=1, max=1000,
                             relevant_when={"optim.name": ["lbfgs"]})
    backbone_lr_scale: float = opt(1.0, "Backbone LR scale", "Fine-tuning: the layers loaded "
                                   "from model.init train at this fraction of the learning rate "
                                   "of the layers that start fresh (the head); schedules scale "
                                   "both alike. 1: one rate for all.", min=0.0, max=1.0,
                                   min_exclusive=True,
                                   relevant_when={"model.init": {"not": [""]}})
    implementation: str = opt("auto", "Implementation", "How the optimizer updates the "
                              "parameters: fused (one kernel for all; Adam, AdamW and SGD on "
                              "CUDA, MPS and the CPU, Adagrad on the CPU), foreach (a few "
                              "batched operations over all parameters), for-loop (one "
                              "parameter at a time); auto: fused where torch has it for the "
                              "optimizer and device, else torch's choice (foreach on CUDA, "
                              "for-loop on the CPU).", choices=OPTIMIZER_IMPLEMENTATIONS,
                              relevant_when={"optim.name": {"not": ["lbfgs"]}})


@dataclass
class ScheduleConfig:
    name: str = opt("constant", "Schedule", "Learning-rate schedule; all step per optimizer "
                    "step except plateau, which steps per epoch on the monitored metric.",
                    choices=SCHEDULES)
    warmup_steps: int = opt(0, "Warmup steps", "Linear warmup from lr/100 to lr over this many "
                            "optimizer steps before the schedule (not with plateau; for "
                            "onecycle it sets the rising phase).", min=0, max=10_000_000)
    step_size: int = opt(10, "Step size (epochs)", "Epochs between decays (step).",
                         min=1, max=100_000,
                         relevant_when={"schedule.name": ["step"]})
    milestones: list[int] = opt([30, 60], "Milestones (epochs)", "Epochs at which the rate "
                                "decays (multistep).", item_min=1, item_max=1_000_000,
                                max_items=1000,
                                relevant_when={"schedule.name": ["multistep"]})
    gamma: float = opt(0.1, "Decay factor", "Multiplier at each decay (step, multistep, plateau); "
                       "per epoch for exponential.", min=0.0, max=1.0, min_exclusive=True,
                       relevant_when={"schedule.name": ["step", "multistep", "exponential",
                                                        "plateau"]})
    min_lr: float = opt(0.0, "Minimum LR", "Floor of the rate (cosine, warmup_cosine, plateau).",
                        min=0.0, max=10.0,
                        relevant_when={"schedule.name": ["cosine", "warmup_cosine", "plateau"]})
    patience: int = opt(5, "Plateau patience", "Epochs without improvement before a plateau "
                        "decay.", min=0, max=10_000,
                        relevant_when={"schedule.name": ["plateau"]})


@dataclass
class RegularizationConfig:
    l1: float = opt(0.0, "L1 penalty", "Adds l1 * sum(|w|) over the weights to the loss "
                    "(drives weights to exactly zero).", min=0.0, max=10.0)
    l2: float = opt(0.0, "L2 penalty", "Adds l2/2 * sum(w^2) over the weights to the loss, so it "
                    "also flows through the optimizer's moment estimates (unlike decoupled "
                    "weight decay).", min=0.0, max=10.0)
    label_smoothing: float = opt(0.0, "Label smoothing", "Cross-entropy target smoothing.",
                                 min=0.0, max=1.0, max_exclusive=True,
                                 relevant_when={"train.loss": ["auto", "cross_entropy"],
                                                "data.dataset": {"not": list(REGRESSION_DATASETS)}})
    early_stopping_patience: int = opt(0, "Early stopping patience", "Epochs without improvement "
                                       "before stopping; 0 turns early stopping off. The best "
                                       "weights are restored.", min=0, max=10_000)
    early_stopping_min_delta: float = opt(0.0, "Min improvement", "Smallest change of the "
                                          "monitored metric that counts as improvement.",
                                          min=0.0, max=1e6,
                                          relevant_when={
                                              "regularization.early_stopping_patience": {">": 0}})
    early_stopping_metric: str = opt("val_loss", "Monitored metric", "Validation metric watched "
                                     "by early stopping and the plateau schedule, and "
                                     "reported as the run's best.",
                                     choices=MONITORED)


@dataclass
class PrecisionConfig:
    amp: str = opt("off", "Mixed precision", "Autocast: fp16 (CUDA, with a gradient scaler) or "
                   "bf16 (CUDA and CPU).", choices=("off", "fp16", "bf16"))
    channels_last: bool = opt(False, "Channels last", "NHWC memory format for convolutional "
                              "models (faster on tensor cores).",
                              relevant_when=IMAGE_DATA)
    compile: bool = opt(False, "torch.compile", "Compile the model; the first steps are slow "
                        "while it compiles.")
    tf32: str = opt("auto", "TF32 matmuls", "On CUDA GPUs with Tensor Cores (compute "
                    "capability 8.0 and above): on lets fp32 matmuls and convolutions run in "
                    "TF32 (about 3 decimal digits fewer in the products, often much faster), "
                    "off keeps them in full fp32; auto leaves torch's setting (matmuls fp32, "
                    "cuDNN convolutions TF32). Set for the run only; ignored on the CPU.",
                    choices=("auto", "on", "off"))


@dataclass
class TrainConfig:
    epochs: int = opt(10, "Epochs", "Passes over the training data.", min=1, max=1_000_000)
    max_steps: int = opt(0, "Max steps", "Stop after this many optimizer steps; 0 means no "
                         "limit.", min=0, max=10**12)
    grad_accum_steps: int = opt(1, "Gradient accumulation", "Micro-batches per optimizer step: "
                                "k batches of b act as one batch of k*b.", min=1, max=100_000)
    grad_clip_norm: float = opt(0.0, "Clip grad norm", "Rescale gradients to this total L2 norm; "
                                "0 turns it off.", min=0.0, max=1e9)
    grad_clip_value: float = opt(0.0, "Clip grad value", "Clamp each gradient element to "
                                 "[-v, v]; 0 turns it off.", min=0.0, max=1e9)
    class_weights: str = opt("none", "Class weights", "balanced: weight each class in the loss "
                             "by n_samples / (n_classes * its count in the training split), as "
                             "scikit-learn's 'balanced' (classification).",
                             choices=("none", "balanced"))
    loss: str = opt("auto", "Loss", "auto picks cross_entropy for classification and mse for "
                    "regression.", choices=("auto",) + CLASSIFICATION_LOSSES + REGRESSION_LOSSES)
    seed: int = opt(0, "Seed", "Seeds the split, the initialization, shuffling and dropout.",
                    min=0, max=2**32 - 1)
    device: str = opt("auto", "Device", "auto picks CUDA, then MPS, then the CPU.",
                      choices=("auto", "cpu", "cuda", "mps"), pattern=r"cuda:[0-9]{1,3}",
                      pattern_hint="cuda:N")
    checkpoint_every: int = opt(1, "Checkpoint every (epochs)", "Epochs between checkpoints; one "
                                "is also written at the end and on stop. 0 writes only those.",
                                min=0, max=100_000)
    threads: int = opt(0, "CPU threads", "Threads torch uses for the run's operators "
                       "(torch.set_num_threads), set for the run only; 0 leaves torch's "
                       "default (one per physical core, or OMP_NUM_THREADS). More threads "
                       "than cores make them take turns.", min=0, max=1024)
    log_every: int = opt(10, "Log every (steps)", "Optimizer steps between metric readings; "
                         "reading values off the device syncs it, so not every step.",
                         min=1, max=1_000_000)
    cv_folds: int = opt(0, "Cross-validation folds", "K >= 2 trains K runs as one group, "
                        "each holding out another of K stratified folds for validation "
                        "instead of data.val_fraction, and reports each metric's mean and "
                        "standard deviation across them. 0: one run, no cross-validation.",
                        min=0, max=100)
    cv_fold: int = opt(0, "Fold", "The fold this run holds out (1 to train.cv_folds): set on "
                       "each run of a cross-validation group; set it yourself to train one "
                       "fold alone. 0: every fold, as a group.", min=0, max=100,
                       relevant_when={"train.cv_folds": {">": 1}})
    strategy: str = opt("auto", "Distributed strategy", "How the processes of a torchrun "
                        "launch share the work: ddp replicates the model and averages "
                        "gradients (DistributedDataParallel), each process training on its "
                        "own shard of every batch, so data.batch_size is per process; none "
                        "trains in one process; fsdp (FSDP2's fully_shard) shards the "
                        "parameters, gradients and optimizer state across the processes, "
                        "block by block, for models too big to replicate; auto picks ddp "
                        "when started by torchrun with WORLD_SIZE > 1, else none.",
                        choices=("auto", "none", "ddp", "fsdp"))
    backend: str = opt("auto", "Distributed backend", "The torch.distributed backend of a "
                       "distributed run: auto picks nccl on CUDA and gloo on the CPU.",
                       choices=("auto", "nccl", "gloo"),
                       relevant_when={"train.strategy": ["auto", "ddp", "fsdp"]})
    sync_batchnorm: str = opt("auto", "Sync BatchNorm", "BatchNorm statistics over the whole "
                              "batch of every process (torch.nn.SyncBatchNorm) instead of each "
                              "process's share, so several processes train as one: auto on "
                              "CUDA, per process on the CPU (SyncBatchNorm needs CUDA); on "
                              "refuses a CPU run; off keeps each process's own statistics.",
                              choices=("auto", "on", "off"),
                              relevant_when={"train.strategy": ["auto", "ddp", "fsdp"]})


@dataclass
class MonitorConfig:
    interval: float = opt(0.5, "Hardware sampling interval (s)", "Seconds between readings of "
                          "GPU utilization, memory, power and temperature (NVML), torch memory "
                          "and CPU/RAM while the run trains; stored with the run.",
                          min=0.1, max=10.0)


@dataclass
class DistillConfig:
    teacher: str = opt("", "Teacher", "Knowledge distillation: a trained run (its id or name in "
                       "the workspace) or a .safetensors export whose model teaches this one. "
                       "The loss becomes alpha * T^2 * KL(teacher || student) + (1 - alpha) * "
                       "task loss at temperature T. Empty: no distillation.")
    alpha: float = opt(0.7, "Teacher weight (alpha)", "Share of the loss that follows the "
                       "teacher's softened outputs; the rest is the task loss.",
                       min=0.0, max=1.0,
                       relevant_when={"distill.teacher": {"not": [""]}})
    temperature: float = opt(4.0, "Temperature", "Softens both models' outputs before they are "
                             "compared; 2 to 8 is usual.", min=0.0, max=100.0,
                             min_exclusive=True,
                             relevant_when={"distill.teacher": {"not": [""]}})


@dataclass
class AugmentConfig:
    enabled: bool = opt(False, "Augment training batches", "Random changes to each training "
                        "batch (on the run's device); validation batches are never "
                        "changed. The defaults below are a mild, usual set.",
                        relevant_when=IMAGE_DATA)
    crop_scale: float = opt(0.8, "Random crop: least area", "Random resized crop: a crop of "
                            "this share of the image area up to all of it, resized back; 1 "
                            "turns it off.", min=0.05, max=1.0, relevant_when=AUGMENTING)
    hflip: float = opt(0.5, "Horizontal flip", "Probability of mirroring left-right.",
                       min=0.0, max=1.0, relevant_when=AUGMENTING)
    vflip: float = opt(0.0, "Vertical flip", "Probability of flipping upside down.",
                       min=0.0, max=1.0, relevant_when=AUGMENTING)
    rotation: float = opt(10.0, "Rotation (degrees)", "Rotate by a random angle up to this "
                          "many degrees either way; 0 turns it off.", min=0.0, max=180.0,
                          relevant_when=AUGMENTING)
    brightness: float = opt(0.2, "Brightness jitter", "Shift brightness by a random amount up "
                            "to this share of the full range; 0 turns it off.",
                            min=0.0, max=1.0, relevant_when=AUGMENTING)
    contrast: float = opt(0.2, "Contrast jitter", "Scale contrast by a random factor in "
                          "[1 - c, 1 + c]; 0 turns it off.", min=0.0, max=1.0,
                          relevant_when=AUGMENTING)
    erasing: float = opt(0.0, "Random erasing", "Probability of blanking a random rectangle "
                         "(2% to 33% of the image).", min=0.0, max=1.0,
                         relevant_when=AUGMENTING)
    mixup: float = opt(0.0, "Mixup alpha", "Blend pairs of images and their labels with a "
                       "Beta(alpha, alpha) weight; 0 turns it off (0.2 is usual). Targets "
                       "become soft, so the loss must be cross_entropy or bce.",
                       min=0.0, max=10.0, relevant_when=AUGMENTING)
    cutmix: float = opt(0.0, "CutMix alpha", "Paste a box of another image, labels mixed by "
                        "area, the box's share from Beta(alpha, alpha); 0 turns it off (1.0 is "
                        "usual). With mixup too, each batch uses one of the two.",
                        min=0.0, max=10.0, relevant_when=AUGMENTING)


@dataclass
class PreprocessConfig:
    """One scikit-learn ColumnTransformer for a table, fitted on the training rows only."""

    numeric_impute: str = opt("mean", "Numeric missing values", "Fill a missing number with the "
                              "training split's mean, median or preprocess.numeric_fill, or "
                              "drop_rows: drop every row that misses one.",
                              choices=("mean", "median", "constant", "drop_rows"),
                              relevant_when=TABLE)
    numeric_fill: float = opt(0.0, "Numeric fill value", "The value of numeric_impute = "
                              "'constant'.",
                              relevant_when=[{"data.dataset": {"prefix": ["table:"]},
                                              "preprocess.numeric_impute": ["constant"]}])
    outliers: str = opt("none", "Outliers", "Clip numbers to bounds fitted on the training "
                        "split: clip_iqr [Q1 - k*IQR, Q3 + k*IQR], clip_quantile "
                        "[quantile_low, quantile_high].",
                        choices=("none", "clip_iqr", "clip_quantile"), relevant_when=TABLE)
    iqr_factor: float = opt(1.5, "IQR factor (k)", "Width of the clip_iqr bounds in "
                            "interquartile ranges.", min=0.0, max=1000.0, min_exclusive=True,
                            relevant_when=[{"data.dataset": {"prefix": ["table:"]},
                                            "preprocess.outliers": ["clip_iqr"]}])
    quantile_low: float = opt(0.01, "Lower quantile", "Lower clip_quantile bound.",
                              min=0.0, max=0.5, max_exclusive=True,
                              relevant_when=[{"data.dataset": {"prefix": ["table:"]},
                                              "preprocess.outliers": ["clip_quantile"]}])
    quantile_high: float = opt(0.99, "Upper quantile", "Upper clip_quantile bound.",
                               min=0.5, max=1.0, min_exclusive=True,
                               relevant_when=[{"data.dataset": {"prefix": ["table:"]},
                                               "preprocess.outliers": ["clip_quantile"]}])
    scaling: str = opt("standard", "Scaling", "Numeric scaling fitted on the training split: "
                       "standard (zero mean, unit variance), minmax ([0, 1]), robust (median "
                       "and IQR) or none.", choices=("standard", "minmax", "robust", "none"),
                       relevant_when=TABLE)
    categorical_impute: str = opt("most_frequent", "Categorical missing values", "Fill a "
                                  "missing category with the training split's most frequent "
                                  "one, or with preprocess.categorical_fill as a category of "
                                  "its own.", choices=("most_frequent", "constant"),
                                  relevant_when=TABLE)
    categorical_fill: str = opt("missing", "Categorical fill value", "The category of "
                                "categorical_impute = 'constant'.",
                                relevant_when=[{"data.dataset": {"prefix": ["table:"]},
                                                "preprocess.categorical_impute": ["constant"]}])
    min_frequency: int = opt(1, "Rare category count", "One-hot encoding: categories seen "
                             "fewer times than this in the training split share one "
                             "'infrequent' column; 1 keeps every category. Categories never "
                             "seen in training encode as all zeros.", min=1, max=10**9,
                             relevant_when=TABLE)
    drop_columns: list[str] = opt([], "Drop columns", "Columns the model never reads.",
                                  max_items=100_000, pattern_hint="row_id, notes",
                                  relevant_when=TABLE)
    duplicates: str = opt("keep", "Duplicate rows", "drop: identical rows are kept once, before "
                          "the split.", choices=("keep", "drop"), relevant_when=TABLE)


SAMPLERS = ("tpe", "random", "grid", "cmaes", "gp", "qmc")
PRUNERS = ("median", "hyperband", "successive_halving", "none")


@dataclass
class SearchConfig:
    """A hyperparameter search over the run options (`torchwork search`; `torchwork run`
    ignores it). Its space, ``[search.space]``, is read by engine.experiments.space."""

    objective: str = opt("val_accuracy", "Objective", "The validation metric each trial reports "
                         "per epoch to the pruner; a trial's value is its last epoch's.",
                         choices=MONITORED)
    direction: str = opt("maximize", "Direction", "Whether a higher or a lower objective is "
                         "better.", choices=("maximize", "minimize"))
    sampler: str = opt("tpe", "Sampler", "Optuna's sampler: tpe (Bayesian), random, grid (every "
                       "combination of choices; int ranges and ranges with a step), cmaes, gp "
                       "(Gaussian process), qmc (quasi-random).", choices=SAMPLERS)
    pruner: str = opt("median", "Pruner", "Optuna's pruner, which stops a trial whose "
                      "per-epoch objective is behind: median, hyperband, successive_halving "
                      "or none.", choices=PRUNERS)
    n_trials: int = opt(20, "Trials", "Trials of the whole study, across every worker and "
                        "machine joined to it.", min=1, max=1_000_000)
    timeout: float = opt(0.0, "Timeout (s)", "Each worker starts no trial after this many "
                         "seconds; 0: no limit.", min=0.0, max=1e9)
    workers: int = opt(1, "Workers", "Trial processes on this machine, each on one CPU thread, "
                       "all joined to the one study.", min=1, max=256)
    seed: int = opt(0, "Sampler seed", "Seeds the sampler (worker k of this machine uses "
                    "seed + k); each trial trains with the config's train.seed.",
                    min=0, max=2**31 - 1)
    storage: str = opt("", "Storage", "Where the study lives: any SQLAlchemy URL, e.g. "
                       "postgresql://user:pass@host/db for workers on many machines. Empty: "
                       "search.sqlite in the workspace.")
    study: str = opt("", "Study name", "Empty: the config file's name without .toml.")
    heartbeat: int = opt(10, "Heartbeat (s)", "Each running trial writes a heartbeat this "
                           "often; a trial whose worker missed two is marked failed, so a "
                           "killed worker leaves the study usable.", min=1, max=3600)
    space: dict = field(default_factory=dict)  # "optim.lr" -> {low, high, log} | {choices}


SECTIONS = {
    "data": DataConfig,
    "model": ModelConfig,
    "optim": OptimConfig,
    "schedule": ScheduleConfig,
    "regularization": RegularizationConfig,
    "precision": PrecisionConfig,
    "train": TrainConfig,
    "monitor": MonitorConfig,
    "distill": DistillConfig,
    "augment": AugmentConfig,
    "preprocess": PreprocessConfig,
}
