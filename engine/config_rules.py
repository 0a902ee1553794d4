"""The rules between a run's options: what one value alone cannot say (L-BFGS with
gradient accumulation, a loss that does not fit the task, a cnn on tabular data).

engine.config's RunConfig.validate runs them after each value's own checks; the
task's rules run again in load_dataset once a table's data has decided its task.
"""

from __future__ import annotations

from engine.run_options import (
    CLASSIFICATION_LOSSES,
    FUSED_OPTIMIZERS,
    IMAGE_DATASETS,
    REGRESSION_LOSSES,
    is_image_dataset,
)
from engine.show import show


def task_errors(cfg, task: str) -> list[str]:
    """The rules that depend on the task: checked in validate when the config names the
    task, and by load_dataset once a table's data has decided it."""
    errs = []
    t, d = cfg.train, cfg.data
    allowed = (CLASSIFICATION_LOSSES if task == "classification" else REGRESSION_LOSSES)
    if t.loss != "auto" and t.loss not in allowed:
        errs.append(f"train.loss={show(t.loss)} does not fit the {task} dataset "
                    f"{show(d.dataset)}: use one of auto, {', '.join(allowed)}")
    metric = cfg.regularization.early_stopping_metric
    metrics = ("val_loss", "val_accuracy") if task == "classification" else \
        ("val_loss", "val_mse", "val_mae", "val_r2")
    if metric not in metrics:
        errs.append(f"regularization.early_stopping_metric={show(metric)} is not measured for "
                    f"{task}: use one of {', '.join(metrics)}")
    if task == "regression":
        if t.class_weights != "none":
            errs.append(f"train.class_weights={show(t.class_weights)} needs classification "
                        f"({show(d.dataset)} is regression): set it to 'none'")
        if d.oversample:
            errs.append(f"data.oversample=true needs classification ({show(d.dataset)} is "
                        f"regression): set it to false")
        if cfg.distill.teacher:
            errs.append(f"distill.teacher needs a classification dataset: distillation "
                        f"matches class probabilities, and {show(d.dataset)} is {task}")
    return errs


def cross_checks(cfg) -> list[str]:
    """The rules between options (one value alone is checked by check_value)."""
    errs = []
    o, s, t, d, m = cfg.optim, cfg.schedule, cfg.train, cfg.data, cfg.model
    if o.name == "sgd" and o.nesterov and o.momentum <= 0:
        errs.append(f"optim.nesterov=true needs optim.momentum > 0 (got {o.momentum})")
    if t.strategy == "fsdp":
        r = cfg.regularization
        if r.l1 or r.l2:
            errs.append("regularization.l1/l2 cannot train under train.strategy='fsdp' (each "
                        "rank holds a shard of the weights, and the penalty would be added "
                        "to a loss that is averaged over ranks): use optim.weight_decay, or "
                        "train.strategy='ddp'")
    if (o.implementation == "fused" and o.name not in FUSED_OPTIMIZERS
            and cfg.applies("optim.implementation")):
        errs.append(f"optim.implementation='fused' but torch has no fused {o.name}: use "
                    f"'foreach' (or 'auto'); fused exists for {', '.join(FUSED_OPTIMIZERS)}")
    if o.name == "lbfgs":
        if t.grad_accum_steps != 1:
            errs.append(f"train.grad_accum_steps must be 1 with optim.name='lbfgs' (got "
                        f"{t.grad_accum_steps}): L-BFGS re-evaluates the loss in a closure")
        if o.weight_decay:
            errs.append(f"optim.weight_decay must be 0 with optim.name='lbfgs' (got "
                        f"{o.weight_decay}): use regularization.l2 instead")
        if cfg.precision.amp != "off":
            errs.append(f"precision.amp must be 'off' with optim.name='lbfgs' "
                        f"(got {show(cfg.precision.amp)})")
        if cfg.applies("optim.backbone_lr_scale") and o.backbone_lr_scale < 1:
            errs.append(f"optim.backbone_lr_scale must be 1 with optim.name='lbfgs' (got "
                        f"{o.backbone_lr_scale}): L-BFGS has one learning rate for all "
                        f"layers; use adamw or sgd to train the loaded layers slower")
    if cfg.applies("schedule.milestones") and list(s.milestones) != sorted(set(s.milestones)):
        errs.append(f"schedule.milestones must be strictly increasing "
                    f"(got {show(s.milestones)})")
    if s.name == "plateau" and s.warmup_steps:
        errs.append(f"schedule.warmup_steps must be 0 with schedule.name='plateau' "
                    f"(got {s.warmup_steps}): pick warmup_cosine for a warmup")
    if s.name == "plateau" and s.gamma >= 1.0:
        errs.append(f"schedule.gamma must be < 1 with schedule.name='plateau' (got "
                    f"{s.gamma}): the rate is multiplied by it on a plateau, so 1 never "
                    f"lowers it")
    if s.name in ("cosine", "warmup_cosine", "plateau") and s.min_lr > o.lr:
        errs.append(f"schedule.min_lr ({s.min_lr}) must not exceed optim.lr ({o.lr}) with "
                    f"schedule.name={show(s.name)}: the floor would raise the rate; lower "
                    f"schedule.min_lr")
    if cfg.task != "auto":  # else load_dataset checks these once the data decided
        errs.extend(task_errors(cfg, cfg.task))
    if m.arch == "cnn" and not is_image_dataset(d.dataset):
        errs.append(f"model.arch='cnn' needs image data (data.dataset in "
                    f"{', '.join(IMAGE_DATASETS)} or images:path/to/folder; got "
                    f"{show(d.dataset)}): use 'mlp' or 'resnet'")
    if cfg.applies("data.channels") and d.channels not in (1, 3):
        errs.append(f"data.channels must be 1 (grey) or 3 (colour) (got {d.channels})")
    a = cfg.augment
    if cfg.applies("augment.mixup") and (a.mixup or a.cutmix) and \
            loss_name_of(t.loss, cfg.task) not in ("cross_entropy", "bce"):
        errs.append(f"augment.mixup and augment.cutmix make soft targets, which "
                    f"train.loss={show(t.loss)} cannot take: use cross_entropy or bce, or "
                    f"set augment.mixup = 0 and augment.cutmix = 0")
    if cfg.distill.teacher and o.name == "lbfgs":
        errs.append("distill.teacher does not work with optim.name='lbfgs' (its "
                    "closure re-evaluates the task loss alone): use adamw")
    if t.cv_folds == 1:
        errs.append("train.cv_folds must be 0 (no cross-validation) or at least 2 (got 1)")
    elif t.cv_folds and t.cv_fold > t.cv_folds:
        errs.append(f"train.cv_fold must be 0 (every fold) or 1 to train.cv_folds="
                    f"{t.cv_folds} (got {t.cv_fold})")
    if any(not name.strip(". ") for name in m.freeze):
        errs.append(f"model.freeze must list layer names such as '0' or 'features.0' (got "
                    f"{show(m.freeze)}): an empty name would freeze the whole model")
    if d.dataset.startswith("table:") and not d.target:
        errs.append(f"data.target must name the column to predict of {show(d.dataset)}")
    if d.test_fraction and d.test_path and cfg.applies("data.test_path"):
        errs.append(f"data.test_fraction={d.test_fraction} and data.test_path="
                    f"{show(d.test_path)} both name a test split: keep one")
    if d.test_fraction + d.val_fraction >= 0.95:
        errs.append(f"data.test_fraction ({d.test_fraction}) + data.val_fraction "
                    f"({d.val_fraction}) leave under 5% of the data for training: "
                    f"lower one of them")
    if d.dataset == "synthetic" and d.n_classes > d.n_features:
        errs.append(f"data.n_classes ({d.n_classes}) must not exceed data.n_features "
                    f"({d.n_features}) for synthetic data")
    return errs


def loss_name_of(loss: str, task: str) -> str:
    """The loss ``train.loss`` stands for: auto is cross_entropy or mse by task."""
    if loss != "auto":
        return loss
    return "cross_entropy" if task == "classification" else "mse"
