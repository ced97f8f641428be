"""Apply a katib-config edit to the live ConfigMap with optimistic concurrency.

Reads the ConfigMap, computes the new text with the pure functions of ``katib_config``, and
patches ``data`` and our owner annotation in one merge patch that carries the resourceVersion it
read, so the API server rejects it (409 Conflict) if anyone changed the ConfigMap in between; then
it reads again and retries. Needs only ``get`` and ``patch`` on that one ConfigMap.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .katib_config import (
    OWNER_ANNOTATION,
    KatibConfigError,
    MergeResult,
    add_entries,
    format_owned,
    parse_owned,
    remove_entries,
)

log = logging.getLogger(__name__)

_FORBIDDEN = 403
_NOT_FOUND = 404
_CONFLICT = 409


class KatibConfigNotFoundError(KatibConfigError):
    """The katib-config ConfigMap does not exist (Katib not installed, or already removed)."""


def _raise_readable(exc: Any, target: Target) -> None:
    """Turn the API errors a user can act on into messages that say what to do."""
    where = f"ConfigMap {target.namespace}/{target.name}"
    if exc.status == _NOT_FOUND:
        raise KatibConfigNotFoundError(
            f"{where} not found: is Katib installed in namespace {target.namespace!r}?"
        ) from None
    if exc.status == _FORBIDDEN:
        raise KatibConfigError(
            f"not allowed to read or patch {where}: the ServiceAccount needs get and patch on "
            f"it (the chart's Role in {target.namespace!r}); API server said: {exc.reason}"
        ) from None


@dataclass(frozen=True)
class Target:
    """Where katib-config lives."""

    namespace: str = "kubeflow"
    name: str = "katib-config"
    key: str = "katib-config.yaml"


@dataclass(frozen=True)
class Outcome:
    """What ``apply`` did: the merge result, whether it patched, and how many attempts it took."""

    result: MergeResult
    patched: bool
    attempts: int


def load_client(kubeconfig: str | None = None) -> Any:
    """Return a CoreV1Api: in-cluster config inside a pod, else ``kubeconfig`` or the default."""
    import kubernetes  # type: ignore[import-untyped,import-not-found,unused-ignore]

    # The client is only partly typed; treat it as Any at this one boundary.
    client: Any = kubernetes.client
    config: Any = kubernetes.config
    if kubeconfig is None:
        try:
            config.load_incluster_config()
            return client.CoreV1Api()
        except config.ConfigException:
            pass
    config.load_kube_config(config_file=kubeconfig)
    return client.CoreV1Api()


def apply(
    api: Any,
    target: Target,
    action: Literal["add", "remove"],
    entries: Sequence[Mapping[str, Any]] = (),
    *,
    dry_run: bool = False,
    retries: int = 5,
    sleep: Callable[[float], None] = time.sleep,
) -> Outcome:
    """Add or remove our entries in the live katib-config, retrying on conflicting updates.

    Args:
        api: a ``kubernetes.client.CoreV1Api``.
        target: the ConfigMap and key.
        action: ``add`` (needs ``entries``) or ``remove``.
        entries: validated entries for ``add``.
        dry_run: compute but do not patch.
        retries: attempts after the first one on 409 Conflict.
        sleep: injected for tests.

    Returns:
        The outcome of the last attempt.

    Raises:
        KatibConfigNotFoundError: the ConfigMap does not exist.
        KatibConfigError: the ConfigMap lacks the key, the file cannot be merged, or RBAC
            forbids reading or patching it.
        kubernetes.client.ApiException: any API error other than a conflict, or a conflict
            after ``retries`` retries.
    """
    import kubernetes  # type: ignore[import-untyped,import-not-found,unused-ignore]

    api_exception: Any = kubernetes.client.ApiException

    attempt = 0
    while True:
        attempt += 1
        try:
            cm = api.read_namespaced_config_map(target.name, target.namespace)
        except api_exception as exc:
            _raise_readable(exc, target)
            raise
        data = cm.data or {}
        if target.key not in data:
            raise KatibConfigError(
                f"ConfigMap {target.namespace}/{target.name} has no key {target.key!r}; "
                "is Katib installed in this namespace?"
            )
        annotations = cm.metadata.annotations or {}
        owned = parse_owned(annotations.get(OWNER_ANNOTATION))
        text = data[target.key]
        if action == "add":
            result = add_entries(text, entries, owned)
        else:
            result = remove_entries(text, owned)
        annotation_value = format_owned(result.owned) or None
        annotation_changed = annotation_value != annotations.get(OWNER_ANNOTATION)
        if not result.in_place:
            log.warning(
                "katib-config.yaml has a layout that cannot be edited in place; "
                "rewriting it with the same data (comments and formatting normalised)"
            )
        if not result.changed and not annotation_changed:
            log.info("katib-config already up to date (%s)", action)
            return Outcome(result=result, patched=False, attempts=attempt)
        if dry_run:
            return Outcome(result=result, patched=False, attempts=attempt)
        body = {
            "metadata": {
                "resourceVersion": cm.metadata.resource_version,
                "annotations": {OWNER_ANNOTATION: annotation_value},
            },
            "data": {target.key: result.text},
        }
        try:
            api.patch_namespaced_config_map(
                target.name, target.namespace, body, _content_type="application/merge-patch+json"
            )
        except api_exception as exc:
            _raise_readable(exc, target)
            if exc.status == _CONFLICT and attempt <= retries:
                delay = min(0.2 * 2 ** (attempt - 1), 5.0)
                log.info("katib-config changed while we edited it; retrying in %.1f s", delay)
                sleep(delay)
                continue
            raise
        log.info(
            "katib-config %s: %s",
            "updated" if action == "add" else "cleaned",
            ", ".join(result.owned) or "no dcsa entries left",
        )
        return Outcome(result=result, patched=True, attempts=attempt)
