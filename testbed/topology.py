"""The Mobile IPv6 testbed: four network namespaces joined by veth pairs.

    <tag>-cn                 <tag>-rtr (IPv6 forwarding)                 <tag>-ha
    cn0 2001:db8:c::2 ----- r-cn 2001:db8:c::1
                            br-home 2001:db8:1::1 [h-ha, h-mn] ----- ha0 2001:db8:1::a
                            r-f1 2001:db8:f1::1 ------+    |
                            r-f2 2001:db8:f2::1 ---+  |    +---(h-mn)--+
                                                   |  |                |
    <tag>-mn   mn-f2 2001:db8:f2::100 -------------+  |                |
               mn-f1 2001:db8:f1::100 ----------------+                |
               mn-home (home link, DOWN unless the MN is brought home) +

The MN has a default route through each foreign link (mn-f1 metric 100, mn-f2
metric 200), so either link alone reaches the home agent; `set_mn_link()`,
`mn_go_home()` and `mn_leave_home()` move it.

Everything lives inside the namespaces, so deleting them removes the whole
topology; nothing is created in the caller's namespace except a private bpffs
mount under /run (see `Testbed.BPFFS`).

The demo (scripts/demo), the end-to-end tests (Tests/e2e) and perf/ all build
the network from this one definition.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence, Union

Command = Union[str, Sequence[str]]

TESTBED_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTBED_DIR.parent


@dataclass(frozen=True)
class Veth:
    """One veth pair: `a_if` in node `a`, `b_if` in node `b`."""
    a: str
    a_if: str
    a_mac: str
    b: str
    b_if: str
    b_mac: str


class TestbedError(RuntimeError):
    pass


class Testbed:
    """The topology, with helpers to run commands inside its namespaces.

    Usage:
        with Testbed(tag="m6") as tb:          # up() now, down() on exit / SIGTERM
            tb.run("cn", ["ping", "-6", "-c1", tb.COA1])
    """

    __test__ = False  # not a pytest test class, despite the name

    # --- addresses -------------------------------------------------------
    HOME_PREFIX = "2001:db8:1::/64"
    HOME_PLEN = 64
    HA = "2001:db8:1::a"              # home agent, on the home link
    HOA = "2001:db8:1::100"           # the mobile node's home address
    HOME_ROUTER = "2001:db8:1::1"     # router's address on the home link (br-home)
    CN = "2001:db8:c::2"              # correspondent node
    CN_ROUTER = "2001:db8:c::1"
    COA1 = "2001:db8:f1::100"         # care-of address on foreign link 1 (mn-f1)
    F1_ROUTER = "2001:db8:f1::1"
    COA2 = "2001:db8:f2::100"         # care-of address on foreign link 2 (mn-f2)
    F2_ROUTER = "2001:db8:f2::1"

    # --- interfaces ------------------------------------------------------
    NODES = ("cn", "rtr", "ha", "mn")
    HA_IF = "ha0"
    HA_PEER_IF = "h-ha"               # router-side peer of ha0, a port of br-home
    HOME_BRIDGE = "br-home"
    MN_IF1 = "mn-f1"
    MN_IF2 = "mn-f2"
    MN_HOME_IF = "mn-home"
    CN_IF = "cn0"

    # Fixed, readable MACs (02:00:00:00:<link>:<host>); the namespaces keep
    # two testbeds apart, so every tag can use the same ones.
    VETHS = (
        Veth("rtr", "r-cn", "02:00:00:00:0c:01", "cn", "cn0", "02:00:00:00:0c:02"),
        Veth("rtr", "h-ha", "02:00:00:00:01:f0", "ha", "ha0", "02:00:00:00:01:0a"),
        Veth("rtr", "h-mn", "02:00:00:00:01:f1", "mn", "mn-home", "02:00:00:00:01:64"),
        Veth("rtr", "r-f1", "02:00:00:00:f1:01", "mn", "mn-f1", "02:00:00:00:f1:64"),
        Veth("rtr", "r-f2", "02:00:00:00:f2:01", "mn", "mn-f2", "02:00:00:00:f2:64"),
    )
    BRIDGE_MAC = "02:00:00:00:01:01"
    BRIDGE_PORTS = ("h-ha", "h-mn")

    ADDRESSES = {
        ("cn", "cn0"): [CN + "/64"],
        ("rtr", "r-cn"): [CN_ROUTER + "/64"],
        ("rtr", "br-home"): [HOME_ROUTER + "/64"],
        ("rtr", "r-f1"): [F1_ROUTER + "/64"],
        ("rtr", "r-f2"): [F2_ROUTER + "/64"],
        ("ha", "ha0"): [HA + "/64"],
        ("mn", "mn-f1"): [COA1 + "/64"],
        ("mn", "mn-f2"): [COA2 + "/64"],
    }
    # The MN's foreign links: care-of address, router, metric of the default route through
    # it. Either link alone reaches the home agent; mn-f1 wins while both are up.
    MN_FOREIGN_LINKS = {
        MN_IF1: (COA1, F1_ROUTER, 100),
        MN_IF2: (COA2, F2_ROUTER, 200),
    }
    MN_HOME_METRIC = 50               # at home, the home router is preferred over both
    ROUTES = {
        "cn": [f"default via {CN_ROUTER} dev cn0"],
        "ha": [f"default via {HOME_ROUTER} dev ha0"],
        "mn": [f"default via {gw} dev {ifname} metric {metric}"
               for ifname, (_coa, gw, metric) in MN_FOREIGN_LINKS.items()],
    }
    DOWN_INTERFACES = {("mn", "mn-home")}

    # --- optional attacker node (add_attacker / remove_attacker) ------------
    # `<tag>-atk` on its own link off the router. It owns 2001:db8:a::/48: its link is the
    # first /64 (atk0 2001:db8:a::2, router r-atk 2001:db8:a::1) and the router routes the
    # rest of the /48 to it, so it can send from (and be answered at) many source /64s.
    OPTIONAL_NODES = ("atk",)
    ATK = "2001:db8:a::2"
    ATK_ROUTER = "2001:db8:a::1"
    ATK_PREFIX = "2001:db8:a::/48"
    ATK_IF = "atk0"
    ATK_PEER_IF = "r-atk"
    ATK_VETH = Veth("rtr", "r-atk", "02:00:00:00:0a:01", "atk", "atk0", "02:00:00:00:0a:02")

    # Every namespace: no DAD, no RA/autoconf/RS, so no address or route
    # appears by itself and addresses are usable at once.
    SYSCTLS = [
        f"net.ipv6.conf.{scope}.{key}={value}"
        for scope in ("all", "default")
        for key, value in (("accept_dad", 0), ("dad_transmits", 0), ("accept_ra", 0),
                           ("autoconf", 0), ("router_solicitations", 0))
    ]
    ROUTER_SYSCTLS = ["net.ipv6.conf.all.forwarding=1"]

    XDP_PASS_SRC = TESTBED_DIR / "xdp_pass.bpf.c"
    XDP_PASS_OBJ = TESTBED_DIR / "xdp_pass.o"
    CLANG_CANDIDATES = ("/opt/swift/usr/bin/clang", "clang")

    def __init__(self, tag: str = "m6", *, xdp_pass_peer: bool = True,
                 tx_offload_off: bool = True, quiet_mn_kernel: bool = True,
                 bpffs: bool = True, verbose: bool = False):
        if not tag or len(tag) > 12 or not all(c.isalnum() or c in "-_" for c in tag):
            raise ValueError(f"bad tag {tag!r}: use 1-12 characters [A-Za-z0-9_-]")
        self.tag = tag
        self.xdp_pass_peer = xdp_pass_peer
        self.tx_offload_off = tx_offload_off
        self.quiet_mn_kernel = quiet_mn_kernel
        self.use_bpffs = bpffs
        self.verbose = verbose
        # Private per-tag run directory on the host. Its `bpffs` is a bpf
        # filesystem that every process started through run()/popen() sees at
        # /sys/fs/bpf (see _exec_prefix), so a daemon and the CLI share pins.
        # A second Testbed(tag) object (another process) finds it by its path.
        self.run_dir = Path(f"/run/mip6-testbed-{tag}")
        self.BPFFS = self.run_dir / "bpffs"
        self._bpffs_mounted = False
        self._procs: list[subprocess.Popen] = []
        self._lock = threading.Lock()
        self._old_handlers: dict[int, object] = {}
        self.notes: list[str] = []      # non-fatal things up() skipped

    # --- names -----------------------------------------------------------
    def ns(self, name: str) -> str:
        """Namespace name of node `name` ("cn", "rtr", "ha", "mn", or the optional "atk")."""
        if name not in self.NODES + self.OPTIONAL_NODES:
            raise KeyError(f"unknown node {name!r}; nodes are {', '.join(self.NODES + self.OPTIONAL_NODES)}")
        return f"{self.tag}-{name}"

    @property
    def namespaces(self) -> list[str]:
        """The namespaces of the four nodes (optional nodes not included)."""
        return [self.ns(n) for n in self.NODES]

    def mac(self, node: str, ifname: str) -> str:
        """The interface's current MAC address."""
        out = self.run(node, ["cat", f"/sys/class/net/{ifname}/address"]).stdout
        return out.strip()

    # --- running things --------------------------------------------------
    def _exec_prefix(self, node: str) -> list[str]:
        prefix = ["ip", "netns", "exec", self.ns(node)]
        if self.use_bpffs and (self._bpffs_mounted or os.path.ismount(self.BPFFS)):
            # `ip netns exec` mounts a fresh sysfs on /sys in a private mount
            # namespace, hiding any host bpffs at /sys/fs/bpf. Bind the
            # testbed's bpffs (visible there: it lives under /run) in its place.
            prefix += ["sh", "-c", 'mount --bind "$0" /sys/fs/bpf && exec "$@"', str(self.BPFFS)]
        return prefix

    def argv(self, node: str, cmd: Command) -> list[str]:
        """Full argv that runs `cmd` in `node`. A string runs through `sh -c`."""
        if isinstance(cmd, str):
            cmd = ["sh", "-c", cmd]
        return self._exec_prefix(node) + list(cmd)

    def run(self, node: str, cmd: Command, check: bool = True, timeout: float | None = 30,
            input: str | None = None, **kwargs) -> subprocess.CompletedProcess:
        """Run `cmd` in `node` and wait; captures text stdout/stderr."""
        argv = self.argv(node, cmd)
        if self.verbose:
            print("+", shlex.join(argv), flush=True)
        kwargs.setdefault("cwd", REPO_ROOT)
        cp = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                            input=input, **kwargs)
        if check and cp.returncode != 0:
            shown = cmd if isinstance(cmd, str) else shlex.join(cmd)
            raise TestbedError(f"[{node}] {shown} exited {cp.returncode}\n"
                               f"stdout: {cp.stdout.strip()}\nstderr: {cp.stderr.strip()}")
        return cp

    def popen(self, node: str, cmd: Command, **kwargs) -> subprocess.Popen:
        """Start `cmd` in `node` in the background; down() ends it if still running."""
        argv = self.argv(node, cmd)
        if self.verbose:
            print("+ &", shlex.join(argv), flush=True)
        kwargs.setdefault("cwd", REPO_ROOT)
        # Own process group, so stopping it also stops `ip netns exec`'s child.
        kwargs.setdefault("start_new_session", True)
        p = subprocess.Popen(argv, **kwargs)
        with self._lock:
            self._procs.append(p)
        return p

    @staticmethod
    def stop(p: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 5.0) -> int | None:
        """Send `sig` to a process started by popen(), SIGKILL it after `timeout`."""
        if p.poll() is not None:
            return p.returncode
        try:
            p.send_signal(sig)
            return p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            return p.wait(5)
        except ProcessLookupError:
            return p.wait(5)

    def _host(self, argv: list[str], check: bool = True, input: str | None = None,
              timeout: float = 30) -> subprocess.CompletedProcess:
        if self.verbose:
            print("+", shlex.join(argv), *(["<<<", input] if input else []), flush=True)
        cp = subprocess.run(argv, capture_output=True, text=True, input=input, timeout=timeout)
        if check and cp.returncode != 0:
            raise TestbedError(f"{shlex.join(argv)} exited {cp.returncode}: {cp.stderr.strip()}"
                               + (f"\ninput:\n{input}" if input else ""))
        return cp

    def _ip_batch(self, node: str | None, lines: Iterable[str]) -> None:
        argv = ["ip"] + (["-n", self.ns(node)] if node else []) + ["-batch", "-"]
        self._host(argv, input="\n".join(lines) + "\n")

    # --- lifecycle -------------------------------------------------------
    def exists(self) -> list[str]:
        """Namespaces of this tag that currently exist (optional nodes included)."""
        have = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
        return [n for n in self.namespaces + [self.ns(o) for o in self.OPTIONAL_NODES] if n in have]

    def up(self) -> "Testbed":
        """Build the topology (removing leftovers of the same tag first)."""
        if os.geteuid() != 0:
            raise TestbedError("the testbed needs root (network namespaces, veth, XDP)")
        t0 = time.monotonic()
        self.down()
        try:
            self._up()
        except BaseException:
            self.down()
            raise
        self.up_seconds = time.monotonic() - t0
        return self

    def _up(self) -> None:
        self._ip_batch(None, [f"netns add {n}" for n in self.namespaces])
        for node in self.NODES:
            extra = self.ROUTER_SYSCTLS if node == "rtr" else []
            self._host(["ip", "netns", "exec", self.ns(node), "sysctl", "-q", "-w",
                        *self.SYSCTLS, *extra])

        # Router: bridge, all veths (created from here, peers straight into
        # their namespace so they get that namespace's sysctl defaults).
        r = [f"link add {self.HOME_BRIDGE} address {self.BRIDGE_MAC} type bridge "
             "forward_delay 0 stp_state 0 mcast_snooping 0"]
        for v in self.VETHS:
            r.append(f"link add {v.a_if} address {v.a_mac} type veth "
                     f"peer name {v.b_if} address {v.b_mac} netns {self.ns(v.b)}")
        for port in self.BRIDGE_PORTS:
            # Bridge ports carry no addresses of their own.
            r.append(f"link set dev {port} addrgenmode none")
            r.append(f"link set dev {port} master {self.HOME_BRIDGE}")
        self._ip_batch("rtr", r + self._addr_lines("rtr"))
        for node in ("cn", "ha", "mn"):
            self._ip_batch(node, self._addr_lines(node))

        if self.tx_offload_off:
            self._tx_offload_off()
        if self.xdp_pass_peer:
            self.attach_xdp_pass()
        if self.quiet_mn_kernel:
            self._quiet_mn_kernel()
        if self.use_bpffs:
            self._mount_bpffs()

    def _addr_lines(self, node: str) -> list[str]:
        lines = ["link set dev lo up"]
        ifaces = [v.a_if for v in self.VETHS if v.a == node] + \
                 [v.b_if for v in self.VETHS if v.b == node]
        if node == "rtr" and self.BRIDGE_PORTS:
            ifaces.append(self.HOME_BRIDGE)
        for ifname in ifaces:
            for addr in self.ADDRESSES.get((node, ifname), []):
                lines.append(f"address add {addr} dev {ifname} nodad")
            if (node, ifname) not in self.DOWN_INTERFACES:
                lines.append(f"link set dev {ifname} up")
        lines += [f"route add {r}" for r in self.ROUTES.get(node, [])]
        return lines

    def _tx_offload_off(self) -> None:
        # Native XDP_TX on veth loses the skb's CHECKSUM_PARTIAL state, so
        # frames the kernel sent with offloaded checksums would leave with bad
        # ones. Compute checksums in software on both ends of the home veth.
        if not shutil.which("ethtool"):
            self.notes.append("ethtool not found: tx checksum offload left on (apt-get install ethtool)")
            return
        for node, ifname in (("rtr", self.HA_PEER_IF), ("ha", self.HA_IF)):
            self._host(["ip", "netns", "exec", self.ns(node), "ethtool", "-K", ifname, "tx", "off"],
                       check=False)

    def _quiet_mn_kernel(self) -> None:
        # The mobile node is scapy; the MN namespace's kernel knows neither
        # Type 2 routing headers nor IPv6-in-IPv6 (no ip6tnl) and would answer
        # BAs and tunneled packets with ICMPv6 Parameter Problems to the home
        # agent. AF_PACKET sees packets before netfilter, so drop them there
        # (only those: the MN kernel still answers the HA's pings and ND).
        # Fragments pass (RFC 2473 §7.1(b)): this hook sees them before reassembly, and the
        # kernel reassembles a tunnel packet the home agent had to fragment for `mip6 mn`'s
        # tunnel socket.
        if not shutil.which("nft"):
            self.notes.append("nft not found: the MN kernel will send ICMPv6 errors to the HA")
            return
        rules = ("table ip6 mip6_testbed {\n chain input {\n"
                 "  type filter hook input priority 0; policy accept;\n"
                 f"  ip6 saddr {self.HA} exthdr frag missing meta l4proto {{ ipv6, 135 }} counter drop\n"
                 f"  ip6 saddr {self.HA} rt type 2 counter drop\n }}\n}}\n")
        cp = self._host(["ip", "netns", "exec", self.ns("mn"), "nft", "-f", "-"], input=rules, check=False)
        if cp.returncode != 0:
            self.notes.append(f"nft failed, the MN kernel will send ICMPv6 errors to the HA: {cp.stderr.strip()}")

    def _mount_bpffs(self) -> None:
        self.BPFFS.mkdir(parents=True, exist_ok=True)
        self._host(["mount", "-t", "bpf", "bpf", str(self.BPFFS)])
        self._bpffs_mounted = True

    # --- optional attacker node -------------------------------------------
    def has_attacker(self) -> bool:
        return self.ns("atk") in self.exists()

    def add_attacker(self) -> None:
        """Add `<tag>-atk` (see ATK_*): a veth r-atk/atk0 to the router, 2001:db8:a::2/64 with a
        default route through the router, and on the router a route for the rest of
        2001:db8:a::/48 through it. Replaces an attacker left over by an earlier run."""
        self.remove_attacker()
        v, ns = self.ATK_VETH, self.ns("atk")
        try:
            self._host(["ip", "netns", "add", ns])
            self._host(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", *self.SYSCTLS])
            self._ip_batch("rtr", [
                f"link add {v.a_if} address {v.a_mac} type veth peer name {v.b_if} address {v.b_mac} netns {ns}",
                f"address add {self.ATK_ROUTER}/64 dev {v.a_if} nodad",
                f"link set dev {v.a_if} up",
                f"route add {self.ATK_PREFIX} via {self.ATK} dev {v.a_if}",
            ])
            self._ip_batch("atk", [
                "link set dev lo up",
                f"address add {self.ATK}/64 dev {v.b_if} nodad",
                f"link set dev {v.b_if} up",
                f"route add default via {self.ATK_ROUTER} dev {v.b_if}",
            ])
        except BaseException:
            self.remove_attacker()
            raise

    def remove_attacker(self) -> None:
        """Remove the attacker node (its veth pair and the router's route go with it)."""
        ns = self.ns("atk")
        if ns in self.exists():
            self._host(["ip", "netns", "del", ns], check=False)

    # --- XDP helper ------------------------------------------------------
    def xdp_pass_object(self) -> Path:
        """Compile xdp_pass.bpf.c (only if the object is missing or stale)."""
        src, obj = self.XDP_PASS_SRC, self.XDP_PASS_OBJ
        if obj.exists() and obj.stat().st_mtime >= src.stat().st_mtime:
            return obj
        clang = next((c for c in self.CLANG_CANDIDATES if shutil.which(c)), None)
        if clang is None:
            raise TestbedError("no clang with a BPF target found to build xdp_pass.bpf.c")
        fd, tmp = tempfile.mkstemp(prefix=".xdp_pass.", suffix=".o", dir=TESTBED_DIR)
        os.close(fd)
        try:
            self._host([clang, "-O2", "-g", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu",
                        "-c", str(src), "-o", tmp])
            os.replace(tmp, obj)   # atomic: concurrent testbeds may build at once
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return obj

    def attach_xdp_pass(self, node: str = "rtr", ifname: str = HA_PEER_IF) -> None:
        """Attach the XDP_PASS program in native mode, so the peer's XDP_TX delivers."""
        obj = self.xdp_pass_object()
        self._host(["ip", "-n", self.ns(node), "link", "set", "dev", ifname,
                    "xdpdrv", "obj", str(obj), "sec", "xdp"])

    def xdp_info(self, node: str, ifname: str) -> dict | None:
        """The `xdp` object of `ip -j link show`, or None when no program is attached."""
        import json
        out = self.run(node, ["ip", "-j", "-d", "link", "show", "dev", ifname]).stdout
        return json.loads(out)[0].get("xdp")

    def mn_kernel_drops(self) -> int:
        """Packets the quiet-MN-kernel rule dropped so far (BAs or tunneled packets that reached
        the MN's kernel instead of being taken by a mobile-node data plane); -1 without nft."""
        import json
        cp = self.run("mn", ["nft", "-j", "list", "table", "ip6", "mip6_testbed"], check=False)
        if cp.returncode != 0:
            return -1
        total = 0
        for item in json.loads(cp.stdout).get("nftables", []):
            for expr in item.get("rule", {}).get("expr", []):
                if "counter" in expr:
                    total += expr["counter"].get("packets", 0)
        return total

    # --- moving the mobile node ------------------------------------------
    # The kernel removes an interface's global addresses (keep_addr_on_down=0) and the
    # routes through it when it goes down, and brings neither back when it comes up: what
    # a mobile node sees when it leaves a link and comes back to it.
    def set_mn_link(self, ifname: str, up: bool, dad: bool = False) -> None:
        """Take a foreign link of the MN (mn-f1, mn-f2) down, or bring it up with its care-of
        address and its default route (re-added: the kernel dropped them on down). With
        `dad`, the address goes through Duplicate Address Detection (tentative for about a
        second, as for any address a user adds; needs `mn_dad()`)."""
        if ifname not in self.MN_FOREIGN_LINKS:
            raise KeyError(f"{ifname!r} is not a foreign link of the MN ({', '.join(self.MN_FOREIGN_LINKS)})")
        if not up:
            self._ip_batch("mn", [f"link set dev {ifname} down"])
            return
        coa, gw, metric = self.MN_FOREIGN_LINKS[ifname]
        self._ip_batch("mn", [f"link set dev {ifname} up",
                              f"address replace {coa}/64 dev {ifname}{'' if dad else ' nodad'}",
                              f"route replace default via {gw} dev {ifname} metric {metric}"])

    @contextlib.contextmanager
    def mn_dad(self):
        """The MN's foreign links with the kernel's default DAD settings (accept_dad=1,
        dad_transmits=1) instead of the testbed's none, for the block."""
        def dad(on: int) -> None:
            self._host(["ip", "netns", "exec", self.ns("mn"), "sysctl", "-q", "-w"]
                       + [f"net.ipv6.conf.{i}.{k}={on}" for i in self.MN_FOREIGN_LINKS
                          for k in ("accept_dad", "dad_transmits")])
        dad(1)
        try:
            yield self
        finally:
            dad(0)

    def mn_link_state(self, ifname: str) -> dict:
        """{"up": bool, "addresses": [global addresses], "default": bool (a default route via it)}."""
        import json
        link = json.loads(self.run("mn", ["ip", "-j", "link", "show", "dev", ifname]).stdout)[0]
        addrs = json.loads(self.run("mn", ["ip", "-j", "-6", "addr", "show", "dev", ifname,
                                           "scope", "global"]).stdout or "[]")
        routes = json.loads(self.run("mn", ["ip", "-j", "-6", "route", "show", "default",
                                            "dev", ifname]).stdout or "[]")
        return {"up": "UP" in link["flags"],
                "addresses": [a["local"] for e in addrs for a in e.get("addr_info", []) if "local" in a],
                "default": bool(routes)}

    def set_mn_home(self, at_home: bool) -> None:
        """Bring the MN's home interface up with the home address (/64, and a default route
        through the home router), or take it down and clear it."""
        if at_home:
            self._ip_batch("mn", [f"link set dev {self.MN_HOME_IF} up",
                                  f"address replace {self.HOA}/{self.HOME_PLEN} dev {self.MN_HOME_IF} nodad",
                                  f"route replace default via {self.HOME_ROUTER} dev {self.MN_HOME_IF} "
                                  f"metric {self.MN_HOME_METRIC}"])
        else:
            self._ip_batch("mn", [f"address flush dev {self.MN_HOME_IF}",
                                  f"link set dev {self.MN_HOME_IF} down"])

    def mn_go_home(self) -> None:
        """The MN returns home: mn-home up with the home address, then (same `ip -batch`)
        both foreign links down."""
        self._ip_batch("mn", [f"link set dev {self.MN_HOME_IF} up",
                              f"address replace {self.HOA}/{self.HOME_PLEN} dev {self.MN_HOME_IF} nodad",
                              f"route replace default via {self.HOME_ROUTER} dev {self.MN_HOME_IF} "
                              f"metric {self.MN_HOME_METRIC}"]
                       + [f"link set dev {ifname} down" for ifname in self.MN_FOREIGN_LINKS])

    def mn_leave_home(self, links: Iterable[str] = (MN_IF1, MN_IF2)) -> None:
        """The MN goes away again: foreign `links` up (addresses, routes), then mn-home down."""
        for ifname in links:
            self.set_mn_link(ifname, True)
        self.set_mn_home(False)

    def reset_mn(self) -> None:
        """Put the MN's links back as up() made them: both foreign links up with their
        addresses and routes, mn-home down and empty."""
        self.set_mn_home(False)
        for ifname in self.MN_FOREIGN_LINKS:
            self.set_mn_link(ifname, True)

    # --- teardown --------------------------------------------------------
    def down(self) -> None:
        """Remove everything; safe to call any number of times, also after a partial up()."""
        with self._lock:
            procs, self._procs = self._procs, []
        for p in procs:
            self.stop(p, timeout=3)
        have = self.exists()
        if have:
            self._host(["ip", "-batch", "-"], check=False,
                       input="".join(f"netns del {n}\n" for n in have))
        if os.path.ismount(self.BPFFS):
            self._host(["umount", "-l", str(self.BPFFS)], check=False)
        self._bpffs_mounted = False
        if self.run_dir.exists():
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def _on_signal(self, signum, frame):
        raise SystemExit(128 + signum)

    def __enter__(self) -> "Testbed":
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGTERM, signal.SIGHUP):
                self._old_handlers[s] = signal.signal(s, self._on_signal)
        try:
            return self.up()
        except BaseException:
            self._restore_handlers()
            raise

    def __exit__(self, *exc) -> None:
        try:
            self.down()
        finally:
            self._restore_handlers()

    def _restore_handlers(self) -> None:
        for s, h in self._old_handlers.items():
            signal.signal(s, h)
        self._old_handlers.clear()
