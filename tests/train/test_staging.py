"""Datasets staged into object storage once, fetched into a local cache by evaluation."""

from __future__ import annotations

import pytest
from torch import nn

import nlfs.cli.main as cli
from nlfs.errors import NlfsError
from nlfs.evaluate import evaluate
from nlfs.store import open_store
from nlfs.train.profiles import DatasetSpec, load_profile
from nlfs.train.staging import fetch_dataset, local_dir, manifest_key, stage_dataset


@pytest.mark.slow
def test_cifar10_round_trips_through_a_real_s3_server_and_trains(s3_env, fake_root, capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(cli, "VERB_MODULES", ("nlfs.cli.eval_cmds",))
    root = fake_root("cifar10")
    uri = s3_env.uri("datasets")
    assert cli.main(["data", "stage", "cifar10", "--to", uri, "--from", str(root)]) == 0
    assert "staged cifar10: 7 files" in capsys.readouterr().err
    store = open_store(uri)
    assert store.exists(manifest_key("cifar10")) and store.exists("cifar10/files/cifar-10-batches-py/data_batch_3")

    profile = load_profile("prefilter", {"dataset.source": uri, "dataset.val_size": "20", "batch_size": "8",
                                         "steps_per_epoch": "1", "epochs": "1", "floors": "[]",
                                         "runtime.device": "cpu"})
    record = evaluate(nn.CrossEntropyLoss(), profile)
    assert record.status == "ok" and len(record.epochs) == 1
    cached = local_dir("cifar10") / "cifar-10-batches-py" / "test_batch"
    assert cached.read_bytes() == (root / "cifar-10-batches-py" / "test_batch").read_bytes()


def test_fetch_is_skipped_when_the_cache_is_complete(fake_root, tmp_path):
    uri = str(tmp_path / "datasets")
    stage_dataset("svhn", uri, source=fake_root("svhn"))
    local = fetch_dataset("svhn", uri, tmp_path / "cache" / "svhn")
    target = local / "train_32x32.mat"
    mtime = target.stat().st_mtime_ns
    fetch_dataset("svhn", uri, local)
    assert target.stat().st_mtime_ns == mtime


def test_corrupted_staged_file_is_refused(fake_root, tmp_path):
    uri = str(tmp_path / "datasets")
    stage_dataset("svhn", uri, source=fake_root("svhn"))
    open_store(uri).put("svhn/files/test_32x32.mat", b"garbage")
    with pytest.raises(NlfsError, match="does not match the manifest"):
        fetch_dataset("svhn", uri, tmp_path / "cache" / "svhn")


def test_dataset_not_staged_says_how_to_stage_it(tmp_path):
    from nlfs.train.data import load_dataset

    with pytest.raises(NlfsError, match="nlfs data stage cifar100"):
        load_dataset(DatasetSpec(name="cifar100", source=str(tmp_path / "empty")))


def test_staging_needs_the_files_and_a_file_dataset(tmp_path):
    with pytest.raises(NlfsError, match="is missing"):
        stage_dataset("cifar10", str(tmp_path / "d"), source=tmp_path / "nothing")
    with pytest.raises(NlfsError, match="no files to stage"):
        stage_dataset("digits", str(tmp_path / "d"))


def test_data_stage_cli_bad_input_exits_2(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(cli, "VERB_MODULES", ("nlfs.cli.eval_cmds",))
    assert cli.main(["data", "stage", "imagenet", "--to", str(tmp_path)]) == 2
    assert "no files to stage" in capsys.readouterr().err
