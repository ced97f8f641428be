"""Regenerate suggestion_service/_generated from proto/api.proto.

Rule: generated code is committed (so installing the package needs no protoc), and
tests/test_proto_drift.py regenerates into a temporary folder and fails if the committed files
differ. Run `python scripts/gen_proto.py` after editing proto/api.proto.
"""

from __future__ import annotations

import argparse
import pathlib
import re
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROTO = ROOT / "proto" / "api.proto"
OUT = ROOT / "suggestion_service" / "_generated"
FILES = ("api_pb2.py", "api_pb2.pyi", "api_pb2_grpc.py", "api_pb2_grpc.pyi")


def generate(out_dir: pathlib.Path) -> None:
    """Run protoc (from grpcio-tools) with mypy-protobuf and fix imports to be package-relative."""
    from grpc_tools import protoc  # dev dependency only

    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "protoc",
            f"-I{PROTO.parent}",
            f"--python_out={tmp}",
            f"--grpc_python_out={tmp}",
            f"--mypy_out={tmp}",
            f"--mypy_grpc_out={tmp}",
            str(PROTO),
        ]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in FILES:
            text = (pathlib.Path(tmp) / name).read_text()
            # protoc writes `import api_pb2`; inside our package it must be relative.
            text = re.sub(r"^import api_pb2 as", "from . import api_pb2 as", text, flags=re.M)
            text = re.sub(r"^import api_pb2$", "from . import api_pb2", text, flags=re.M)
            (out_dir / name).write_text(text)
        init = out_dir / "__init__.py"
        init.write_text(
            '"""Code generated from proto/api.proto by scripts/gen_proto.py. Do not edit."""\n'
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if committed code is stale")
    ns = parser.parse_args()
    if not ns.check:
        generate(OUT)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        fresh = pathlib.Path(tmp) / "gen"
        generate(fresh)
        stale = [
            n for n in (*FILES, "__init__.py") if (fresh / n).read_text() != (OUT / n).read_text()
        ]
        if stale:
            print(
                f"generated code is stale: {stale}; run python scripts/gen_proto.py",
                file=sys.stderr,
            )
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
