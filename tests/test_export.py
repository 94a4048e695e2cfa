"""`nlfs export`: the standalone module matches `nlfs.load_loss` without nlfs on its import path.

The exported files are loaded in a subprocess started with `python -S` (no site hooks, so the
editable install's finder never runs) whose sys.path holds only the tmp dir and the
site-packages that provide torch; it first proves `nlfs` is not importable (issue 6, point 2).
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig

import numpy as np
import pytest
import torch

import nlfs
from nlfs.cli.main import main
from nlfs.export import class_name, to_latex, to_python
from nlfs.genome import Genome, check, compile_genome, random_genome
from nlfs.genome.ops import BINARY_OPS, UNARY_OPS
from nlfs.losses import get_genome

CHILD = r'''
import importlib.util, json, sys
import torch
assert importlib.util.find_spec("nlfs") is None, "nlfs is importable in the child"
torch.set_num_threads(1)  # the parent compares at one thread too: reductions split alike
cases = json.loads(open(sys.argv[1]).read())
inputs = torch.load(sys.argv[2], weights_only=True)
out = {}
for name, path in cases.items():
    spec = importlib.util.spec_from_file_location("exported_" + name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    loss = module.Loss()
    assert isinstance(loss, torch.nn.Module)
    results = []
    for logits, target in inputs:
        x = logits.clone().requires_grad_(True)
        value = loss(x, target)
        value.backward()
        results.append((value.detach(), x.grad))
    out[name] = results
torch.save(out, sys.argv[3])
print("ok", len(out))
'''


def _g(nodes: list, output: int, sign: int, label_smoothing: float = 0.0) -> Genome:
    return Genome.from_json({"format": "nlfs.genome/v1", "nodes": nodes, "output": output, "sign": sign,
                             "label_smoothing": label_smoothing})


def _genomes() -> dict[str, Genome]:
    """Baselines, every operator (directly on p and on an inner node), constants, and random
    genomes that pass the integrity check."""
    cases = {name: get_genome(name) for name in ("cross_entropy", "baikal", "label_smoothing", "focal", "poly1")}
    for op in UNARY_OPS:
        cases[f"u_{op}_p"] = _g([{"op": op, "in": ["p"]}, {"op": "mul", "in": ["y", 0]}], 1, -1)
        cases[f"u_{op}_inner"] = _g(
            [{"op": "sub", "in": ["p", "y"]}, {"op": op, "in": [0]}, {"op": "add", "in": [1, "y"]}], 2, 1)
    for op in BINARY_OPS:
        cases[f"b_{op}"] = _g([{"op": op, "in": ["p", "y"]}], 0, 1)
        cases[f"b_{op}_const"] = _g([{"op": op, "in": ["-1", "p"]}, {"op": "mul", "in": [0, "y"]}], 1, -1)
    cases["folded_constant"] = _g(
        [{"op": "exp", "in": ["1"]}, {"op": "mul", "in": [0, "p"]}, {"op": "sub", "in": [1, "y"]}], 2, 1, 0.1)
    rng = np.random.default_rng(11)
    found = 0
    while found < 12:
        g = random_genome(rng)
        verdict = check(g)
        if verdict.accepted:
            cases[f"random_{found}"] = g.with_sign(verdict.sign)
            found += 1
    return cases


def _inputs() -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(32, 10, generator=gen) * 3
    hard = torch.randint(0, 10, (32,), generator=gen)
    soft = torch.softmax(torch.randn(32, 10, generator=gen), dim=-1)
    return [(logits, hard), (logits * 0.1, soft), (torch.randn(8, 3, generator=gen) * 6, torch.tensor([0, 1, 2, 0, 1, 2, 0, 1]))]


def _reference(module, logits, target):
    """Value and gradient at one torch thread, as the child computes them: a guarded division's
    gradient is large enough near its pole that another split of a reduction moves it past 1e-6
    (and an earlier evaluation in this process may have left any thread count)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        x = logits.clone().requires_grad_(True)
        value = module(x, target)
        value.backward()
        return value.detach(), x.grad
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Every case exported, run in the nlfs-free child; (cases, child outputs, inputs)."""
    tmp = tmp_path_factory.mktemp("export")
    cases = _genomes()
    files = {}
    for name, genome in cases.items():
        path = tmp / f"{name}.py"
        path.write_text(to_python(genome, name if name in ("cross_entropy", "baikal") else None))
        files[name] = str(path)
    (tmp / "cases.json").write_text(json.dumps(files))
    inputs = _inputs()
    torch.save(inputs, tmp / "inputs.pt")
    (tmp / "child.py").write_text(CHILD)
    site = sysconfig.get_paths()["purelib"]
    proc = subprocess.run([sys.executable, "-S", str(tmp / "child.py"), str(tmp / "cases.json"),
                           str(tmp / "inputs.pt"), str(tmp / "out.pt")],
                          capture_output=True, text=True, cwd=tmp, timeout=300,
                          env={"PYTHONPATH": site, "PATH": "/usr/bin:/bin", "HOME": str(tmp)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("ok")
    return cases, torch.load(tmp / "out.pt", weights_only=True), inputs


def test_the_child_cannot_import_nlfs(exported):
    """The fixture's child asserted it; here the guard is shown to bite when nlfs is importable."""
    proc = subprocess.run([sys.executable, "-c", "import importlib.util; print(importlib.util.find_spec('nlfs') is None)"],
                          capture_output=True, text=True)
    assert proc.stdout.strip() == "False"  # the normal interpreter does see it


def test_exported_modules_match_load_loss_in_value_and_gradient(exported):
    cases, outputs, inputs = exported
    assert len(cases) >= 5 + 2 * len(UNARY_OPS) + 2 * len(BINARY_OPS) + 12
    for name, genome in cases.items():
        module = nlfs.load_loss(name) if name in ("cross_entropy", "baikal", "label_smoothing") else compile_genome(genome)
        for (logits, target), (value, grad) in zip(inputs, outputs[name]):
            want_value, want_grad = _reference(module, logits, target)
            torch.testing.assert_close(value, want_value, rtol=1e-6, atol=1e-6, equal_nan=True, msg=f"{name} value")
            torch.testing.assert_close(grad, want_grad, rtol=1e-6, atol=1e-6, equal_nan=True, msg=f"{name} gradient")


def test_exported_source_names_no_nlfs_import():
    text = to_python(get_genome("cross_entropy"), "cross_entropy")
    assert "import nlfs" not in text and "from nlfs" not in text
    assert "class CrossEntropyLoss(nn.Module)" in text and "Loss = CrossEntropyLoss" in text
    assert "torch.log_softmax" in text  # the log(p) peephole, as training computes it
    assert class_name(None, get_genome("focal")).startswith("Genome")


def test_latex_export_is_the_whole_loss():
    text = to_latex(get_genome("cross_entropy"))
    assert text.startswith(r"\mathcal{L} = -\frac{1}{B}") and "log" in text


def test_cli_export_writes_files_and_resolves_names(tmp_path, capsys):
    out = tmp_path / "ce.py"
    assert main(["export", "cross_entropy", "--format", "python", "-o", str(out)]) == 0
    assert "class CrossEntropyLoss" in out.read_text()
    assert main(["export", "baikal", "--format", "latex"]) == 0
    assert r"\mathcal{L}" in capsys.readouterr().out
    assert main(["export", "no_such_loss"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nlfs: error: unknown loss") and "\n" not in err


def test_cli_export_by_id_and_prefix_from_a_run(tmp_path, capsys):
    from nlfs.runs import open_run

    run = open_run(str(tmp_path / "run"))
    genome = get_genome("focal")
    run.put_genome(genome)
    assert main(["export", genome.id, "--run", run.uri]) == 0
    assert f"genome {genome.id}" in capsys.readouterr().out
    assert main(["export", genome.id[:6], "--run", run.uri, "--format", "latex"]) == 0
    assert main(["export", "abcd", "--run", run.uri]) == 2
    assert "no genome 'abcd'" in capsys.readouterr().err
