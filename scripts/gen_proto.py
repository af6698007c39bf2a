"""Regenerate Python, gRPC and mypy stubs from proto/ into gen/. The only way gen/ is written."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO = ROOT / "proto"
OUT = ROOT / "gen"


def generate(out: Path) -> int:
    files = sorted(str(p.relative_to(PROTO)) for p in PROTO.rglob("*.proto"))
    target = out / "branch"
    if target.exists():
        shutil.rmtree(target)
    out.mkdir(exist_ok=True)
    include = str(Path(protoc.__file__).parent / "_proto")
    args = [
        "protoc",
        f"-I{PROTO}",
        f"-I{include}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
        *files,
    ]
    # the mypy plugins live beside this interpreter, wherever the venv is
    bindir = str(Path(sys.executable).parent)
    os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    code = protoc.main(args)
    if code != 0:
        return code
    for folder in [target, *[d for d in target.rglob("*") if d.is_dir()]]:
        (folder / "__init__.py").touch()
    (target / "py.typed").touch()
    return 0


def check() -> int:
    """Fail when gen/ differs from what proto/ generates now."""
    with tempfile.TemporaryDirectory() as tmp:
        code = generate(Path(tmp))
        if code != 0:
            return code
        fresh = {p.relative_to(tmp): p.read_bytes() for p in Path(tmp).rglob("*") if p.is_file()}
        have = {
            p.relative_to(OUT): p.read_bytes()
            for p in (OUT / "branch").rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
        }
        stale = sorted(str(k) for k in fresh.keys() | have.keys() if fresh.get(k) != have.get(k))
    if stale:
        print("gen/ is stale; run ./dev gen and commit. Differs:", *stale, sep="\n  ")
        return 1
    print("generated code: up to date")
    return 0


def main() -> int:
    if "--check" in sys.argv[1:]:
        return check()
    return generate(OUT)


if __name__ == "__main__":
    sys.exit(main())
