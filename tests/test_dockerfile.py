"""The Dockerfile: a pinned CUDA PyTorch base, the package without dev extras, a numeric non-root
USER matching the pods' runAsUser, ENTRYPOINT nlfs; and a .dockerignore that keeps local state out."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def _last(name: str) -> str:
    values = [value for instr, value in _instructions() if instr == name]
    assert values, f"no {name} in the Dockerfile"
    return values[-1]


def test_base_image_is_a_pinned_cuda_pytorch_release():
    froms = [value for instr, value in _instructions() if instr == "FROM"]
    assert len(froms) == 1
    image = froms[0].split()[0]
    name, _, tag = image.partition("@")[0].rpartition(":")
    assert name == "pytorch/pytorch" and "cuda" in tag and "runtime" in tag
    assert tag != "latest" and re.match(r"\d+\.\d+\.\d+-cuda\d+\.\d+", tag), f"unpinned base image {image}"
    if "@" in image:
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", image.partition("@")[2])


def test_package_is_installed_without_dev_extras():
    runs = " ".join(value for instr, value in _instructions() if instr == "RUN")
    assert re.search(r"pip install --no-cache-dir \.(\s|$)", runs)
    assert "[dev" not in runs and "-e " not in runs


def test_runs_as_a_numeric_non_root_user_matching_the_pods():
    uid = _last("USER").split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    for path in (ROOT / "workflows").glob("nlfs-*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            contexts = [doc["spec"].get("securityContext")] + [t.get("securityContext") for t in doc["spec"]["templates"]]
            assert all(c["runAsUser"] == int(uid) for c in contexts if c)


def test_entrypoint_is_nlfs_with_a_writable_home_and_dataset_cache():
    assert json.loads(_last("ENTRYPOINT")) == ["nlfs"]
    env = " ".join(value for instr, value in _instructions() if instr == "ENV")
    assert re.search(r"HOME=/home/nlfs\b", env) and re.search(r"NLFS_CACHE=/cache\b", env)
    assert _last("WORKDIR").startswith("/")
    runs = " ".join(value for instr, value in _instructions() if instr == "RUN")
    assert "chown 1000:1000 /cache" in runs and "--home-dir /home/nlfs" in runs


def test_dockerignore_keeps_local_state_out_of_the_build_context():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".git", ".venv", "runs", ".pytest_cache", ".hypothesis", "**/__pycache__", "tests"} <= ignored
    copied = [value.split()[:-1] for instr, value in _instructions() if instr == "COPY"]
    assert all(not any(src.rstrip("/") in ignored for src in sources) for sources in copied)


def test_every_path_the_image_writes_is_mounted_in_every_pod_with_a_read_only_root():
    """The pods run with readOnlyRootFilesystem: HOME (torch's and matplotlib's caches), the dataset
    cache and /tmp must be volumes in each pod template that uses them."""
    env = dict(re.findall(r"(\w+)=(\S+)", " ".join(value for instr, value in _instructions() if instr == "ENV")))
    home, cache, mpl = env["HOME"], env["NLFS_CACHE"], env["MPLCONFIGDIR"]
    assert mpl.startswith(home + "/")
    assert env.get("PYTHONDONTWRITEBYTECODE") == "1"  # no __pycache__ next to the installed package
    for path in (ROOT / "workflows").glob("nlfs-*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            for tmpl in doc["spec"]["templates"]:
                body = tmpl.get("container") or tmpl.get("script")
                if body is None:
                    continue
                assert body["securityContext"]["readOnlyRootFilesystem"] is True
                mounts = {m["mountPath"] for m in body["volumeMounts"]}
                assert {home, "/tmp"} <= mounts, f"{path.name}/{tmpl['name']}"
                if any(e["name"] == "NLFS_CACHE" for e in body.get("env", [])):
                    assert cache in mounts
