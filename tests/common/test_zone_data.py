"""The branch's zone is found without a system zone database (slim images have none): the
tzdata package is a dependency and zoneinfo falls back to it."""

from __future__ import annotations

import os
import subprocess
import sys


def test_branch_zone_loads_with_no_system_zone_database() -> None:
    code = ("import zoneinfo; assert zoneinfo.TZPATH == (), zoneinfo.TZPATH; "
            "from datetime import datetime, UTC; "
            "z = zoneinfo.ZoneInfo('Asia/Shanghai'); "
            "print(datetime(2026, 3, 1, 16, 5, tzinfo=UTC).astimezone(z).isoformat())")
    env = dict(os.environ, PYTHONTZPATH="")  # no system zone directories searched
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2026-03-02T00:05:00+08:00"
