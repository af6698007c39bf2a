"""./dev test runs mypy over pyproject.toml's [tool.mypy] files and fails on a type error.

These run mypy through the repository's own configuration (plugins, stub packages, strictness),
the way ./dev test does, on a small file written for the test."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _mypy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
         "--no-incremental", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )


def test_a_type_error_fails_the_check(tmp_path: Path) -> None:
    bad = tmp_path / "bad_types.py"
    bad.write_text(
        "from services.common.protos import ts\n"
        "from google.protobuf.timestamp_pb2 import Timestamp\n\n"
        "def later(stamp: Timestamp) -> int:\n"
        "    return stamp.seconds + 1\n\n"
        "later(ts(None))\n"
    )
    result = _mypy(str(bad))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "bad_types.py:7: error" in result.stdout
    assert "[arg-type]" in result.stdout


def test_the_same_file_typed_right_passes(tmp_path: Path) -> None:
    good = tmp_path / "good_types.py"
    good.write_text(
        "from datetime import UTC, datetime\n\n"
        "from services.common.protos import ts\n\n"
        "def later() -> int:\n"
        "    return ts(datetime(2026, 1, 1, tzinfo=UTC)).seconds + 1\n"
    )
    result = _mypy(str(good))
    assert result.returncode == 0, result.stdout + result.stderr


def test_dev_test_runs_mypy_over_the_configured_paths() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert {"services", "tests", "bench"} <= set(config["files"])
    # strict for all of them: no override relaxes the tests' or benchmarks' annotations
    assert config["strict"] is True
    for override in config.get("overrides", []):
        relaxed = {k for k, v in override.items() if k.startswith("disallow_") and v is False}
        assert not relaxed, override
    test_block = (ROOT / "dev").read_text().split("  test)", 1)[1].split(";;", 1)[0]
    # no arguments: mypy checks exactly [tool.mypy] files, and set -e stops on its failure
    assert '\n    "$VENV/bin/mypy"\n' in test_block
