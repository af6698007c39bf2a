"""Every benchmark ends by itself. Each runs at a small size in its own process; the limit is a
hang check (the event-hop consumer used to wait forever on its subscription's cleanup after
the connection closed), not a speed assertion."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
HUNG_AFTER = 600  # seconds: far beyond a small run on a loaded 2-core machine

SMALL = {
    "directory_rpc.py": ["--calls", "20", "--events", "10"],
    "directory_search.py": ["--clients", "200"],
    "vip_relay.py": ["--clients", "20", "--runs", "1"],
    "remote_report.py": ["--trades", "300"],
    # the whole suite with a 10-client demo branch, 8 people opening 6 pages each
    "console_pages.py": ["--demo-clients", "10", "--staff", "8", "--requests", "6",
                         "--startup-timeout", "500"],
}


def test_every_bench_has_a_small_size() -> None:
    assert {p.name for p in (ROOT / "bench").glob("*.py")} == set(SMALL)


@pytest.mark.parametrize("script", sorted(SMALL))
def test_bench_finishes_on_its_own(script: str, tmp_path: Path) -> None:
    try:
        done = subprocess.run(
            [sys.executable, str(ROOT / "bench" / script), *SMALL[script]],
            cwd=tmp_path, capture_output=True, text=True, timeout=HUNG_AFTER,
            env={"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin"},
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{script} still running after {HUNG_AFTER} s: hung\n{exc.stderr!r}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "|---" in done.stdout  # it printed its table
    if script == "console_pages.py":  # every role's page answered
        assert "| **every page** |" in done.stdout and "errors:" not in done.stdout
    if script == "directory_rpc.py":
        assert "| event hop:" in done.stdout  # the part that used to hang ran to the end
