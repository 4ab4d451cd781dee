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
    (root / "notes.json").write_text('{"my": "notes"}\n')
    (root / "net.json").write_text((root / "one.json").read_text().splitlines()[0])
    (root / "suite.toml").write_text('name = "t"\n[protocol]\nmin_samples = 20\n[[models]]\nname = "net"\n'
                                     'arch = "net.json"\n[[devices]]\nname = "kirin-npu"\n')
    (root / "photo.png").write_bytes(_user_png())
    run_cli("nas", "export", str(root / "one.json"), "--format", "ofa", "--out", str(root / "ofa.json"), check=True)
    return {"root": root, "data": data, "pred": root / "npu.pred", "onnx": root / "m.onnx",
            "notes": root / "notes.jsonl", "notes_json": root / "notes.json", "foreign": foreign, "mixed": mixed,
            "search": search_like, "fails": root / "fails.onnx", "one": root / "one.json",
            "suite": root / "suite.toml", "photo": root / "photo.png", "ofa": root / "ofa.json"}


def _user_png() -> bytes:
    """A PNG that hwprof did not write (a user's own image)."""
    import matplotlib

    matplotlib.use("Agg")
    import io

    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1, 1))
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


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
    "sample out foreign file": (["nas", "sample", "--space", "ofa", "--out", "{notes}"], "--force"),
    "import out onto its input": (["nas", "import", "{ofa}", "--out", "{ofa}", "--force"], "would be overwritten"),
    "import out foreign file": (["nas", "import", "{ofa}", "--out", "{notes}"], "--force"),
    "export onnx onto a foreign model": (["nas", "export", "{one}", "--onnx", "{fails}"], "--force"),
    "export ofa out onto its input": (["nas", "export", "{one}", "--format", "ofa", "--out", "{one}", "--force"],
                                      "would be overwritten"),
    "export ofa out foreign file": (["nas", "export", "{one}", "--format", "ofa", "--out", "{notes_json}"],
                                    "--force"),
    "bench out foreign file": (["hwprof", "bench", "{suite}", "--out", "{notes_json}"], "--force"),
    "bench out onto its suite": (["hwprof", "bench", "{suite}", "--out", "{suite}", "--force"],
                                 "would be overwritten"),
    "bench out equals baseline out": (["hwprof", "bench", "{suite}", "--out", "{root}/r.json", "--baseline",
                                       "{suite}", "--baseline-out", "{root}/r.json"], "same file"),
    "evaluate plot onto a user's png": (["hwprof", "evaluate", "--predictor", "{pred}", "--data", "{data}",
                                         "--plot", "{photo}"], "--force"),
    "evaluate plot onto its predictor": (["hwprof", "evaluate", "--predictor", "{pred}", "--data", "{data}",
                                          "--plot", "{pred}", "--force"], "would be overwritten"),
    "report plot onto a foreign file": (["hwprof", "report", "{data}", "--plot", "{notes}"], "--force"),
    "reduce-space out foreign file": (["hwprof", "reduce-space", "--space", "ofa", "--device", "kirin-npu",
                                       "--data", "{data}", "--out", "{notes_json}"], "--force"),
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


def test_outputs_of_the_same_kind_are_replaced_and_force_replaces_foreign_ones(work, tmp_path):
    """A rerun may overwrite what hwprof wrote; a user's file only with --force."""
    archs, onnx_file, plot = tmp_path / "a.jsonl", tmp_path / "m.onnx", tmp_path / "p.png"
    for _ in range(2):  # the second run replaces the first run's outputs without --force
        run_cli("nas", "sample", "--space", "ofa", "-n", "2", "--out", str(archs), check=True)
        run_cli("nas", "export", str(work["one"]), "--onnx", str(onnx_file), check=True)
        run_cli("hwprof", "evaluate", "--predictor", str(work["pred"]), "--data", str(work["data"]),
                "--plot", str(plot), check=True)
    assert len(archs.read_text().splitlines()) == 2
    photo = tmp_path / "photo.png"
    photo.write_bytes(work["photo"].read_bytes())
    run_cli("hwprof", "evaluate", "--predictor", str(work["pred"]), "--data", str(work["data"]),
            "--plot", str(photo), "--force", check=True)
    assert photo.read_bytes() != work["photo"].read_bytes()


def test_png_stamp_marks_only_what_hwprof_wrote(work, tmp_path):
    from hwprof.io import atomic_write_via, png_text_chunks, stamp_png
    from hwprof.outputs import is_hwprof_png

    user = work["photo"].read_bytes()
    assert not is_hwprof_png(work["photo"])
    stamped = stamp_png(user)
    assert (b"hwprof", b"written by hwprof") in png_text_chunks(stamped)
    assert stamped.replace(stamped[33:33 + 12 + len(b"hwprof\x00written by hwprof")], b"") == user
    atomic_write_via(tmp_path / "x.png", lambda p: Path(p).write_bytes(user), ".png")
    assert is_hwprof_png(tmp_path / "x.png")
    assert stamp_png(b"not a png") == b"not a png"


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
    assert "torch-timm" in " ".join(run_cli("hwprof", "measure", "--help").stdout.split())


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


def test_a_winner_over_the_target_gets_a_warning_line():
    from nas.search_report import over_target_warning

    summary = {"latency_constraint_ms": 4.0,
               "best": {"meets_constraint_measured": False, "measured_latency_ms": 4.036,
                        "measured_vs_constraint": 0.009}}
    line = over_target_warning(summary, "cpu")
    assert line.startswith("warning: the winner measured 4.036 ms on cpu, +0.9% over the 4 ms target")
    assert "\n" not in line
    summary["best"].update(meets_constraint_measured=True, measured_latency_ms=3.9, measured_vs_constraint=-0.025)
    assert over_target_warning(summary, "cpu") is None
    assert over_target_warning({"latency_constraint_ms": None, "best": {"meets_constraint_measured": None}},
                               "kirin-npu") is None


def test_sweep_table_leads_with_the_ratio_and_says_why_equal_times_can_differ():
    """profile-space --compare on hybrid showed equal times with different ratios and no word on why."""
    from rich.console import Console

    from hwprof.space_profile import sweep_tables

    sweep = {"variable": "attention", "networks": 12, "options": ["none", "mhsa"], "simulated": True,
             "median_ratio": [1.0, 1.31], "median_ms": [3.2, 4.1], "largest_within": {}}
    other = dict(sweep, median_ratio=[1.0, 1.22], median_ms=[3.2, 4.1])
    console = Console(record=True, width=400)
    for table in sweep_tables({"kirin-npu": [sweep], "myriad-vpu": [other]}):
        console.print(table)
    text = console.export_text()
    assert "1.31x (4.100 ms)" in text and "1.22x (4.100 ms)" in text
    assert "two equal latencies can come with different ratios" in " ".join(text.split())


def test_devices_table_keeps_bracketed_text():
    """rich read "[profile ...]" and "[litert]" as markup and dropped them."""
    proc = run_cli("hwprof", "devices", check=True)
    kirin = next(line for line in proc.stdout.splitlines() if "kirin-npu" in line)
    assert "[profile " in kirin


def test_measure_summary_names_the_target_with_its_dtype(tmp_path):
    """An int8 run said "rows for cpu" (the device name) instead of the target it measured."""
    proc = run_cli("hwprof", "measure", "--device", "cpu:int8", "--space", "ofa", "-n", "1", "--mode", "e2e",
                   "--protocol", "contiguous", "--min-time", "0.02", "--out", str(tmp_path / "d"), check=True)
    assert "rows for cpu:int8" in proc.stdout


def test_sampling_many_networks_shows_progress(tmp_path):
    """Sampling 20,000 networks printed nothing for 15 s; on a terminal it now counts them."""
    import os
    import subprocess
    import sys

    exe = Path(sys.executable).parent / "nas"
    proc = subprocess.run([str(exe), "sample", "--space", "ofa", "-n", "1200", "--json"], capture_output=True,
                          text=True, env={**os.environ, "TTY_COMPATIBLE": "1"}, check=True)
    assert "sampling networks from ofa: 1000 of 1200" in proc.stderr
    assert len(proc.stdout.splitlines()) == 1200


def test_a_damaged_predictor_file_is_refused_in_one_line_wherever_it_is_damaged(work):
    """A byte flipped anywhere (zip headers, the manifest, a compressed member) is an HwprofError."""
    from hwprof.errors import HwprofError
    from hwprof.predictors import store

    raw = work["pred"].read_bytes()
    for position in range(0, len(raw), max(len(raw) // 97, 1)):
        damaged = bytearray(raw)
        damaged[position] ^= 0xFF
        try:
            store.loads(bytes(damaged), "damaged.pred")
        except HwprofError:
            continue
        # a flip the format does not need (zip padding, an unused field) may leave a loadable predictor
