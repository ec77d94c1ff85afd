"""Three network namespaces, client ─ proxy ─ backend, for the transparent-mode tests.

```
 pt-client-<id>             pt-proxy-<id>                      pt-backend-<id>
 10.231.1.2  ── veth ──  10.231.1.1 | 10.231.2.1  ── veth ──  10.231.2.2
 fd00:231:1::2           fd00:231:1::1 | fd00:231:2::1         fd00:231:2::2
```
The addresses are private and exist only inside these namespaces, which the test creates and
always deletes; nothing is routed anywhere else. The proxy namespace forwards; the backend's
route to the client network goes via the proxy (so replies to a client address come back to
the proxy host, as on a real set-up where Passthru is the backend's gateway), and the client's
route to the backend network too (for the plain forwarding check only).

Routing the replies into Passthru's transparent socket (``return_routing``):

- ``"policy"``: every packet that arrives from the backend side is delivered locally
  (``ip rule add iif <backend side> lookup 100``; ``ip route add local 0.0.0.0/0 dev lo table
  100``). Enough when the backend network talks only to Passthru.
- ``"nftables"``: the README's recipe for a real host: packets of a socket with the transparent
  flag get mark 1 (nftables ``socket transparent 1 meta mark set 1``), and marked packets are
  delivered locally (``ip rule add fwmark 0x1 lookup 100`` and the same local route).
- ``"none"``: no return routing; the backend's answer to the client address is forwarded on
  to the client, which never opened that connection: the transparent connect times out.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

CLIENT = {4: "10.231.1.2", 6: "fd00:231:1::2"}
PROXY_CLIENT_SIDE = {4: "10.231.1.1", 6: "fd00:231:1::1"}
PROXY_BACKEND_SIDE = {4: "10.231.2.1", 6: "fd00:231:2::1"}
BACKEND = {4: "10.231.2.2", 6: "fd00:231:2::2"}
PREFIX = {4: 24, 6: 64}
CLIENT_NET = {4: "10.231.1.0/24", 6: "fd00:231:1::/64"}
BACKEND_NET = {4: "10.231.2.0/24", 6: "fd00:231:2::/64"}
LOCAL_ALL = {4: "0.0.0.0/0", 6: "::/0"}
TABLE = "100"

NFT_RULES = """\
table inet passthru_transparent {
    chain prerouting {
        type filter hook prerouting priority mangle; policy accept;
        meta l4proto tcp socket transparent 1 meta mark set 0x1
    }
}
"""


class Unavailable(Exception):
    """The environment cannot host the topology (no privilege, no namespaces): skip, not fail."""


def run(argv: Sequence[str], *, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(list(argv), capture_output=True, text=True, input=stdin, timeout=30, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return done


@dataclass
class Topology:
    token: str = field(default_factory=lambda: secrets.token_hex(3))
    created: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.client = f"pt-client-{self.token}"
        self.proxy = f"pt-proxy-{self.token}"
        self.backend = f"pt-backend-{self.token}"
        # Interface names: at most 15 characters, unique within each namespace.
        self.client_if, self.proxy_client_if = f"ptc{self.token}", f"ptpc{self.token}"
        self.backend_if, self.proxy_backend_if = f"ptb{self.token}", f"ptpb{self.token}"

    # -- building ------------------------------------------------------------------------------
    def create(self, return_routing: str = "policy") -> Topology:
        if shutil.which("ip") is None:
            raise Unavailable("iproute2's 'ip' command is not installed (apt-get install iproute2)")
        if return_routing == "nftables" and shutil.which("nft") is None:
            raise Unavailable("the 'nft' command is not installed (apt-get install nftables)")
        for name in (self.client, self.proxy, self.backend):
            done = run(["ip", "netns", "add", name], check=False)
            if done.returncode != 0:
                raise Unavailable(
                    f"'ip netns add' is not allowed here ({done.stderr.strip()}): "
                    "creating network namespaces needs CAP_SYS_ADMIN (a container without it cannot)"
                )
            self.created.append(name)
            # No duplicate address detection: a link-local address still being checked cannot
            # source the neighbour solicitation a transparent SYN (whose source address is not
            # the interface's) needs, and the first connect would wait a second or two for it.
            self.sysctl(name, "net.ipv6.conf.all.accept_dad", "0")
            self.sysctl(name, "net.ipv6.conf.default.accept_dad", "0")
        for a_ns, a_if, b_ns, b_if in (
            (self.client, self.client_if, self.proxy, self.proxy_client_if),
            (self.backend, self.backend_if, self.proxy, self.proxy_backend_if),
        ):
            done = run(
                ["ip", "link", "add", a_if, "netns", a_ns, "type", "veth", "peer", "name", b_if, "netns", b_ns],
                check=False,
            )
            if done.returncode != 0:
                raise Unavailable(f"cannot create a veth pair here: {done.stderr.strip()}")
        for ns in self.created:
            self.ip(ns, "link", "set", "lo", "up")
        for version in (4, 6):
            self.address(self.client, self.client_if, CLIENT[version], version)
            self.address(self.proxy, self.proxy_client_if, PROXY_CLIENT_SIDE[version], version)
            self.address(self.proxy, self.proxy_backend_if, PROXY_BACKEND_SIDE[version], version)
            self.address(self.backend, self.backend_if, BACKEND[version], version)
        for ns, interface in (
            (self.client, self.client_if),
            (self.proxy, self.proxy_client_if),
            (self.proxy, self.proxy_backend_if),
            (self.backend, self.backend_if),
        ):
            self.ip(ns, "link", "set", interface, "up")
        self.sysctl(self.proxy, "net.ipv4.ip_forward", "1")
        self.sysctl(self.proxy, "net.ipv6.conf.all.forwarding", "1")
        for version in (4, 6):
            family = f"-{version}"
            self.ip(self.backend, family, "route", "add", CLIENT_NET[version], "via", PROXY_BACKEND_SIDE[version])
            self.ip(self.client, family, "route", "add", BACKEND_NET[version], "via", PROXY_CLIENT_SIDE[version])
        self.return_routing(return_routing)
        return self

    def address(self, ns: str, interface: str, address: str, version: int) -> None:
        extra = ["nodad"] if version == 6 else []  # usable at once (see accept_dad above)
        self.ip(ns, f"-{version}", "addr", "add", f"{address}/{PREFIX[version]}", "dev", interface, *extra)

    def return_routing(self, mode: str) -> None:
        if mode == "none":
            return
        for version in (4, 6):
            family = f"-{version}"
            if mode == "policy":
                self.ip(self.proxy, family, "rule", "add", "iif", self.proxy_backend_if, "lookup", TABLE)
            elif mode == "nftables":
                self.ip(self.proxy, family, "rule", "add", "fwmark", "0x1", "lookup", TABLE)
            else:
                raise ValueError(f"unknown return routing {mode!r}")
            self.ip(self.proxy, family, "route", "add", "local", LOCAL_ALL[version], "dev", "lo", "table", TABLE)
        if mode == "nftables":
            run([*self.prefix(self.proxy), "nft", "-f", "-"], stdin=NFT_RULES)

    # -- using ---------------------------------------------------------------------------------
    def prefix(self, ns: str) -> list[str]:
        """The argv prefix that runs a command inside namespace ``ns``."""
        return ["ip", "netns", "exec", ns]

    def exec(self, ns: str, *argv: str) -> subprocess.CompletedProcess:
        return run([*self.prefix(ns), *argv])

    def sysctl(self, ns: str, key: str, value: str) -> None:
        """Set a network sysctl of namespace ``ns`` (no dependency on procps' sysctl)."""
        path = "/proc/sys/" + key.replace(".", "/")
        self.exec(ns, sys.executable, "-c", "import sys; open(sys.argv[1], 'w').write(sys.argv[2])", path, value)

    def ip(self, ns: str, *argv: str) -> subprocess.CompletedProcess:
        return run(["ip", "-n", ns, *argv])

    def destroy(self) -> None:
        """Delete every namespace this topology created (its veth pairs go with them)."""
        for name in reversed(self.created):
            run(["ip", "netns", "del", name], check=False)
        self.created.clear()
