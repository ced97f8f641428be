"""Wire facts of a generated protobuf module, for comparing two api.proto builds field by field.

Imported by tests/test_katib_stubs.py and, in Katib's own virtualenv, by katib_stub_client.py
(so it must need nothing but the standard library).
"""

from __future__ import annotations

from typing import Any


def _repeated(field: Any) -> bool:
    # protobuf 7 dropped FieldDescriptor.label; older runtimes may lack is_repeated
    if hasattr(field, "is_repeated"):
        return bool(field.is_repeated)
    return bool(field.label == 3)


def descriptor_table(module: Any) -> tuple[dict[str, Any], dict[str, dict[str, int]]]:
    """Every message's fields as [number, type, repeated, message type], and every enum."""
    messages: dict[str, Any] = {}

    def walk(msg: Any) -> None:
        messages[msg.full_name] = {
            f.name: [
                f.number,
                f.type,
                _repeated(f),
                f.message_type.full_name if f.message_type else "",
            ]
            for f in msg.fields
        }
        for nested in msg.nested_types:
            walk(nested)

    for msg in module.DESCRIPTOR.message_types_by_name.values():
        walk(msg)
    enums = {
        e.full_name: {v.name: v.number for v in e.values}
        for e in module.DESCRIPTOR.enum_types_by_name.values()
    }
    return messages, enums
