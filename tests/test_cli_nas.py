"""The ``nas`` and ``hwprof`` commands as a user runs them."""

from __future__ import annotations

import json

import onnx

from hwprof.io import read_archs
from tests.conftest import ATTENTION_SPACES, SPACES, run_cli


def test_help_lists_commands():
    for app, commands in (("nas", ("spaces", "sample", "export")), ("hwprof", ("version",))):
        proc = run_cli(app, "--help", check=True)
        for command in commands:
            assert command in proc.stdout


def test_spaces_json_lists_every_builtin_space():
    proc = run_cli("nas", "spaces", "--json", check=True)
    infos = json.loads(proc.stdout)
    assert sorted(i["name"] for i in infos) == sorted(SPACES + ATTENTION_SPACES)
    assert all(i["size"] > 0 and i["description"] for i in infos)


def test_sample_then_export(tmp_path):
    out = tmp_path / "archs.jsonl"
    run_cli("nas", "sample", "--space", "proxyless", "-n", "3", "--seed", "1", "--out", str(out), check=True)
    archs = read_archs(out)
    assert len(archs) == 3
    again = run_cli("nas", "sample", "--space", "proxyless", "-n", "3", "--seed", "1", "--json", check=True)
    assert [json.loads(line)["hash"] for line in again.stdout.splitlines()] == [a.hash for a in archs]

    run_cli("nas", "export", str(out), "--onnx", str(tmp_path / "onnx"), check=True)
    files = sorted((tmp_path / "onnx").glob("*.onnx"))
    assert len(files) == 3
    for f in files:
        onnx.checker.check_model(onnx.load(str(f)))

    single = tmp_path / "one.json"
    single.write_text(archs[0].to_json(indent=2))
    run_cli("nas", "export", str(single), "--onnx", str(tmp_path / "one.onnx"), check=True)
    assert (tmp_path / "one.onnx").stat().st_size > 0


def _assert_clean_error(proc, *fragments):
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_bad_inputs_give_one_line_and_exit_2(tmp_path):
    _assert_clean_error(run_cli("nas", "sample", "--space", "nope"), "unknown search space 'nope'")
    _assert_clean_error(run_cli("nas", "sample", "--space", "ofa", "-n", "0"), "-n")
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "hwprof.arch/9", "blocks": []}')
    _assert_clean_error(run_cli("nas", "export", str(bad), "--onnx", str(tmp_path / "x.onnx")), "schema")
    bad.write_text("{oops")
    _assert_clean_error(run_cli("nas", "export", str(bad), "--onnx", str(tmp_path / "x.onnx")), "malformed")
    _assert_clean_error(run_cli("nas", "export", str(tmp_path / "missing.json"), "--onnx", "x.onnx"), "not found")
    blocker = tmp_path / "file"
    blocker.write_text("")
    _assert_clean_error(run_cli("nas", "sample", "--space", "ofa", "--out", str(blocker / "a.jsonl")),
                        "is a file")
    assert not (tmp_path / "x.onnx").exists()
