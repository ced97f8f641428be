"""``dcsa katib-config add|remove``: what the chart's hook Job runs (argument parsing is in cli)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, Literal

import yaml

from .configmap import KatibConfigNotFoundError, Target, apply, load_client
from .katib_config import KatibConfigError, validate_entries

log = logging.getLogger(__name__)


def read_entries(path: Path) -> list[dict[str, Any]]:
    """Read and validate the entries file (a YAML list, as the chart renders it)."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise KatibConfigError(f"cannot read entries file {path}: {exc}") from exc
    return validate_entries(raw)


def katib_config_command(
    *,
    action: Literal["add", "remove"],
    entries_path: Path | None,
    target: Target,
    kubeconfig: str | None,
    dry_run: bool,
    retries: int,
) -> int:
    """Run the command; return the process exit code (0 ok, 2 refused or invalid input).

    ``remove`` succeeds when the ConfigMap is gone, so that uninstalling after Katib works.

    With ``dry_run`` the resulting katib-config.yaml is written to stdout and nothing changes.
    """
    try:
        entries: list[dict[str, Any]] = []
        if action == "add":
            if entries_path is None:
                raise KatibConfigError("add needs --entries FILE (a YAML list of entries)")
            entries = read_entries(entries_path)
        api = load_client(kubeconfig)
        outcome = apply(api, target, action, entries, dry_run=dry_run, retries=retries)
    except KatibConfigNotFoundError as exc:
        if action == "remove":
            # Nothing left to clean up (Katib uninstalled first): do not block helm uninstall.
            log.warning("%s; nothing to remove", exc)
            return 0
        log.error("%s", exc)
        return 2
    except KatibConfigError as exc:
        log.error("%s", exc)
        return 2
    if dry_run:
        sys.stdout.write(outcome.result.text)
    elif not outcome.patched:
        log.info("nothing to change in %s/%s", target.namespace, target.name)
    return 0
