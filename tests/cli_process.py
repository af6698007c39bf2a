"""branchctl as a person or a script runs it: a separate process whose stdout is a pipe (the
console is then 200 columns wide, services/cli/branchctl.py)."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

BRANCHCTL = str(Path(sys.executable).parent / "branchctl")
UUID = re.compile(r"[0-9a-f]{8}-(?:[0-9a-f]{4}-){3}[0-9a-f]{12}")


async def branchctl(home: Path, token: str, addresses: dict[str, int], *args: str,
                    timezone: str = "Asia/Shanghai") -> str:
    """Run `branchctl ARGS` with BRANCH_<SERVICE>_ADDR for each of `addresses` (service ->
    port); returns stdout and stderr together; fails the test on a non-zero exit."""
    env = {**os.environ, "BRANCHCTL_HOME": str(home), "BRANCH_TOKEN": token,
           "BRANCH_TIMEZONE": timezone}
    for service, port in addresses.items():
        env[f"BRANCH_{service.upper()}_ADDR"] = f"127.0.0.1:{port}"
    proc = await asyncio.create_subprocess_exec(
        BRANCHCTL, *args, env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    text = out.decode()
    assert proc.returncode == 0, text
    return text


def full_ids(text: str) -> set[str]:
    """Every whole UUID printed (an id cut with "…" is not one)."""
    return set(UUID.findall(text))
