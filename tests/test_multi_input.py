"""Models with several inputs (a tokenised text encoder): measured with seeded valid token ids."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from tests.conftest import run_cli

torch = pytest.importorskip("torch")


class _Block(torch.nn.Module):
    """A BERT-style layer as people write it: attention by hand, LayerNorm, GELU MLP."""

    def __init__(self, d: int, heads: int, ff: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv, self.proj = torch.nn.Linear(d, 3 * d), torch.nn.Linear(d, d)
        self.norm1, self.norm2 = torch.nn.LayerNorm(d), torch.nn.LayerNorm(d)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(d, ff), torch.nn.GELU(), torch.nn.Linear(ff, d))

    def forward(self, x, mask):
        b, t, d = x.shape
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in self.qkv(x).chunk(3, -1))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(d // self.heads)
        att = att.masked_fill(mask[:, None, None, :] == 0, -1e4).softmax(-1)
        x = self.norm1(x + self.proj((att @ v).transpose(1, 2).reshape(b, t, d)))
        return self.norm2(x + self.mlp(x))


class _Encoder(torch.nn.Module):
    def __init__(self, vocab: int = 500, d: int = 32, layers: int = 2) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, d)
        self.blocks = torch.nn.ModuleList([_Block(d, 4, 2 * d) for _ in range(layers)])
        self.head = torch.nn.Linear(d, 2)

    def forward(self, input_ids, attention_mask):
        x = self.embed(input_ids)
        for block in self.blocks:
            x = block(x, attention_mask)
        return self.head(x.mean(1))


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    import warnings

    path = tmp_path_factory.mktemp("bert") / "encoder.onnx"
    ids, mask = torch.randint(0, 500, (1, 64)), torch.ones(1, 64, dtype=torch.long)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_Encoder().eval(), (ids, mask), str(path), input_names=["input_ids", "attention_mask"],
                          output_names=["logits"], opset_version=17, dynamo=False,
                          dynamic_axes={"input_ids": {1: "seq"}, "attention_mask": {1: "seq"}})
    return path


def test_token_feeds_are_valid_ids_and_masks(encoder):
    import onnx

    from devices.base import input_feed
    from hwprof.api import with_static_input

    model = with_static_input(onnx.load(str(encoder)), {"input_ids": (1, 64), "attention_mask": (1, 64)})
    feed = input_feed(model)
    assert feed["input_ids"].dtype == np.int64 and 0 <= feed["input_ids"].min() and feed["input_ids"].max() < 500
    assert len(np.unique(feed["input_ids"])) > 10 and (feed["attention_mask"] == 1).all()
    np.testing.assert_array_equal(feed["input_ids"], input_feed(model)["input_ids"])  # seeded


@pytest.mark.parametrize("device", ["cpu", "openvino-cpu"])
def test_measure_a_torch_exported_text_encoder(encoder, tmp_path, device):
    if device == "openvino-cpu":
        pytest.importorskip("openvino")
    out = tmp_path / "m"
    run_cli("hwprof", "measure", "--device", device, "--model", str(encoder), "--input-shape", "input_ids=1,64",
            "--input-shape", "attention_mask=1,64", "--min-time", "0.05", "--out", str(out), check=True)
    rows = pd.concat(pd.read_parquet(p) for p in out.glob("*.parquet"))
    assert len(rows) == 1 and rows.median_ms.iloc[0] > 0 and rows.macs.iloc[0] > 64 * 32 * 32
    assert json.loads(rows.arch_json.iloc[0])["schema"] == "hwprof.onnx/1"


@pytest.mark.parametrize("shapes,expected", [
    ([], "dynamic dimension"),
    (["1,64"], "give one shape per input"),
    (["input_ids=1,64", "token=1,64"], "no input 'token'"),
    (["input_ids=1,64", "1,64"], "need input names"),
])
def test_multi_input_bad_shapes_are_one_line(encoder, tmp_path, shapes, expected):
    args = [a for s in shapes for a in ("--input-shape", s)]
    proc = run_cli("hwprof", "measure", "--device", "cpu", "--model", str(encoder), *args, "--out", str(tmp_path / "x"))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and expected in lines[0], proc.stderr
    assert not (tmp_path / "x").exists()
