"""Bad input to the verbs that read profiles, protocols and seeds: each is one line on stderr and
exit code 2 before any training, never a traceback (issue 12, points 5 and 9).

The verbs run in this process through `nlfs.cli.main.main`, the console script's own entry (one
torch import for all cases); one case runs as a real subprocess to prove the exit code.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nlfs.cli.main import main


def one_line_error(capsys, *argv: str) -> str:
    """Run `nlfs argv...`; assert exit 2 with exactly one stderr line and no output; return it."""
    try:
        code = main(list(argv))
    except SystemExit as exit_:  # argparse's errors
        code = exit_.code
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert out == ""
    return lines[0]


@pytest.mark.parametrize("setting, words", [
    ("optimizer.lr=nan", "optimizer.lr: Input should be a finite number"),
    ("optimizer.lr=.inf", "optimizer.lr: Input should be a finite number"),
    ("optimizer.lr=-1", "optimizer.lr: Input should be greater than 0"),
    ("optimizer.lr=0", "optimizer.lr: Input should be greater than 0"),
    ("optimizer.weight_decay=-1", "optimizer.weight_decay: Input should be greater than or equal to 0"),
    ("optimizer.momentum=-0.5", "optimizer.momentum: Input should be greater than or equal to 0"),
    ("model.dropout=2", "model.dropout: Input should be less than 1"),
    ("model.dropout=-0.1", "model.dropout: Input should be greater than or equal to 0"),
    ("runtime.threads=0", "runtime.threads: Input should be greater than 0"),
    ("runtime.time_limit_s=-5", "runtime.time_limit_s: Input should be greater than or equal to 0"),
    ("runtime.eval_batch_size=0", "runtime.eval_batch_size: Input should be greater than 0"),
    ("epochs=0", "epochs: Input should be greater than 0"),
    ("epochs=-3", "epochs: Input should be greater than 0"),
    ("epochs=true", "epochs: Value error, a number is expected, not true/false"),
    ("batch_size=0", "batch_size: Input should be greater than 0"),
    ("batch_size=true", "batch_size: Value error, a number is expected, not true/false"),
    ("steps_per_epoch=0", "steps_per_epoch: Input should be greater than 0"),
    ("seed=-1", "seed: Input should be greater than or equal to 0"),
    ("seed=99999999999999999999999", "seed: Input should be less than or equal to 4294967295"),
    ("dataset.split_seed=-1", "dataset.split_seed: Input should be greater than or equal to 0"),
    ("dataset.val_size=0", "dataset.val_size: Input should be greater than 0"),
    ("augment.alpha=0", "augment.alpha: Input should be greater than 0"),
    ("schedule.warmup_steps=-1", "schedule.warmup_steps: Input should be greater than or equal to 0"),
])
def test_an_override_out_of_range_is_one_line_before_training(capsys, setting, words):
    line = one_line_error(capsys, "evaluate", "--loss", "cross_entropy", "--set", setting)
    assert line.startswith("nlfs: error: profile tiny with --set: ") and words in line, line


@pytest.mark.parametrize("seed", ["-1", "99999999999999999999999"])
def test_evaluate_refuses_a_seed_out_of_range(capsys, seed):
    line = one_line_error(capsys, "evaluate", "--loss", "cross_entropy", "--seed", seed)
    assert line == f"nlfs evaluate: error: argument --seed: must be an integer in 0..4294967295, got {seed}"


def _profile(tmp_path: Path, text: str | bytes) -> str:
    path = tmp_path / "profile.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(path)


@pytest.mark.parametrize("content, words", [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not UTF-8 text (byte 0x89 at offset 0)"),
    (b"base: tiny\ndescription: caf\xe9\n", "not UTF-8 text (byte 0xe9 at offset 27)"),
    (b"base: tiny\x00\n", "not YAML: unacceptable character #x0000: special characters are not allowed"),
    ("base: tiny\nepochs: 2\nepochs: 3\n", "not YAML: duplicate key 'epochs' (line 3, column 1)"),
    ("base: tiny\noptimizer:\n  lr: 0.1\n  lr: 0.2\n", "duplicate key 'lr'"),
    ("base: tiny\nbatch_size: true\n", "batch_size: Value error, a number is expected, not true/false"),
    ("base: tiny\nfloors:\n- {min: 1.5}\n", "floors.0.min: Input should be less than or equal to 1"),
    ("base: tiny\nfloors:\n- {min: 0.5, from_epoch_index: -1}\n", "floors.0.from_epoch_index: Input should be greater than or equal to 0"),
    ("base: tiny\nfloors:\n- {min: 0.5, from_epoch: 1}\n", "floors.0.from_epoch: unknown key"),
    ("base: tiny\nstages:\n- {epochs: 1, dropout: 1.0}\n", "stages.0.dropout: Input should be less than 1"),
    ("base: tiny\noptimizer: {name: sgd, nesterov: true, momentum: 0}\n", "nesterov needs a momentum above 0"),
    ("base: [tiny]\n", "base: a profile name or a .yaml path, got ['tiny']"),
    ("base: " + "x" * 5000 + "\n", "base: unknown profile 'xxxx"),
])
def test_a_bad_profile_file_is_one_line(capsys, tmp_path, content, words):
    path = _profile(tmp_path, content)
    line = one_line_error(capsys, "evaluate", "--loss", "cross_entropy", "--profile", path)
    assert line.startswith(f"nlfs: error: profile {path}") and words in line, line


def test_a_fifo_given_as_a_profile_is_refused_at_once(capsys, tmp_path):
    fifo = tmp_path / "profile.yaml"
    os.mkfifo(fifo)
    line = one_line_error(capsys, "evaluate", "--loss", "cross_entropy", "--profile", str(fifo))
    assert line == f"nlfs: error: profile {fifo}: not a regular file (a FIFO)"


def test_a_fifo_given_as_a_loss_is_refused_at_once(capsys, tmp_path):
    fifo = tmp_path / "loss.json"
    os.mkfifo(fifo)
    line = one_line_error(capsys, "evaluate", "--loss", str(fifo))
    assert line == f"nlfs: error: {fifo}: not a regular file (a FIFO)"


def test_a_binary_protocol_file_is_one_line(capsys, tmp_path):
    path = tmp_path / "protocol.yaml"
    path.write_bytes(b"\xff\xd8\xff\xe0 not a protocol")
    line = one_line_error(capsys, "eliminate", str(tmp_path / "run"), "--protocol", str(path))
    assert line == f"nlfs: error: --protocol {path}: not UTF-8 text (byte 0xff at offset 0)"


def test_the_console_script_exits_2_with_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "nlfs.cli.main", "evaluate", "--loss", "cross_entropy",
                           "--profile", _profile(tmp_path, b"\xff\xfe")], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
    assert "not UTF-8 text" in done.stderr and done.stdout == ""
