"""The deployment runtimes on this machine: correctness, timing overhead, INT8 speed-ups, predictors.

Sections (``--sections``, default all but ``predictors``):

- ``outputs``: every space's sampled networks on ``litert-cpu`` and
  ``openvino-cpu``, float32 and int8, against onnxruntime float32 on the same
  seeded inputs. float32: max |diff| relative to the reference output's range
  (LiteRT with ONNX's exact padding; the default SAME padding moves the odd
  padding row of stride-2 layers, which changes values, not cost). int8:
  top-1 agreement with float32 over seeded inputs (reported, not asserted:
  the weights are random, so logits are close together).
- ``overhead``: each adapter's median through hwprof's protocol against a plain
  timing loop over the runtime's own call (target within 5%), and ``hwprof
  measure`` wall time against the inference time it records (target <= 1.3x)
  over a run of 60 networks, with where the rest went: building the models,
  the runtime loading (compiling) them, the drift reference, everything else.
- ``depthwise``: one depthwise convolution per kernel size (3, 5, 7; stride 1
  and 2), written with ``onnx.helper``, on LiteRT with XNNPACK against
  LiteRT's builtin kernels, float32 and int8, SAME padding and an explicit
  PAD: whether a slow block is our lowering or the runtime's kernel.
- ``speedup``: int8/float32 speed-up per block type (kernel x expand ratio)
  on each runtime, from block rows of the same ofa networks (table + plot).
- ``predictors``: for each real target, 300 train / 200 test ofa networks
  measured in separate runs, drift-corrected; every predictor against
  ``flops-linear`` (within +-10%, MAPE, Kendall tau), with the target's
  test-retest figure (the test networks measured twice). Hours of quiet CPU.

    python -m benchmarks.bench_runtimes [--sections outputs,overhead,speedup] [--data-dir D] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.common import emit

RUNTIMES = ["litert-cpu", "openvino-cpu"]
TARGETS = ["cpu", "cpu:int8", "litert-cpu", "litert-cpu:int8", "openvino-cpu", "openvino-cpu:int8"]


def _ort_reference(model, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _litert_outputs(model, xs: list[np.ndarray], dtype: str, same_padding: bool) -> list[np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter

    from hwprof.build_tflite import onnx_to_tflite

    interp = Interpreter(model_content=onnx_to_tflite(model, dtype, same_padding=same_padding).content)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    results = []
    for x in xs:
        nhwc = np.ascontiguousarray(np.transpose(x, (0, 2, 3, 1)))
        if dtype == "int8":
            scale, zero = inp["quantization"]
            nhwc = np.clip(np.round(nhwc / scale) + zero, -128, 127).astype(np.int8)
        interp.set_tensor(inp["index"], nhwc)
        interp.invoke()
        y = interp.get_tensor(out["index"])
        if dtype == "int8":
            scale, zero = out["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        results.append(y)
    return results


def _openvino_outputs(model, xs: list[np.ndarray], dtype: str) -> list[np.ndarray]:
    import io

    import openvino as ov

    from hwprof.quantization import as_dtype

    core = ov.Core()
    compiled = core.compile_model(core.read_model(io.BytesIO(as_dtype(model, dtype).SerializeToString())), "CPU",
                                  {"INFERENCE_PRECISION_HINT": "f32"})
    return [compiled(x)[0] for x in xs]


def outputs(per_space: int = 2, inputs: int = 8) -> dict:
    from hwprof.build_onnx import build_onnx
    from nas.spaces import get_space, space_names

    results = {}
    for space in space_names():
        sp = get_space(space)
        rng = np.random.default_rng(0)
        rows = []
        for arch in [sp.sample(rng) for _ in range(per_space)]:
            model = build_onnx(arch)
            xs = [np.random.default_rng(100 + i).standard_normal(arch.input_shape).astype(np.float32)
                  for i in range(inputs)]
            ref = [_ort_reference(model, x) for x in xs]
            span = max(float(np.ptp(np.concatenate([r.ravel() for r in ref]))), 1e-12)
            top1 = [int(np.argmax(r)) for r in ref]
            row = {"arch": arch.hash}
            for runtime, run in (("litert-cpu", lambda d: _litert_outputs(model, xs, d, same_padding=False)),
                                 ("openvino-cpu", lambda d: _openvino_outputs(model, xs, d))):
                fp = run("float32")
                row[f"{runtime} fp32 rel diff"] = max(float(np.abs(a - b).max()) for a, b in zip(fp, ref)) / span
                q = run("int8")
                row[f"{runtime} int8 top-1 agreement"] = float(np.mean([int(np.argmax(a)) == t
                                                                       for a, t in zip(q, top1)]))
            rows.append(row)
        results[space] = rows
    return results


def overhead(networks: int = 4, run_networks: int = 60) -> dict:
    """Protocol median vs a plain loop (``networks``); measure wall vs recorded inference (a run of ``run_networks``,
    as many as a real target's cached predictor measures, so fixed costs weigh as they do in use)."""
    import tempfile

    from devices import resolve
    from hwprof.protocol import Protocol, measure_session
    from nas.spaces import get_space

    sp = get_space("ofa")
    rng = np.random.default_rng(0)
    archs = [sp.sample(rng) for _ in range(networks)]
    results = {}
    for target in RUNTIMES:
        device = resolve(target)
        ratios = []
        for arch in archs:
            session = device.load(device.build(arch))
            call = session.interpreter.invoke if target == "litert-cpu" else session.request.infer
            for _ in range(10):
                call()
            plain = []
            for _ in range(100):
                start = time.perf_counter_ns()
                call()
                plain.append(time.perf_counter_ns() - start)
            m = measure_session(session, Protocol(min_time_s=0.25))
            session.close()
            ratios.append(m.median_ms / (np.median(plain) / 1e6))
        walls, parts = {}, {}
        for dtype in ("float32", "int8"):
            with tempfile.TemporaryDirectory() as tmp:
                proc = subprocess.run([str(Path(sys.executable).parent / "hwprof"), "measure", "--device",
                                       f"{target}:{dtype}", "--space", "ofa", "--samples", str(run_networks),
                                       "--mode", "e2e", "--out", tmp, "--json"], capture_output=True, text=True,
                                      check=True)
                summary = json.loads(proc.stdout)
                walls[dtype] = summary["wall_s"] / summary["inference_s"]
                parts[dtype] = {k: summary[k] for k in ("wall_s", "inference_s", "build_s", "load_s", "reference_s",
                                                        "other_s")}
        results[target] = {"protocol_over_plain_median": ratios, "measure_wall_over_inference": walls,
                           "wall_parts_s": parts}
    return results


def _measure(target: str, out: Path, space: str, samples: int, seed: int, mode: str) -> None:
    subprocess.run([str(Path(sys.executable).parent / "hwprof"), "measure", "--device", target, "--space", space,
                    "--samples", str(samples), "--seed", str(seed), "--mode", mode, "--out", str(out)],
                   check=True, capture_output=True, text=True)


def speedup(data_dir: Path, networks: int = 20) -> dict:
    """int8/float32 median ratio per (kernel, expand) of ofa's MBConv blocks, per runtime."""
    import pandas as pd

    from hwprof.arch import Block
    from hwprof.dataset import Dataset

    results = {}
    for runtime in ["cpu", *RUNTIMES]:
        times = {}
        for dtype in ("float32", "int8"):
            out = data_dir / f"speedup-{runtime}-{dtype}"
            _measure(f"{runtime}:{dtype}", out, "ofa", networks, 7, "blocks")
            df = Dataset(out).read()
            df = df[df.block_key != "e2e"]
            times[dtype] = {row.block_key: row.median_ms for row in df.itertuples()}
            kinds = {row.block_key: json.loads(row.block_json) for row in df.itertuples()}
        rows = []
        for key, fp in times["float32"].items():
            block = Block.from_dict(kinds[key])  # fields at their defaults are not written out (a 3x3 kernel)
            if key in times["int8"] and block.op == "mbconv":
                expand = round(block.mid / max(block.c_in, 1))
                rows.append({"kernel": max(block.kernel), "expand": expand, "speedup": fp / times["int8"][key]})
        table = pd.DataFrame(rows).groupby(["kernel", "expand"]).speedup.median().reset_index()
        results[runtime] = table.to_dict("records")
    return results


def _depthwise_onnx(kernel: int, stride: int, channels: int = 96, size: int = 28):
    """One depthwise convolution, written with onnx.helper (not through hwprof's builders)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((channels, 1, kernel, kernel)).astype(np.float32) * 0.1, "w")
    bias = numpy_helper.from_array(np.zeros(channels, np.float32), "b")
    pad, out = kernel // 2, (size - 1) // stride + 1
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], group=channels, kernel_shape=[kernel, kernel],
                            pads=[pad] * 4, strides=[stride, stride])
    graph = helper.make_graph([node], "dw", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                          [1, channels, size, size])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, channels, out, out])],
                              [weight, bias])
    return helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])


def depthwise() -> dict:
    """One depthwise convolution per kernel size on LiteRT: XNNPACK against the builtin kernels (median ms).

    Answers whether the int8 slow-down of 7x7 blocks is our lowering or the runtime: the model is a single
    DEPTHWISE_CONV_2D, with SAME padding or an explicit PAD (ONNX's exact padding).
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from hwprof.build_tflite import onnx_to_tflite

    def timed(content: bytes, resolver) -> float:
        interpreter = Interpreter(model_content=content, num_threads=1, experimental_op_resolver_type=resolver)
        interpreter.allocate_tensors()
        for _ in range(20):
            interpreter.invoke()
        samples = []
        for _ in range(200):
            start = time.perf_counter_ns()
            interpreter.invoke()
            samples.append(time.perf_counter_ns() - start)
        return float(np.median(samples) / 1e6)

    rows = []
    for kernel in (3, 5, 7):
        for stride in (1, 2):
            model = _depthwise_onnx(kernel, stride)
            for dtype in ("float32", "int8"):
                for same in (True, False):
                    content = onnx_to_tflite(model, dtype, same_padding=same).content
                    rows.append({"kernel": kernel, "stride": stride, "dtype": dtype,
                                 "padding": "SAME" if same else "PAD+VALID",
                                 "xnnpack_ms": timed(content, OpResolverType.AUTO),
                                 "builtin_ms": timed(content, OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)})
    return {"rows": rows}


def plot_speedup(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(4 * len(results), 3.2), sharey=True)
    for ax, (runtime, rows) in zip(np.atleast_1d(axes), results.items()):
        labels = [f"k{r['kernel']} e{r['expand']}" for r in rows]
        ax.bar(labels, [r["speedup"] for r in rows])
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_title(runtime)
        ax.tick_params(axis="x", rotation=60)
    np.atleast_1d(axes)[0].set_ylabel("int8 speed-up over float32 (median)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def predictors(data_dir: Path, train: int = 300, test: int = 200, targets: list[str] = TARGETS) -> dict:
    from hwprof.predictors.data import load_measurements
    from hwprof.predictors.metrics import prediction_metrics
    from hwprof.predictors.training import evaluate, fit_on
    from hwprof.registry import PREDICTORS

    results = {}
    for target in targets:
        tag = target.replace(":", "-")
        print(f"{time.strftime('%H:%M:%S')} {target}: measuring {train} train, {test} test networks (twice)", flush=True)
        _measure(target, data_dir / f"{tag}-train", "ofa", train, 0, "both")
        for run in ("test", "retest"):
            _measure(target, data_dir / f"{tag}-{run}", "ofa", test, 1, "e2e")
        train_data = load_measurements(data_dir / f"{tag}-train")
        test_data, retest = (load_measurements(data_dir / f"{tag}-{r}") for r in ("test", "retest"))
        rows = {name: evaluate(fit_on(name, train_data), test_data)[0] for name in PREDICTORS.names() if name != "transfer"}
        # test-retest: the same networks measured twice, each brought to the train run's nominal speed
        nominal = float(np.median(train_data.ref_ms)) if train_data.ref_ms is not None else None
        first, second = ((d.drift_corrected(nominal) if nominal and d.has_reference else d).latency_ms
                         for d in (test_data, retest))
        rows["test-retest"] = prediction_metrics(first, second)
        results[target] = rows
        # each target's table as soon as it is done: the whole section takes hours
        (data_dir / f"{tag}-predictors.json").write_text(json.dumps(rows, indent=1))
        print_predictors({target: rows})
    return results


def print_predictors(results: dict) -> None:
    for target, rows in results.items():
        print(f"\n{target}")
        for name, m in rows.items():
            print(f"  {name:14} within 10% {m['within_10pct']:.1%}  MAPE {m['mape']:.2%}  "
                  f"tau {m['kendall_tau']:.3f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", default="outputs,overhead,depthwise,speedup")
    parser.add_argument("--data-dir", default="bench-runtimes-data")
    parser.add_argument("--targets", default=",".join(TARGETS), help="predictors section: which real targets")
    parser.add_argument("--json")
    args = parser.parse_args()
    sections = args.sections.split(",")
    data_dir = Path(args.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    results: dict = {}
    if "outputs" in sections:
        results["outputs"] = outputs()
        print("outputs against onnxruntime float32 (per space: worst network)")
        for space, rows in results["outputs"].items():
            worst = {k: (max if "diff" in k else min)(r[k] for r in rows) for k in rows[0] if k != "arch"}
            print(f"  {space:10} " + "  ".join(f"{k} {v:.2g}" for k, v in worst.items()))
        ok = all(r[k] <= 1e-3 for rows in results["outputs"].values() for r in rows for k in r if "diff" in k)
        print(f"  float32 max |diff| <= 1e-3 of the output range everywhere: {'OK' if ok else 'MISSED'}")
    if "overhead" in sections:
        results["overhead"] = overhead()
        for target, r in results["overhead"].items():
            ratios = np.array(r["protocol_over_plain_median"])
            walls = r["measure_wall_over_inference"]
            print(f"{target}: protocol median / plain loop median {ratios.min():.3f}-{ratios.max():.3f} "
                  f"(target within 5%); measure wall / recorded inference: "
                  + ", ".join(f"{d} {w:.2f}x" for d, w in walls.items()) + " (target <= 1.3x)")
            for dtype, p in r["wall_parts_s"].items():
                print(f"    {dtype}: wall {p['wall_s']:.2f} s = inference {p['inference_s']:.2f} + build "
                      f"{p['build_s']:.2f} + load/compile {p['load_s']:.2f} + drift reference "
                      f"{p['reference_s']:.2f} + other {p['other_s']:.2f}")
    if "depthwise" in sections:
        results["depthwise"] = depthwise()
        print("one depthwise convolution (96 channels, 28 px) on LiteRT: XNNPACK / builtin kernels, median ms")
        for r in results["depthwise"]["rows"]:
            print(f"  k{r['kernel']} stride {r['stride']} {r['dtype']:7} {r['padding']:9}: XNNPACK "
                  f"{r['xnnpack_ms']:.3f}  builtin {r['builtin_ms']:.3f}  ({r['xnnpack_ms'] / r['builtin_ms']:.2f}x)")
    if "speedup" in sections:
        results["speedup"] = speedup(data_dir)
        plot_speedup(results["speedup"], data_dir / "int8-speedup.png")
        print("int8 / float32 speed-up per ofa block type (median over blocks); plot: "
              f"{data_dir / 'int8-speedup.png'}")
        for runtime, rows in results["speedup"].items():
            print(f"  {runtime:13} " + "  ".join(f"k{r['kernel']}e{r['expand']} {r['speedup']:.2f}x" for r in rows))
    if "predictors" in sections:
        results["predictors"] = predictors(data_dir, targets=args.targets.split(","))
    emit("runtimes", results, args.json)


if __name__ == "__main__":
    main()
