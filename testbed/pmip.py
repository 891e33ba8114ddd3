"""The Proxy Mobile IPv6 testbed (issue 13): a correspondent, a router, an LMA, two MAGs and
one unmodified Linux host that moves between the MAGs' access links (design doc pmipv6.md §4.1).

    <tag>-cn   cn0 2001:db8:c::2 ---- r-cn 2001:db8:c::1
                                      <tag>-rtr   route 2001:db8:100::/48 via the LMA
    <tag>-lma  lma0 2001:db8:a::1 --- r-lma 2001:db8:a::2
    <tag>-mag1 m1-core 2001:db8:b1::2 - r-m1 2001:db8:b1::1
               m1-acc ------------------------------+
    <tag>-mag2 m2-core 2001:db8:b2::2 - r-m2 2001:db8:b2::1
               m2-acc ---------------------------+  |
                                                 |  |
    <tag>-air  bridge br-air: ports a-m2, a-m1, a-mn  (one MAG port up at a time: the "radio")
                                                        |
    <tag>-mn   mn0 (a plain host: kernel defaults, RA + SLAAC, DAD; no mip6 anywhere)

The host keeps one interface and its carrier while "moving": `move_to(n)` takes one MAG's
bridge port down and the other's up, as a host roaming between access points sees it. Both
access links get the same MAC and link-local address from `mip6 mag` (RFC 5213 §6.9.3), so the
host's default router never changes.
"""

from __future__ import annotations

import json
import subprocess
import time

from testbed.topology import Testbed, TestbedError, Veth

LMA = "2001:db8:a::1"
LMA_ROUTER = "2001:db8:a::2"
MAG = {1: "2001:db8:b1::2", 2: "2001:db8:b2::2"}
MAG_ROUTER = {1: "2001:db8:b1::1", 2: "2001:db8:b2::1"}
HNP_AGGREGATE = "2001:db8:100::/48"
NAI = "mn1@pmip.example"
HNP = "2001:db8:100:1::/64"
MN_MAC = "02:00:00:00:aa:01"
MAG_MAC = "02:00:5e:00:53:01"
MAG_LINK_LOCAL = "fe80::1"


class PmipTestbed(Testbed):
    __test__ = False

    NODES = ("cn", "rtr", "lma", "mag1", "mag2", "air", "mn")
    OPTIONAL_NODES = ()
    MN_IF = "mn0"
    AIR_BRIDGE = "br-air"
    VETHS = (
        Veth("rtr", "r-cn", "02:00:00:00:0c:01", "cn", "cn0", "02:00:00:00:0c:02"),
        Veth("rtr", "r-lma", "02:00:00:00:0a:02", "lma", "lma0", "02:00:00:00:0a:01"),
        Veth("rtr", "r-m1", "02:00:00:00:b1:01", "mag1", "m1-core", "02:00:00:00:b1:02"),
        Veth("rtr", "r-m2", "02:00:00:00:b2:01", "mag2", "m2-core", "02:00:00:00:b2:02"),
        Veth("air", "a-m1", "02:00:00:00:e1:01", "mag1", "m1-acc", "02:00:00:00:e1:02"),
        Veth("air", "a-m2", "02:00:00:00:e2:01", "mag2", "m2-acc", "02:00:00:00:e2:02"),
        Veth("air", "a-mn", "02:00:00:00:e0:01", "mn", "mn0", MN_MAC),
    )
    AIR_PORTS = ("a-m1", "a-m2", "a-mn")
    ADDRESSES = {
        ("cn", "cn0"): [Testbed.CN + "/64"],
        ("rtr", "r-cn"): [Testbed.CN_ROUTER + "/64"],
        ("rtr", "r-lma"): [LMA_ROUTER + "/64"],
        ("rtr", "r-m1"): [MAG_ROUTER[1] + "/64"],
        ("rtr", "r-m2"): [MAG_ROUTER[2] + "/64"],
        ("lma", "lma0"): [LMA + "/64"],
        ("mag1", "m1-core"): [MAG[1] + "/64"],
        ("mag2", "m2-core"): [MAG[2] + "/64"],
    }
    ROUTES = {
        "cn": [f"default via {Testbed.CN_ROUTER} dev cn0"],
        "rtr": [f"{HNP_AGGREGATE} via {LMA} dev r-lma"],
        "lma": [f"default via {LMA_ROUTER} dev lma0"],
        "mag1": [f"default via {MAG_ROUTER[1]} dev m1-core"],
        "mag2": [f"default via {MAG_ROUTER[2]} dev m2-core"],
    }

    def __init__(self, tag: str = "m6p", **kw):
        kw.setdefault("xdp_pass_peer", False)
        kw.setdefault("tx_offload_off", False)
        kw.setdefault("quiet_mn_kernel", False)
        super().__init__(tag, **kw)
        self.attached_to: int | None = None

    def _up(self) -> None:
        self._ip_batch(None, [f"netns add {n}" for n in self.namespaces])
        for node in self.NODES:
            if node == "mn":
                continue        # the host keeps the kernel's defaults: RA, SLAAC, DAD, RS
            extra = self.ROUTER_SYSCTLS if node in ("rtr", "lma", "mag1", "mag2") else []
            self._host(["ip", "netns", "exec", self.ns(node), "sysctl", "-q", "-w", *self.SYSCTLS, *extra])
        per_node: dict[str, list[str]] = {n: ["link set dev lo up"] for n in self.NODES}
        for i, v in enumerate(self.VETHS):
            # Explicit, distinct ifindexes on the two ends. Two namespaces number their links
            # alike, and a veth whose peer has its own ifindex looks unstacked to the kernel's
            # linkwatch, which then batches its carrier events up to a second apart
            # (linkwatch_urgent_event): the air bridge would forward on a MAG port that just
            # came up one second late, a testbed artifact no access point has.
            per_node[v.a].append(f"link add {v.a_if} index {101 + 2 * i} address {v.a_mac} type veth "
                                 f"peer name {v.b_if} address {v.b_mac} netns {self.ns(v.b)} index {102 + 2 * i}")
        air = per_node["air"]
        air.append(f"link add {self.AIR_BRIDGE} type bridge forward_delay 0 stp_state 0 mcast_snooping 0")
        for port in self.AIR_PORTS:
            air.append(f"link set dev {port} addrgenmode none")
            air.append(f"link set dev {port} master {self.AIR_BRIDGE}")
        air.append(f"link set dev {self.AIR_BRIDGE} addrgenmode none")
        air.append(f"link set dev {self.AIR_BRIDGE} up")
        air.append("link set dev a-mn up")
        for node in ("rtr", "air"):
            self._ip_batch(node, per_node[node])
        for node in self.NODES:
            lines = [] if node in ("rtr", "air") else per_node[node]
            for v in self.VETHS:
                for n, ifname in ((v.a, v.a_if), (v.b, v.b_if)):
                    if n != node or node == "air":
                        continue
                    if ifname.endswith("-acc"):
                        # The MAG's access links carry only the shared fe80::1 `mip6 mag` adds.
                        lines.append(f"link set dev {ifname} addrgenmode none")
                    for addr in self.ADDRESSES.get((node, ifname), []):
                        lines.append(f"address add {addr} dev {ifname} nodad")
                    lines.append(f"link set dev {ifname} up")
            lines += [f"route add {r}" for r in self.ROUTES.get(node, [])]
            self._ip_batch(node, lines)
        if self.use_bpffs:
            self._mount_bpffs()

    # --- the host's "radio" ---------------------------------------------------
    def move_to(self, mag: int | None) -> int:
        """Attach the host to MAG `mag` (1 or 2; None: to neither): the other MAG's bridge port
        goes down first (break before make), then this one's comes up. Returns the
        CLOCK_MONOTONIC time in ns just before the change."""
        lines = [f"link set dev a-m{n} down" for n in (1, 2) if n != mag]
        if mag is not None:
            lines.append(f"link set dev a-m{mag} up")
        # One `ip` run: the old port goes down microseconds before the new one comes up, as an
        # access point hands a station over (two runs would add a process start between).
        t = time.monotonic_ns()
        self._ip_batch("air", lines)
        self.attached_to = mag
        return t

    def mn_addresses(self) -> list[str]:
        """The host's global addresses on mn0 that are usable (not tentative)."""
        out = self.run("mn", ["ip", "-6", "-o", "addr", "show", "dev", self.MN_IF, "scope", "global"]).stdout
        return [line.split()[3].split("/")[0] for line in out.splitlines() if "tentative" not in line]

    def wait_mn_address(self, prefix: str = "2001:db8:100:1:", timeout: float = 10) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for a in self.mn_addresses():
                if a.startswith(prefix):
                    return a
            time.sleep(0.05)
        shown = self.run("mn", ["ip", "-6", "addr", "show", "dev", self.MN_IF], check=False).stdout
        raise TestbedError(f"the host formed no usable address in {prefix}:/64 within {timeout} s:\n{shown}")

    # --- the daemons: one definition for the e2e tests, perf/pmip_handover.py and the demo -------
    def lma_cli(self, binary, *args: str) -> list[str]:
        """`mip6 lma ARGS` pointed at the LMA's pins and state (run in node "lma")."""
        return [str(binary), "lma", *args, "--state-dir", f"/run/mip6-lma-{self.tag}", "--bpffs", "/sys/fs/bpf/mip6-lma"]

    def mag_cli(self, binary, n: int, *args: str) -> list[str]:
        """`mip6 mag ARGS` pointed at MAG n's pins and state (run in node "magN")."""
        return [str(binary), "mag", *args, "--state-dir", f"/run/mip6-mag{n}-{self.tag}", "--bpffs", f"/sys/fs/bpf/mip6-mag{n}"]

    def start_lma(self, binary, log_path, *extra: str) -> subprocess.Popen:
        return start_daemon(self, "lma", self.lma_cli(binary, "run", "--interface", "lma0", "--address", LMA,
                                                      "--policy", str(self.policy_path), *extra),
                            log_path, "local mobility anchor ready")

    def start_mag(self, binary, n: int, log_path, *extra: str) -> subprocess.Popen:
        return start_daemon(self, f"mag{n}", self.mag_cli(binary, n, "run", "--access", f"m{n}-acc", "--core", f"m{n}-core",
                                                          "--proxy-coa", MAG[n], "--lma", LMA,
                                                          "--policy", str(self.policy_path), *extra),
                            log_path, "mobile access gateway ready")

    def mag_status(self, binary, n: int) -> dict:
        """`mip6 mag status --json` of MAG n."""
        return json.loads(self.run(f"mag{n}", self.mag_cli(binary, n, "status", "--json")).stdout)

    def lma_bindings(self, binary) -> list[dict]:
        """`mip6 lma bindings --json`: the LMA's bindings."""
        return json.loads(self.run("lma", self.lma_cli(binary, "bindings", "--json")).stdout)["bindings"]

    def policy(self) -> str:
        return (f"mag {MAG[1]}\nmag {MAG[2]}\n"
                f"mn {NAI} mac {MN_MAC} prefix {HNP}\n"
                "mn pool@pmip.example mac 02:00:00:00:aa:02 prefix pool\n"
                "pool 2001:db8:100:f000::/52\n")


def start_daemon(tb: Testbed, node: str, argv: list[str], log_path, ready: str, timeout: float = 15) -> subprocess.Popen:
    """Start a daemon in `node` with its output in `log_path`; wait for its ready line."""
    log = open(log_path, "wb")
    proc = tb.popen(node, argv, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready in log_path.read_text(errors="replace"):
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise TestbedError(f"{argv[1]} in {node} did not start: {log_path.read_text(errors='replace')[-3000:]}")
