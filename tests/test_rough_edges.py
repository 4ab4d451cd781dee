"""The rough edges a new user found (issue 40): bad input is one line and exit 2, inputs are never
overwritten, every JSON hwprof writes is strict, and the text says what it means."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
from onnx import TensorProto, helper

from tests.conftest import REPO, run_cli


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> dict[str, Path]:
    """A simulated dataset, a predictor fitted on it, an ONNX model, and files that are not hwprof's."""
    root = tmp_path_factory.mktemp("edges")
    data = root / "npu"
    run_cli("hwprof", "measure", "--device", "kirin-npu", "--space", "ofa", "-n", "12", "--mode", "e2e",
            "--out", str(data), check=True)
    run_cli("hwprof", "fit-predictor", "--data", str(data), "--model", "additive", "--out", str(root / "npu.pred"),
            check=True)
    run_cli("nas", "sample", "--space", "ofa", "-n", "1", "--out", str(root / "one.json"), check=True)
    run_cli("nas", "export", str(root / "one.json"), "--onnx", str(root / "m.onnx"), check=True)
    (root / "notes.jsonl").write_text('{"my": "notes"}\n')
    foreign = root / "foreign"
    foreign.mkdir()
    pd.DataFrame({"a": [1, 2], "b": [0.5, 0.7]}).to_parquet(foreign / "part-0.parquet")
    mixed = root / "mixed"
    mixed.mkdir()
    for part in data.glob("*.parquet"):
        (mixed / part.name).write_bytes(part.read_bytes())
    pd.DataFrame({"x": [1]}).to_parquet(mixed / "zz-foreign.parquet")
    search_like = root / "search-out"
    search_like.mkdir()
    pd.DataFrame({"arch_hash": ["a"], "score": [1.0]}).to_parquet(search_like / "history.parquet")
    (search_like / "summary.json").write_text("{}")
    # a model that loads but fails when run: Reshape of 4 values to 3x3
    node = helper.make_node("Reshape", ["x", "shape"], ["y"])
    graph = helper.make_graph([node], "bad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 3])],
                              [helper.make_tensor("shape", TensorProto.INT64, [2], [3, 3])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), root / "fails.onnx")
    return {"root": root, "data": data, "pred": root / "npu.pred", "onnx": root / "m.onnx",
            "notes": root / "notes.jsonl", "foreign": foreign, "mixed": mixed, "search": search_like,
            "fails": root / "fails.onnx"}


CASES = {
    "search latency nan": (["nas", "search", "--space", "ofa", "--target", "kirin-npu", "--latency-ms", "nan"],
                           "--latency-ms"),
    "search latency inf": (["nas", "search", "--space", "ofa", "--target", "kirin-npu", "--latency-ms", "inf"],
                           "--latency-ms"),
    "search few-shot 0": (["nas", "search", "--space", "ofa", "--target", "kirin-npu", "--few-shot", "0",
                           "--transfer-from", "{pred}"], "--few-shot"),
    "search param wrong kind": (["nas", "search", "--space", "ofa", "--target", "kirin-npu", "--predictor", "{pred}",
                                 "--param", "population=abc"], "population"),
    "search param unknown": (["nas", "search", "--space", "ofa", "--target", "kirin-npu", "--predictor", "{pred}",
                              "--param", "bogus=1"], "no setting 'bogus'"),
    "cross-eval latency inf": (["nas", "cross-eval", "--space", "ofa", "--targets", "kirin-npu,hexagon-dsp",
                                "--latency-ms", "kirin-npu=inf"], "--latency-ms"),
    "advise tolerance nan": (["hwprof", "advise", "{onnx}", "--device", "kirin-npu", "--tolerance", "nan"],
                             "--tolerance"),
    "advise tolerance negative": (["hwprof", "advise", "{onnx}", "--device", "kirin-npu", "--tolerance", "-1"],
                                  "--tolerance"),
    "advise rounds 0": (["hwprof", "advise", "{onnx}", "--device", "kirin-npu", "--rounds", "0"], "--rounds"),
    "advise fix onto its input": (["hwprof", "advise", "{onnx}", "--device", "kirin-npu", "--fix", "{onnx}"],
                                  "would be overwritten"),
    "advise fix onto a foreign file": (["hwprof", "advise", "{onnx}", "--device", "kirin-npu", "--fix", "{notes}"],
                                       "--force"),
    "advise another device's predictor": (["hwprof", "advise", "{onnx}", "--device", "hexagon-dsp",
                                           "--predictor", "{pred}"], "fitted for device 'kirin-npu'"),
    "fit-predictor out unwritable": (["hwprof", "fit-predictor", "--data", "{data}", "--out", "/proc/x.pred"],
                                     "cannot be written"),
    "fit-predictor out foreign file": (["hwprof", "fit-predictor", "--data", "{data}", "--out", "{notes}"],
                                       "--force"),
    "fit-predictor foreign parquet": (["hwprof", "fit-predictor", "--data", "{foreign}", "--out", "{root}/f.pred"],
                                      "not an hwprof measurement part"),
    "fit-predictor foreign part among ours": (["hwprof", "fit-predictor", "--data", "{mixed}", "--out",
                                               "{root}/g.pred"], "zz-foreign.parquet"),
    "evaluate on a search output": (["hwprof", "evaluate", "--predictor", "{pred}", "--data", "{search}"],
                                    "not an hwprof measurement part"),
    "measure a model that fails when run": (["hwprof", "measure", "--device", "cpu", "--model", "{fails}",
                                             "--out", "{root}/never"], "fails when run"),
    "measure time cap 0": (["hwprof", "measure", "--device", "cpu", "--space", "ofa", "--time-cap", "0",
                            "--out", "{root}/never"], "--time-cap"),
    "measure min time negative": (["hwprof", "measure", "--device", "cpu", "--space", "ofa", "--min-time", "-1",
                                   "--out", "{root}/never"], "--min-time"),
}


def test_bad_input_sweep_one_line_exit_2_nothing_left(work):
    """Every case: exit 2, one line on stderr naming what is wrong, no traceback, no file written or changed.

    The commands run three at a time (each is a fresh process, so they cannot affect each other's
    outcome; none of them may write anything)."""
    from concurrent.futures import ThreadPoolExecutor

    before = {p: p.stat().st_mtime_ns for p in work["root"].rglob("*") if p.is_file()}
    with ThreadPoolExecutor(3) as pool:
        procs = dict(zip(CASES, pool.map(lambda case: run_cli(*[a.format(**work) for a in CASES[case][0]]),
                                         CASES)))
    wrong = []
    for case, proc in procs.items():
        lines = [x for x in proc.stderr.splitlines() if x.strip()]
        if proc.returncode != 2 or len(lines) != 1 or "Traceback" in proc.stderr or CASES[case][1] not in lines[0]:
            wrong.append(f"{case}: exit {proc.returncode}: {proc.stderr.strip()[-300:]}")
    assert not wrong, "\n".join(wrong)
    after = {p: p.stat().st_mtime_ns for p in work["root"].rglob("*") if p.is_file()}
    assert after == before, "a bad command wrote or changed a file"
    assert not (work["root"] / "never").exists()


def test_force_lets_fit_predictor_replace_a_foreign_file(work, tmp_path):
    target = tmp_path / "old.txt"
    target.write_text("x")
    proc = run_cli("hwprof", "fit-predictor", "--data", str(work["data"]), "--model", "additive", "--out",
                   str(target), "--force")
    assert proc.returncode == 0, proc.stderr
    # and a predictor file is replaced without --force: it is an hwprof output of the same kind
    assert run_cli("hwprof", "fit-predictor", "--data", str(work["data"]), "--model", "additive", "--out",
                   str(target)).returncode == 0


def _finite_everywhere(obj) -> bool:
    if isinstance(obj, float):
        return math.isfinite(obj)
    if isinstance(obj, dict):
        return all(_finite_everywhere(v) for v in obj.values())
    if isinstance(obj, list):
        return all(_finite_everywhere(v) for v in obj)
    return True


def _strict_load(text: str):
    def refuse(token):
        raise ValueError(f"non-strict JSON token {token}")
    return json.loads(text, parse_constant=refuse)


def test_every_json_hwprof_writes_is_strict(work, tmp_path):
    from hwprof.io import dumps

    assert _strict_load(dumps({"a": float("nan"), "b": [float("inf"), 1.0], "c": np.float64("nan")})) == \
        {"a": None, "b": [None, 1.0], "c": None}
    out = tmp_path / "search"
    proc = run_cli("nas", "search", "--space", "ofa", "--target", "kirin-npu", "--predictor", str(work["pred"]),
                   "--budget", "40", "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    assert _finite_everywhere(_strict_load(proc.stdout))
    written = list(out.glob("*.json"))
    assert written
    for path in written:
        _strict_load(path.read_text())
    for args in (["hwprof", "devices", "--json"], ["hwprof", "predictors", "--json"],
                 ["hwprof", "evaluate", "--predictor", str(work["pred"]), "--data", str(work["data"]), "--json"]):
        proc = run_cli(*args)
        assert proc.returncode == 0, (args, proc.stderr)
        _strict_load(proc.stdout)


def test_rich_does_not_eat_brackets_in_help():
    assert "[[models]]" in run_cli("hwprof", "bench", "--help").stdout


def test_tables_keep_their_columns_when_piped():
    proc = run_cli("hwprof", "devices")  # run_cli sets COLUMNS=200; a pipe without COLUMNS gets the wide console
    assert "kirin-npu" in proc.stdout and "kirin-n…" not in proc.stdout
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    piped = subprocess.run([str(Path(sys.executable).parent / "hwprof"), "devices"], capture_output=True, text=True,
                           env=env)
    assert "…" not in piped.stdout


def test_dynamic_shape_hint_suggests_an_image_shape_for_an_image_input(tmp_path):
    graph = helper.make_graph([helper.make_node("Relu", ["input"], ["y"])], "dyn",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, "H", "W"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, "H", "W"])])
    path = tmp_path / "dyn.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    proc = run_cli("hwprof", "measure", "--device", "cpu", "--model", str(path), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "--input-shape input=1,3,224,224" in proc.stderr, proc.stderr


def test_readme_quick_tour_names_only_files_it_creates():
    text = (REPO / "README.md").read_text()
    tour = text[text.index("## Quick tour"):text.index("### Python API")]
    assert "nine search spaces" in tour
    for name in ("one.json", "net.onnx", "cpu-krf.pred", "subnet.json", "runs/npu-test"):
        first = tour.index(name)
        assert "--out " + name in tour[:first + len(name)] or "> " + name in tour[:first + len(name)] or \
            "--onnx " + name in tour[:first + len(name)], name
    assert "from hwprof.build_torch import build_torch" in text
