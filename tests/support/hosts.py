"""Hosts on one machine: each a network namespace (own interfaces, own addresses), started in its
own mount and UTS namespace with a private, empty /tmp (so no host sees another's files) and its
own host name. A veth pair links each to the root namespace, where the shared services run:
the object store, and a forwarder to the loopback-only Redis and PostgreSQL, on a service address
every host routes to. Needs root (``ip netns``, ``unshare``, ``mount``)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


def unavailable() -> str | None:
    """Why namespaced hosts cannot be made here; None when they can."""
    if os.geteuid() != 0:
        return "needs root to create network and mount namespaces (ip netns, unshare)"
    missing = [tool for tool in ("ip", "unshare", "nsenter", "mount") if not shutil.which(tool)]
    if missing:
        return f"missing {', '.join(missing)} (scripts/install-multihost-tools.sh installs them)"
    probe = f"rrrprobe{os.getpid()}"
    try:
        _ip("netns", "add", probe)
        _ip("netns", "del", probe)
    except subprocess.CalledProcessError as exc:
        return f"cannot create a network namespace: {exc.stderr.strip()}"
    return None


@dataclass
class Host:
    name: str
    netns: str
    link: str  # the root namespace's end of its veth pair
    address: str  # the host's own address
    gateway: str  # the root namespace's address on its link

    def command(self, argv: list[str]) -> list[str]:
        """``argv`` run on this host: its network namespace, a fresh mount namespace with an
        empty private /tmp, and its own host name."""
        setup = 'mount -t tmpfs rrr-private /tmp && hostname "$0" && exec "$@"'
        return [
            "ip", "netns", "exec", self.netns,
            "unshare", "--mount", "--uts", "--propagation", "private",
            "sh", "-c", setup, self.name, *argv,
        ]  # fmt: skip

    def pids(self) -> list[int]:
        out = subprocess.run(
            ["ip", "netns", "pids", self.netns], capture_output=True, text=True, timeout=30
        ).stdout
        return [int(pid) for pid in out.split()]

    def power_off(self) -> None:
        """Every process of the host killed at once, and its link down: a host that died."""
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _ip("link", "set", "dev", self.link, "down")


class Network:
    """Hosts on 10.<n>.<i>.0/30 links; the shared services on ``service_address`` (10.<n>.0.1,
    an address of the root namespace every host reaches through its link)."""

    def __init__(self) -> None:
        self.tag = os.getpid() % 150
        self.prefix = f"10.{100 + self.tag}"
        self.service_address = f"{self.prefix}.0.1"
        self.hosts: list[Host] = []
        self._quietly("addr", "del", f"{self.service_address}/32", "dev", "lo")  # a crashed run's
        _ip("addr", "add", f"{self.service_address}/32", "dev", "lo")

    @staticmethod
    def _quietly(*args: str) -> None:
        subprocess.run(["ip", *args], capture_output=True, timeout=30)

    def add_host(self, name: str) -> Host:
        index = len(self.hosts) + 1
        host = Host(
            name=name,
            netns=f"rrr{self.tag}-{name}",
            link=f"rrr{self.tag}h{index}",
            address=f"{self.prefix}.{index}.2",
            gateway=f"{self.prefix}.{index}.1",
        )
        inner = f"rrr{self.tag}n{index}"
        self._quietly("netns", "del", host.netns)  # left by a run that was killed
        _ip("netns", "add", host.netns)
        self.hosts.append(host)
        _ip("link", "add", host.link, "type", "veth", "peer", "name", inner, "netns", host.netns)
        _ip("addr", "add", f"{host.gateway}/30", "dev", host.link)
        _ip("link", "set", "dev", host.link, "up")
        _ip("-n", host.netns, "link", "set", "dev", "lo", "up")
        _ip("-n", host.netns, "addr", "add", f"{host.address}/30", "dev", inner)
        _ip("-n", host.netns, "link", "set", "dev", inner, "up")
        _ip("-n", host.netns, "route", "add", "default", "via", host.gateway)
        return host

    def close(self) -> None:
        for host in self.hosts:
            for pid in host.pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self._quietly("netns", "del", host.netns)
        self._quietly("addr", "del", f"{self.service_address}/32", "dev", "lo")
