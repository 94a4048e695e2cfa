"""What every file format shares (nlfs/formats.py): the text-file reader, the YAML loader, the
JSON parsers of stored records, and the number types that refuse booleans and NaN."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Annotated

import pytest
from pydantic import BaseModel, Field

from nlfs.errors import NlfsError
from nlfs.formats import (
    MAX_YAML_NODES,
    SEED_MAX,
    Float,
    Int,
    Seed,
    check_seed,
    load_yaml,
    loads_json,
    override_value,
    parse_stored_json,
    printable,
    read_text_file,
    read_yaml_mapping,
    validate,
)


# ---- reading files ---------------------------------------------------------------------------

def test_a_fifo_is_refused_at_once_instead_of_blocking(tmp_path: Path):
    fifo = tmp_path / "profile.yaml"
    os.mkfifo(fifo)
    box: dict = {}
    reader = threading.Thread(target=lambda: box.update(error=_error(lambda: read_text_file(fifo))), daemon=True)
    reader.start()
    reader.join(30)
    if reader.is_alive():  # unblock the reader so the test process can end
        with open(fifo, "wb"):
            pass
        pytest.fail("reading a FIFO blocked")
    assert "not a regular file (a FIFO)" in box["error"]


def _error(fn) -> str:
    with pytest.raises(NlfsError) as info:
        fn()
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("content, words", [
    (b"\xff\xfe\x00b\x00a\x00d", "not UTF-8 text (byte 0xff at offset 0)"),
    (b"name: caf\xe9\n", "not UTF-8 text (byte 0xe9 at offset 9)"),
])
def test_text_that_is_not_utf8_is_one_line_naming_the_byte(tmp_path: Path, content: bytes, words: str):
    path = tmp_path / "p.yaml"
    path.write_bytes(content)
    assert words in _error(lambda: read_text_file(path, "profile p.yaml"))


def test_a_directory_a_device_and_a_missing_file_are_one_line(tmp_path: Path):
    assert "a directory" in _error(lambda: read_text_file(tmp_path))
    assert "a character device" in _error(lambda: read_text_file("/dev/zero"))
    assert "cannot read (No such file or directory)" in _error(lambda: read_text_file(tmp_path / "none"))


def test_a_file_past_the_limit_is_refused_before_it_is_read(tmp_path: Path):
    path = tmp_path / "big.yaml"
    path.write_bytes(b"a: 1\n" * 1000)
    assert "larger than a profile can be" in _error(lambda: read_text_file(path, max_bytes=100, what="profile"))
    assert read_text_file(path, max_bytes=5000).startswith("a: 1")


def test_a_utf8_byte_order_mark_is_dropped(tmp_path: Path):
    path = tmp_path / "p.yaml"
    path.write_bytes("\ufeffa: 1\n".encode())
    assert read_yaml_mapping(read_text_file(path), "p", "profile") == {"a": 1}


# ---- YAML ------------------------------------------------------------------------------------

def test_a_key_given_twice_is_refused_at_every_depth():
    assert "duplicate key 'epochs'" in _error(lambda: load_yaml("epochs: 1\nepochs: 2\n", "p"))
    assert "duplicate key 'lr'" in _error(lambda: load_yaml("optimizer:\n  lr: 1\n  lr: 2\n", "p"))
    assert "line 3" in _error(lambda: load_yaml("a: 1\nb: 2\na: 3\n", "p"))


def test_merge_keys_may_still_be_overridden():
    text = "base: &b {lr: 1, wd: 0}\nopt:\n  <<: *b\n  lr: 2\n"
    assert load_yaml(text, "p")["opt"] == {"lr": 2, "wd": 0}


def test_an_alias_bomb_is_refused_not_expanded():
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    message = _error(lambda: load_yaml("\n".join(lines), "p"))
    assert f"more than {MAX_YAML_NODES}" in message


@pytest.mark.parametrize("text", ["[" * 5000 + "]" * 5000, "a: " + "1" * 5000, "d: 2024-13-45", "a: [", "\x00"])
def test_yaml_that_breaks_the_parser_is_one_line(text: str):
    assert "not YAML" in _error(lambda: load_yaml(text, "p"))


def test_override_values_are_read_by_the_same_loader():
    assert override_value("0.01") == 0.01 and override_value("[0, 1]") == [0, 1]
    assert override_value("{a: 1, a: 2}") == "{a: 1, a: 2}"  # not YAML for us: left as text, refused by the model
    assert override_value("nan") == "nan"


# ---- JSON of stored records --------------------------------------------------------------------

class Record(BaseModel):
    x: float
    tags: dict = {}


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json_for_any_parser_of_ours(literal: str):
    text = f'{{"x": {literal}}}'
    assert Record.model_validate_json(text)  # what pydantic alone would accept
    assert "NaN and Infinity are not JSON numbers" in _error(lambda: parse_stored_json(Record, text, "k"))
    assert "not JSON" in _error(lambda: loads_json(text, "k"))
    hidden = f'{{"x": 1, "tags": {{"a": [{literal}]}}}}'  # inside a field that takes anything
    assert "is corrupt" in _error(lambda: parse_stored_json(Record, hidden, "k"))


def test_stored_json_errors_name_the_source():
    assert _error(lambda: parse_stored_json(Record, b"\xff", "s3://b/r/state.json")).startswith(
        "s3://b/r/state.json is corrupt: not JSON")
    assert "x" in _error(lambda: parse_stored_json(Record, '{"x": "many"}', "k"))


# ---- numbers ---------------------------------------------------------------------------------

class Numbers(BaseModel):
    count: Int = 1
    rate: Float = 0.5
    positive: Annotated[Int, Field(gt=0)] = 1
    seed: Seed = 0


@pytest.mark.parametrize("field, value, words", [
    ("count", True, "not true/false"), ("rate", False, "not true/false"),
    ("positive", True, "not true/false"), ("seed", True, "not true/false"),
    ("rate", float("nan"), "finite"), ("rate", float("inf"), "finite"), ("rate", "nan", "finite"),
    ("positive", 0, "greater than 0"), ("seed", -1, "greater than or equal to 0"),
    ("seed", SEED_MAX + 1, "less than or equal to 4294967295"),
])
def test_numbers_refuse_booleans_non_finite_values_and_out_of_range(field, value, words):
    assert words in _error(lambda: validate(Numbers, {field: value}, "f", "numbers"))


def test_numbers_still_read_what_yaml_and_the_command_line_give():
    assert validate(Numbers, {"count": 3, "rate": "1e-3", "seed": SEED_MAX}, "f", "numbers") == \
        Numbers(count=3, rate=0.001, seed=SEED_MAX)


def test_check_seed():
    assert check_seed(0) == 0 and check_seed(SEED_MAX) == SEED_MAX
    for bad in (-1, SEED_MAX + 1, 10**23, True, 1.0):
        assert "0..4294967295" in _error(lambda bad=bad: check_seed(bad))


# ---- printing --------------------------------------------------------------------------------

def test_printable_escapes_what_could_drive_a_terminal_or_forge_a_line():
    assert printable("cross_entropy") == "cross_entropy"
    assert printable("a\x1b[31mred\nname: forged\r\u2028\u202e") == "a\\x1b[31mred\\nname: forged\\r\\u2028\\u202e"
    assert printable("naïve loss ✓") == "naïve loss ✓"
