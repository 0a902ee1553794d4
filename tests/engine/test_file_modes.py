"""Every file Torchwork exports has the permissions the user's umask gives any new file.

Temporary files from tempfile.mkstemp are 0600 whatever the umask; an export
renamed into place from one came out private while others came out 0644.
"""

import gzip
import os
import stat

import pytest
import torch
from torch import nn

from engine.compression.measure import Candidate
from engine.compression.pipeline import CompressionResult, save_candidate
from engine.compression.quantize import quantize_onnx
from engine.config import RunConfig
from engine.export import export_model
from engine.files import atomic_path
from engine.profiling.traces import export_trace
from engine.training.checkpoint import save_checkpoint

EXAMPLE = torch.randn(4, 6)


@pytest.fixture(params=[0o022, 0o077, 0o002])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)).eval()


def test_every_export_follows_the_umask(umask, model, tmp_path):
    want = 0o666 & ~umask
    written = [export_model(model, EXAMPLE, fmt, tmp_path / f"m.{fmt}").path
               for fmt in ("safetensors", "pt2", "onnx")]
    written.append(quantize_onnx(tmp_path / "m.onnx", tmp_path / "m.int8.onnx"))
    result = CompressionResult(example=EXAMPLE)
    result.add(Candidate("int8", "onnxruntime", 1, 1, 1, 1, 1.0, 1.0, "acc", 1.0,
                         path=str(written[-1])), model)
    written.append(save_candidate(result, "int8", "onnx", tmp_path / "shipped.onnx"))
    trace = tmp_path / "t.pt.trace.json"
    trace.write_text('{"traceEvents": []}')
    written.append(export_trace(trace, tmp_path / "plain-out"))
    gz = tmp_path / "g.pt.trace.json.gz"
    gz.write_bytes(gzip.compress(b'{"traceEvents": []}'))
    written.append(export_trace(gz, tmp_path / "gz-out.json.gz"))
    config = tmp_path / "saved.toml"
    RunConfig().save(config)
    written.append(config)
    written.append(save_checkpoint({"step": 1}, tmp_path / "last.pt"))
    assert {p.name: oct(mode(p)) for p in written} == {p.name: oct(want) for p in written}
    assert not list(tmp_path.glob(".*"))  # no temporary file left


def test_overwriting_takes_the_new_files_mode_and_a_failure_keeps_the_old_file(tmp_path):
    target = tmp_path / "saved.toml"
    target.write_text("old")
    os.chmod(target, 0o600)
    old = os.umask(0o022)
    try:
        RunConfig().save(target)
        assert mode(target) == 0o644
        with pytest.raises(RuntimeError), atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("writer failed")
    finally:
        os.umask(old)
    assert RunConfig.load(target) == RunConfig()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saved.toml"]
