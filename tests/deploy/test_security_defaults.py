"""Security defaults that span files (issue 12, section 6): what the README tells a platform team
to run matches the image it runs."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from ..dockerfiles import instructions

ROOT = Path(__file__).resolve().parents[2]


def test_readme_run_as_user_matches_the_service_image_and_the_chart() -> None:
    """The README's katib-config entry must run as the image's own non-root user (a UID the
    image does not know breaks HOME and file ownership, and reviewers copy it)."""
    (block,) = [
        b
        for b in re.findall(r"```yaml\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
        if "runtime:" in b and "suggestions:" in b
    ]
    entry = yaml.safe_load(block)["runtime"]["suggestions"][0]
    (user,) = [args for word, args in instructions(ROOT / "Dockerfile") if word == "USER"]
    uid, _, gid = user.partition(":")
    ctx = entry["securityContext"]
    assert str(ctx["runAsUser"]) == uid
    assert str(ctx["runAsGroup"]) == (gid or uid)
    chart = yaml.safe_load((ROOT / "helm/dcsa/values.yaml").read_text())
    assert chart["suggestion"]["securityContext"]["runAsUser"] == ctx["runAsUser"]
