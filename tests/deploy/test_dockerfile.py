"""The suggestion service Dockerfile lints clean and keeps the house rules (no image is built
here: no container runtime on the test machine)."""

from __future__ import annotations

import fnmatch
import json
import re

import yaml

from ..dockerfiles import instructions as read_instructions
from .conftest import CHART, REPO, need_tool, run

DOCKERFILE = REPO / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    return read_instructions(DOCKERFILE)


def test_hadolint_is_clean() -> None:
    proc = run([need_tool("hadolint"), str(DOCKERFILE)], check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_multi_stage_pinned_non_root_exec_form() -> None:
    steps = instructions()
    bases = [args.split()[0] for word, args in steps if word == "FROM"]
    assert len(bases) == 2
    assert all(re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", b) for b in bases), bases
    last = steps[max(i for i, (w, _) in enumerate(steps) if w == "FROM") :]
    (user,) = [args for word, args in last if word == "USER"]
    uid = user.split(":")[0]
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert int(uid) == values["suggestion"]["securityContext"]["runAsUser"] == 65532
    assert json.loads(dict(last)["ENTRYPOINT"]) == ["dcsa"]
    assert json.loads(dict(last)["CMD"]) == ["serve"]
    assert dict(last)["EXPOSE"].split() == ["6789", "8000"]
    runs = " ".join(args for word, args in steps if word == "RUN")
    assert 'pip install --no-cache-dir "./[k8s]"' in runs
    assert not [a for w, a in steps if w == "ENV" and "PYTHONPATH" in a]


def test_dockerignore_keeps_what_the_build_copies() -> None:
    patterns = [
        p.strip()
        for p in (REPO / ".dockerignore").read_text().splitlines()
        if p.strip() and not p.startswith("#")
    ]
    copied = [
        "pyproject.toml",
        "README.md",
        "suggestion_service/server.py",
        "suggestion_service/k8s/katib_config.py",
        "trial_image/train.py",
    ]
    for path in copied:
        assert not any(
            fnmatch.fnmatch(path, p) or path.startswith(p.rstrip("/") + "/")
            for p in patterns
            if not p.startswith("!")
        ), path
    assert ".git" in patterns and ".venv" in patterns
