"""FSDP2 under torchrun (CPU, gloo): the same weights as one process with the whole batch,
one full checkpoint, and what a block is for the built-in and custom models."""

import json
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

from engine.config import ConfigError
from engine.distributed.fsdp import blocks_of, default_blocks, mixed_precision
from engine.models import build_model
from engine.models.resnet import BasicBlock, ResidualMLPBlock
from engine.training.checkpoint import load_checkpoint
from engine.training.sharded import read_metadata, shards_of
from engine.training.validation import evaluate
from engine.workspace import Workspace

from .test_distributed import ROOT, assert_same_weights, one_process, small_config, two_process_run

# validation: 1025 samples, 512 and 513 per rank, so rank 1 has one batch of 512 more
UNEVEN_VALIDATION = {"data.n_samples": 2048, "data.val_fraction": 0.5002}


def fsdp_config(**changes):
    return small_config(**{"train.strategy": "fsdp", **changes})


def test_two_fsdp_processes_of_batch_b_train_as_one_process_of_batch_2b(tmp_path):
    changes = {**UNEVEN_VALIDATION, "regularization.early_stopping_patience": 5}
    ws, out = two_process_run(tmp_path, fsdp_config(**changes))
    single = one_process(small_config(**{**changes, "data.batch_size": 64}))
    # last.pt holds the whole model, gathered from both ranks' shards (not rank 0's half)
    run, _ = assert_same_weights(ws, single.model.state_dict())
    started = out[0]
    assert any("fsdp: fully_shard on 2 block(s)" in note for note in started["notes"])
    epochs = [e for e in out if e["event"] == "epoch"]
    assert epochs[-1]["val_accuracy"] == pytest.approx(single.validate()["val_accuracy"])
    assert epochs[-1]["val_loss"] == pytest.approx(single.validate()["val_loss"], rel=1e-4)
    # and the optimizer's whole state, in the shards both ranks wrote: each momentum buffer
    # with its parameter's full shape (not one rank's half)
    path = run.dir / "checkpoints" / "last.pt"
    saved = load_checkpoint(path, map_location="cpu")
    metadata = read_metadata(shards_of(path, saved)).state_dict_metadata
    shapes = {name: tuple(p.shape) for name, p in single.model.named_parameters()}
    momenta = {key[len("optimizer.state."):-len(".momentum_buffer")]: tuple(meta.size)
               for key, meta in metadata.items()
               if key.startswith("optimizer.state.") and key.endswith(".momentum_buffer")}
    assert momenta == shapes
    # the report at the end is made by rank 0 alone, from the whole model
    log = (run.dir / "log.txt").read_text()
    assert "evaluation on the validation split (1025 samples): accuracy" in log


@pytest.mark.slow
def test_gradient_accumulation_and_clipping_under_fsdp_match_one_process(tmp_path):
    # clipping at 0.1 changes these weights (by up to 0.06): the norm is of the whole model
    ws, _ = two_process_run(tmp_path, fsdp_config(**{"train.grad_accum_steps": 3,
                                                     "train.grad_clip_norm": 0.1}))
    single = one_process(small_config(**{"data.batch_size": 64, "train.grad_accum_steps": 3,
                                         "train.grad_clip_norm": 0.1}))
    assert_same_weights(ws, single.model.state_dict())


def test_regularization_penalties_are_refused_under_fsdp_with_the_fix():
    with pytest.raises(ConfigError, match=r"regularization.l1/l2 .*fsdp.*optim.weight_decay"):
        fsdp_config(**{"regularization.l2": 1e-4}).validate()
    small_config(**{"regularization.l2": 1e-4}).validate()  # ddp and one process: fine


def test_validation_makes_the_agreed_number_of_forward_passes():
    cfg = small_config()
    trainer = one_process(cfg)
    calls = []

    def forward(x):
        calls.append(len(x))
        return trainer.model(x)

    metrics = evaluate(forward, trainer.model, trainer.val_loader, trainer.loss_fn,
                       trainer.precision, trainer.data, channels_last=False,
                       device=trainer.device, forwards=3)
    assert calls == [205, 0, 0]  # the padding passes are empty, and change no metric
    assert metrics == pytest.approx(trainer.validate())


def built(arch, shape=(16,), **model):
    cfg = small_config(**{"model.arch": arch, **{f"model.{k}": v for k, v in model.items()}})
    return build_model(cfg, shape, 3)


def test_the_built_in_models_shard_layer_by_layer_and_leave_norms_to_the_root():
    mlp = built("mlp", hidden=[32, 32], batch_norm=True)
    assert [type(b) for b in default_blocks(mlp)] == [nn.Linear] * 3
    cnn = built("cnn", (1, 8, 8), channels=[4, 8], batch_norm=True)
    assert [type(b) for b in default_blocks(cnn)] == [nn.Conv2d, nn.Conv2d, nn.Linear, nn.Linear]
    resnet = built("resnet", (3, 8, 8), channels=[4, 8])
    assert [type(b) for b in default_blocks(resnet)] == [nn.Conv2d, BasicBlock, BasicBlock,
                                                         nn.Linear]
    tabular = built("resnet", hidden=[16, 16])
    assert [type(b) for b in blocks_of(tabular)] == [nn.Linear, ResidualMLPBlock,
                                                     ResidualMLPBlock, nn.Linear]


CUSTOM = '''
import torch
from torch import nn

{declare}


class Net(nn.Module):
    def __init__(self, features, outputs):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(features, 16),
                                  nn.TransformerEncoderLayer(16, 2, 32, batch_first=True),
                                  nn.TransformerEncoderLayer(16, 2, 32, batch_first=True))
        self.head = nn.Linear(16, outputs)

    def forward(self, x):
        return self.head(self.body[1:](self.body[0](x).unsqueeze(1)).squeeze(1))


def build_model(input_shape, num_outputs):
    return Net(input_shape[0], num_outputs)
'''


def custom(tmp_path, declare):
    path = tmp_path / "net.py"
    path.write_text(CUSTOM.format(declare=declare))
    return built(f"custom:{path}")


def test_a_custom_file_names_its_blocks_by_class_or_by_a_function(tmp_path):
    by_class = custom(tmp_path, "FSDP_BLOCKS = (nn.TransformerEncoderLayer,)")
    assert list(blocks_of(by_class)) == list(by_class.body[1:])  # not their inner Linears
    by_function = custom(tmp_path, "def FSDP_BLOCKS(model):\n    return [model.head]")
    assert blocks_of(by_function) == [by_function.head]
    undeclared = custom(tmp_path, "")
    assert blocks_of(undeclared) == [undeclared.body, undeclared.head]


@pytest.mark.parametrize("declare, message", [
    ("FSDP_BLOCKS = (nn.GRU,)", r"FSDP_BLOCKS in .*net.py: the model has no module of class GRU"),
    ("FSDP_BLOCKS = ('layer',)", r"FSDP_BLOCKS in .*net.py: expected a tuple of torch.nn.Module"),
    ("def FSDP_BLOCKS(model):\n    return [nn.Linear(2, 2)]",
     r"FSDP_BLOCKS in .*net.py: it must return submodules of the model"),
    ("def FSDP_BLOCKS(model):\n    return model.nothing",
     r"FSDP_BLOCKS in .*net.py: calling it on the model raised AttributeError"),
])
def test_a_wrong_block_declaration_is_one_line_naming_the_file(tmp_path, declare, message):
    with pytest.raises(ConfigError, match=message):
        blocks_of(custom(tmp_path, declare))


def test_mixed_precision_gathers_in_the_amp_dtype_on_cuda_and_reduces_in_fp32():
    policy = mixed_precision("bf16", torch.device("cuda", 0))
    assert (policy.param_dtype, policy.reduce_dtype) == (torch.bfloat16, torch.float32)
    assert mixed_precision("fp16", torch.device("cuda", 0)).param_dtype == torch.float16
    assert mixed_precision("bf16", torch.device("cpu")).param_dtype is None  # autocast alone


@pytest.mark.cuda
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs (nccl)")
def test_fsdp_on_two_gpus_with_bf16_gathers_trains_and_saves_the_whole_fp32_model(tmp_path):
    cfg = fsdp_config(**{"train.device": "cuda", "precision.amp": "bf16",
                         "optim.name": "adamw", "optim.lr": 1e-3, "train.epochs": 3})
    ws, out = two_process_run(tmp_path, cfg)
    assert out[0]["device"].startswith("cuda")
    epochs = [e for e in out if e["event"] == "epoch"]
    assert epochs[-1]["val_loss"] < epochs[0]["val_loss"]
    with Workspace(ws) as store:
        run = store.list_runs()[0]
    saved = load_checkpoint(run.dir / "checkpoints" / "last.pt", map_location="cpu")
    single = one_process(small_config(**{"data.batch_size": 64}))
    for name, value in single.model.state_dict().items():  # whole, and kept in fp32
        assert saved["model"][name].shape == value.shape
        assert saved["model"][name].dtype == value.dtype


@pytest.mark.slow
def test_ranks_finish_together_when_rank_0_writes_no_checkpoint(tmp_path):
    """A Trainer with no checkpoint folder (bench/distributed.py --gpu-fit's worker): the other
    ranks must not wait in a gather rank 0 never starts."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TORCHWORK_COLLECTIVE_TIMEOUT_S": "60",
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc-per-node=2", "bench/distributed.py", "--fit-worker",
                           "--strategy=fsdp", "--width=16", "--layers=2", "--device=cpu"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    outcome = json.loads(proc.stdout.strip().splitlines()[-1])
    assert outcome["fits"] and outcome["params"] == 256 * 16 + 16 + 16 * 16 + 16 + 16 * 4 + 4
