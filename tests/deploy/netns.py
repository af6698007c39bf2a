"""Hosts made of Linux network namespaces, as compose and Kubernetes give each container and
pod its own address: one namespace per host, each joined by a veth pair to a bridge in a
"switch" namespace; the test process (the load) joins the switch from the root namespace with
an address of its own. Names resolve through a hosts file per namespace (`ip netns exec`
mounts /etc/netns/NS/hosts over /etc/hosts), a name with several replicas listing each.

Needs root and `ip` (iproute2). Everything made is removed by Network.destroy(), and a run
that was killed leaves namespaces that the next run removes (their names carry its pid).
"""

from __future__ import annotations

import ipaddress
import os
import random
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

PREFIX = "branch-mh-"
NETNS_ETC = Path("/etc/netns")


class NetnsUnavailable(RuntimeError):
    """Namespaces cannot be made here (not root, no iproute2, no permission)."""


def ip(*args: str) -> str:
    try:
        done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NetnsUnavailable(f"`ip` (iproute2) cannot run: {exc}") from None
    if done.returncode != 0:
        raise NetnsUnavailable(f"`ip {' '.join(args)}` failed: {done.stderr.strip()}")
    return done.stdout


def quietly(*args: str) -> None:
    """`ip ARGS`, for cleaning up: whatever fails is already gone (or never was)."""
    try:
        subprocess.run(["ip", *args], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        pass


def remove_stale() -> None:
    """Namespaces of earlier runs whose process is gone."""
    try:
        names = [line.split()[0] for line in ip("netns", "list").splitlines() if line.strip()]
    except NetnsUnavailable:
        return
    for name in names:
        if not name.startswith(PREFIX):
            continue
        pid = name[len(PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            quietly("netns", "del", name)
            shutil.rmtree(NETNS_ETC / name, ignore_errors=True)


def _free_subnet() -> str:
    """A 10.x.y.0/24 that no route of this host overlaps: '10.x.y'."""
    routes = ip("-4", "route", "show", "table", "all")
    taken = []
    for line in routes.splitlines():
        dest = line.split()[0] if line.split() else ""
        if line.startswith(("local ", "broadcast ")):
            dest = line.split()[1]
        try:
            taken.append(ipaddress.ip_network(dest, strict=False))
        except ValueError:  # "default", "unreachable", ...
            continue
    rng = random.Random()
    for _ in range(1000):
        net = f"10.{rng.randrange(200, 250)}.{rng.randrange(1, 250)}"
        candidate = ipaddress.ip_network(f"{net}.0/24")
        if not any(candidate.overlaps(t) for t in taken):
            return net
    raise NetnsUnavailable("no free 10.x.y.0/24 subnet for the test network")


@dataclass
class Host:
    name: str
    netns: str
    address: str

    def exec_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.netns]


@dataclass
class Network:
    hosts: dict[str, Host] = field(default_factory=dict)
    names: dict[str, list[str]] = field(default_factory=dict)  # DNS name -> addresses
    run: str = field(default_factory=lambda: f"{PREFIX}{os.getpid()}-{random.randrange(16**4):04x}")
    subnet: str = ""
    _root_link: str = ""

    @property
    def switch(self) -> str:
        return f"{self.run}-switch"

    @property
    def load_address(self) -> str:
        """The test process's own address on the switch."""
        return f"{self.subnet}.1"

    def create(self) -> None:
        """The switch and the root namespace's link to it; raises NetnsUnavailable."""
        if os.geteuid() != 0:
            raise NetnsUnavailable("not root: network namespaces need CAP_SYS_ADMIN/NET_ADMIN")
        remove_stale()
        self.subnet = _free_subnet()
        ip("netns", "add", self.switch)
        ip("netns", "exec", self.switch, "ip", "link", "set", "lo", "up")  # exec works here
        try:
            NETNS_ETC.mkdir(parents=True, exist_ok=True)  # for the hosts files
        except OSError as exc:
            raise NetnsUnavailable(f"cannot write {NETNS_ETC}: {exc}") from None
        ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        ip("-n", self.switch, "link", "set", "br0", "up")
        self._root_link = f"bm{self.run[-4:]}l"
        ip("link", "add", self._root_link, "type", "veth", "peer", "name", "load",
           "netns", self.switch)
        ip("-n", self.switch, "link", "set", "load", "master", "br0", "up")
        ip("addr", "add", f"{self.load_address}/24", "dev", self._root_link)
        ip("link", "set", self._root_link, "up")

    def add_host(self, name: str, *dns: str) -> Host:
        """A namespace with eth0 on the switch and the next address; `dns` names resolve to
        it (in every host's hosts file, written by write_hosts)."""
        index = len(self.hosts) + 2
        host = Host(name, f"{self.run}-{name}", f"{self.subnet}.{index}")
        port = f"h{index}"  # the switch side of the pair
        ip("netns", "add", host.netns)
        ip("-n", self.switch, "link", "add", port, "type", "veth", "peer", "name", "eth0",
           "netns", host.netns)
        ip("-n", self.switch, "link", "set", port, "master", "br0", "up")
        ip("-n", host.netns, "addr", "add", f"{host.address}/24", "dev", "eth0")
        ip("-n", host.netns, "link", "set", "eth0", "up")
        ip("-n", host.netns, "link", "set", "lo", "up")
        self.hosts[name] = host
        for alias in (name, *dns):
            self.names.setdefault(alias, []).append(host.address)
        return host

    def write_hosts(self) -> None:
        lines = ["127.0.0.1 localhost"]
        lines += [f"{addr} {alias}" for alias, addrs in self.names.items() for addr in addrs]
        for host in self.hosts.values():
            etc = NETNS_ETC / host.netns
            etc.mkdir(parents=True, exist_ok=True)
            (etc / "hosts").write_text("\n".join(lines) + "\n")

    def destroy(self) -> None:
        """Remove every namespace, link and hosts file this network made (never raises)."""
        for host in self.hosts.values():
            quietly("netns", "del", host.netns)
            shutil.rmtree(NETNS_ETC / host.netns, ignore_errors=True)
        if self._root_link:
            quietly("link", "del", self._root_link)
        quietly("netns", "del", self.switch)
        self.hosts.clear()
        try:
            NETNS_ETC.rmdir()  # only when no one else keeps files there
        except OSError:
            pass
