"""A real tiny search, run once per session, and the whole protocol after it on each store kind.

`tiny_search` trains a small search on the `tiny` profiles (directory store). `finished` copies
it into a fresh store of each kind (a directory, or a bucket on the session's SeaweedFS server:
the same files a search on S3 leaves) and runs the real CLI over it: results, eliminate,
transfer, report and export, keeping each command's output for the tests to check.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "transfer"))  # runkit (shared with tests/transfer)
sys.path.insert(0, str(Path(__file__).parent))  # reportkit

from reportkit import Finished, copy_into, finish  # noqa: E402
from searchkit import fast_config  # noqa: E402


@pytest.fixture(scope="session")
def tiny_search(tmp_path_factory) -> Path:
    """A finished search on a directory store: 6 candidates, population 3, 4 children (~15 s)."""
    from nlfs.local import search

    run = tmp_path_factory.mktemp("search") / "run"
    config = fast_config(population=3, tournament=2, initial_candidates=6, budget=4, batch_size=2,
                         initial_batch_size=3, hall_of_fame=6)
    summary = search(str(run), config, workers=2, progress=False, baseline=True)
    assert summary.state.done and len(summary.state.top) >= 3, "the tiny search found too few losses"
    return run


@pytest.fixture(scope="session", params=["dir", "s3"])
def finished(request, tiny_search, tmp_path_factory) -> Finished:
    tmp = tmp_path_factory.mktemp(f"finished-{request.param}")
    if request.param == "dir":
        run = tmp / "run"
        shutil.copytree(tiny_search, run)
        return finish("dir", str(run), tmp)
    server = request.getfixturevalue("s3_server")
    with pytest.MonkeyPatch.context() as mp:
        for name, value in server.env().items():
            mp.setenv(name, value)
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        uri = f"s3://{server.make_bucket()}/runs/tiny"
        copy_into(tiny_search, uri)
        return finish("s3", uri, tmp)
