"""`nlfs show`, `nlfs check` and `nlfs random`, run as a user runs them: the console script in a
subprocess, so exit codes, stderr and start-up time are the real ones.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nlfs.genome import Genome, GenomeError, KnownLosses, check

NLFS = [sys.executable, "-m", "nlfs.cli.main"]
LOSSES = Path(__file__).resolve().parents[2] / "nlfs" / "losses"


def nlfs(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*NLFS, *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "PYTHONWARNINGS": "error"}, timeout=120)


def timed_nlfs(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    """The faster of two runs, so that one busy moment of a shared machine is not the verdict."""
    best = None
    for _ in range(2):
        started = time.perf_counter()
        result = nlfs(*args)
        elapsed = time.perf_counter() - started
        best = (result, elapsed) if best is None or elapsed < best[1] else best
    return best


def genome_doc(*nodes: tuple, output: int | None = None) -> dict:
    return {"format": "nlfs.genome/v1", "nodes": [{"op": op, "in": list(ins)} for op, *ins in nodes],
            "output": len(nodes) - 1 if output is None else output, "sign": 1, "label_smoothing": 0.0}


# ---- check: exit codes -----------------------------------------------------------------------
def test_check_accepts_a_reference_loss_with_exit_0():
    result = nlfs("check", str(LOSSES / "cross_entropy.json"))
    assert result.returncode == 0, result.stderr
    assert "accepted, sign -1" in result.stdout and result.stderr == ""


def test_check_rejects_with_exit_1_and_the_reason_on_one_line(tmp_path):
    plateau = tmp_path / "plateau.json"
    doc = genome_doc(("sigmoid", "1"), ("sub", "p", 0), ("relu", 1), ("mul", "y", 2))  # 0 below p = 0.73
    plateau.write_text(json.dumps(doc))
    result = nlfs("check", str(plateau))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{plateau}: rejected: plateau: the probe curve has more than 10 flat steps"]


def _malformed(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Files that are not usable genomes, and the words the one-line error must contain."""
    files = {
        "not_json": ("{nodes: [", "not JSON"),
        "unknown_operator": (genome_doc(("logg", "p"), ("mul", "y", 0)), "unknown operator 'logg'"),
        "wrong_arity": (genome_doc(("log", "p", "y"), ("mul", "y", 0)), "log takes 1 input, got 2"),
        "cycle": (genome_doc(("log", 1), ("mul", "y", 0)), "cycle"),
        "p_unreachable": (genome_doc(("square", "y"), ("mul", "1", 0)), "p not reachable"),
        "deep_nesting": ("[" * 100_000 + "]" * 100_000, "not JSON"),
    }
    paths = {}
    for name, (content, words) in files.items():
        path = tmp_path / f"{name}.json"
        path.write_text(content if isinstance(content, str) else json.dumps(content))
        paths[name] = (path, words)
    million = tmp_path / "million_nodes.json"
    with open(million, "w") as fh:  # about 22 MB
        fh.write('{"format": "nlfs.genome/v1", "output": 0, "nodes": [')
        fh.write(",".join(['{"op":"neg","in":["p"]}'] * 1_000_000))
        fh.write("]}")
    paths["million_nodes"] = (million, "larger than a genome can be")
    big = tmp_path / "fifty_mb.json"
    with open(big, "wb") as fh:
        fh.write(b'{"format": "nlfs.genome/v1", "pad": "' + b"x" * (50 * 2**20) + b'"}')
    paths["fifty_mb"] = (big, "larger than a genome can be")
    paths["missing"] = (tmp_path / "nowhere.json", "cannot read")
    return paths


def test_check_on_malformed_input_exits_2_with_one_line_at_once(tmp_path):
    """Each malformed file: exit 2, exactly one stderr line naming the problem, no traceback,
    under a second including Python start-up (torch is never imported by `nlfs check`)."""
    for name, (path, words) in _malformed(tmp_path).items():
        result, seconds = timed_nlfs("check", str(path))
        assert result.returncode == 2, (name, result.stderr)
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("nlfs: error: "), (name, result.stderr)
        assert words in lines[0] and "Traceback" not in result.stderr, (name, lines[0])
        assert result.stdout == ""
        assert seconds < 1.0, (name, seconds)


def test_a_million_nodes_parsed_in_process_are_refused_by_count_before_any_is_read():
    # Every entry is malformed: had any been read first, its error would be the one raised.
    doc = {**genome_doc(("neg", "p")), "nodes": [{"op": "frob"}] * 1_000_000}
    with pytest.raises(GenomeError, match="nodes has 1000000 entries, at most 64"):
        Genome.from_json(doc)


def test_bad_flags_are_one_line_with_exit_2():
    result = nlfs("random", "--seed", "x")
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1


# ---- random ----------------------------------------------------------------------------------
def test_random_prints_count_accepted_genomes_as_json_lines_with_their_sign():
    result = nlfs("random", "--seed", "7", "--count", "5")
    assert result.returncode == 0, result.stderr
    genomes = [Genome.from_json(line) for line in result.stdout.splitlines()]
    assert len(genomes) == 5
    known = KnownLosses()
    for g in genomes:
        verdict = check(g, known)  # accepted against the earlier lines: no duplicates among them
        assert verdict.accepted and verdict.sign == g.sign
        known.add(g, verdict.phenotype)


def test_random_is_deterministic_per_seed():
    first, again, other = (nlfs("random", "--seed", s, "--count", "3").stdout for s in ("11", "11", "12"))
    assert first == again and first != other


def test_random_needs_a_positive_count():
    result = nlfs("random", "--seed", "1", "--count", "0")
    assert result.returncode == 2 and "must be at least 1" in result.stderr


# ---- show ------------------------------------------------------------------------------------
def test_show_prints_the_loss_in_every_form():
    result = nlfs("show", "cross_entropy")
    assert result.returncode == 0, result.stderr
    rows = dict(line.split(":", 1) for line in result.stdout.splitlines())
    assert rows["loss"].strip() == "-mean_b sum_c [y * log(p)]"
    assert "log" in rows["t simplified"] and rows["latex"].strip().startswith(r"\mathcal{L} = -")
    assert len(rows["id"].strip()) == 16
    assert rows["integrity"].strip() == "accepted, sign -1 (as the genome has it)"


def test_show_reports_a_rejected_file_without_failing(tmp_path):
    path = tmp_path / "half.json"
    path.write_text(json.dumps(genome_doc(("sub", "1", "p"), ("mul", "p", 0), ("mul", "y", 1))))
    result = nlfs("show", str(path))
    assert result.returncode == 0
    assert "rejected: extremum_at_half" in result.stdout


def test_show_of_an_unknown_name_is_exit_2():
    result = nlfs("show", "neuroloss1")
    assert result.returncode == 2 and "unknown loss 'neuroloss1'" in result.stderr


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_show_plot_writes_a_png_a_person_can_read(tmp_path):
    """Two panels (raw and normalised probe curves beside cross-entropy's), labelled axes."""
    result = nlfs("show", "cross_entropy", "--plot", "ce.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    png = tmp_path / "ce.png"
    width, height = png_size(png)
    assert width >= 800 and height >= 300 and png.stat().st_size > 20_000


def test_the_plot_is_labelled_as_the_issue_asks(monkeypatch, tmp_path):
    """The axes' words, read back from the figure before it is saved."""
    import matplotlib.pyplot as plt

    from nlfs.cli import genome_cmds
    from nlfs.losses import get_genome

    seen = {}
    monkeypatch.setattr(plt, "close", lambda fig: seen.setdefault("fig", fig))
    genome_cmds._plot(get_genome("baikal"), "baikal", str(tmp_path / "b.png"))
    axes = seen["fig"].axes
    assert [ax.get_xlabel() for ax in axes] == ["true-class probability"] * 2
    assert axes[0].get_ylabel() == "loss" and "normalised" in axes[1].get_ylabel()
    assert [t.get_text() for t in axes[0].get_legend().get_texts()] == ["baikal", "cross-entropy (reference)"]
    assert "baikal" in seen["fig"]._suptitle.get_text()


# ---- faults (issue 12) -------------------------------------------------------------------------
@pytest.mark.parametrize("verb", ["check", "show"])
def test_a_fifo_given_as_a_genome_file_is_refused_at_once(tmp_path, verb):
    fifo = tmp_path / "loss.json"
    os.mkfifo(fifo)  # nobody writes: reading it would block for ever
    result = nlfs(verb, str(fifo))
    assert result.returncode == 2 and result.stderr.splitlines() == [
        f"nlfs: error: {fifo}: not a regular file (a FIFO)"]


@pytest.mark.parametrize("seed", ["-1", "99999999999999999999999", "4294967296"])
def test_random_refuses_a_seed_out_of_range_in_one_line(seed):
    result = nlfs("random", "--seed", seed)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        f"nlfs random: error: argument --seed: must be an integer in 0..4294967295, got {seed}"]


def test_random_takes_the_largest_seed():
    assert nlfs("random", "--seed", "4294967295").returncode == 0


def test_show_escapes_control_characters_and_newlines_in_a_name(tmp_path):
    doc = {**genome_doc(("log", "p"), ("mul", "y", 0)), "sign": -1,
           "name": "ce\x1b[2J\x1b[31mred\nintegrity:    accepted\u202e"}
    path = tmp_path / "named.json"
    path.write_text(json.dumps(doc))
    result = nlfs("show", str(path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "name:         ce\\x1b[2J\\x1b[31mred\\nintegrity:    accepted\\u202e"
    assert "\x1b" not in result.stdout and sum(line.startswith("integrity:") for line in lines) == 1


def test_show_and_export_latex_answer_for_large_random_genomes(tmp_path, capsys):
    """Genomes of up to the format's 64 nodes, where sympy alone can take minutes: each verb
    answers, in one process, with t simplified or as written (bench/bench_render.py times it)."""
    import numpy as np
    from genomekit import large_random_genome

    from nlfs.cli.main import main

    rng = np.random.default_rng(2024)
    for k, nodes in enumerate((64, 56, 40)):
        path = tmp_path / f"large{k}.json"
        path.write_text(large_random_genome(rng, nodes).to_json())
        assert main(["show", str(path)]) == 0
        rows = dict(line.split(":", 1) for line in capsys.readouterr().out.splitlines())
        assert rows["latex"].strip().startswith(r"\mathcal{L} = ")
        assert main(["export", str(path), "--format", "latex"]) == 0
        assert capsys.readouterr().out.startswith(r"\mathcal{L} = ")


def test_show_simplifies_once(monkeypatch, capsys):
    """The simplified text and the LaTeX come from one simplification (it was run twice)."""
    from nlfs.cli.main import main
    from nlfs.genome import render

    calls = []
    bounded = render._bounded
    monkeypatch.setattr(render, "_bounded", lambda *a: calls.append(a) or bounded(*a))
    assert main(["show", "focal"]) == 0
    assert len(calls) == 1 and "t simplified" in capsys.readouterr().out
