"""The no-single-point-of-failure testbed (issue 12): three home-agent replicas behind a
router that reaches them by BGP anycast with BFD, a 3-member etcd cluster, a correspondent
and a mobile node.

    <tag>-cn  cn0 2001:db8:c::2 --- r-cn 2001:db8:c::1
                                    <tag>-rtr (BIRD2: eBGP + BFD 100 ms x 3 to each replica,
                                               ECMP: merge paths)
    <tag>-haN up0 fd00:N::2 ------- r-haN fd00:N::1          (N = 1, 2, 3)
              lo 2001:db8:1::a/128 (the anycast home agent address)
              BIRD2 announcing 2001:db8:1::/64 and 2001:db8:1::a/128 while `mip6 ha`
              enables the static protocol `hp`
              mgmt0 fd00:ff::N ---- br-mgmt in <tag>-db: etcd members fd00:ff::101..103
    <tag>-mn  mn-f1 2001:db8:f1::100 - r-f1 2001:db8:f1::1
              mn-f2 2001:db8:f2::100 - r-f2 2001:db8:f2::1

The home prefix is a virtual home network (RFC 6275 §3.1 allows a home prefix on no
physical link): no link carries it, so no proxy ND and no DAD; the router routes it to
the replicas that announce it. The management network (etcd) is apart from the data path,
as a pod network is.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from contextlib import contextmanager
from pathlib import Path

from testbed.topology import Testbed, TestbedError, Veth

REPLICAS = (1, 2, 3)
BFD_INTERVAL_MS = 100
BFD_MULTIPLIER = 3
# A replica that comes back is peered again at once (BIRD waits 60 s or more after an error
# and 120 s between connection attempts by default).
RETRY = "connect retry time 1; error wait time 1, 5; connect delay time 1;"


class ClusterTestbed(Testbed):
    __test__ = False

    NODES = ("cn", "rtr", "ha1", "ha2", "ha3", "mn", "db")
    OPTIONAL_NODES = ()
    HA_IF = "up0"
    MGMT_IF = "mgmt0"
    MGMT_BRIDGE = "br-mgmt"
    ETCD = {n: f"fd00:ff::10{n}" for n in REPLICAS}
    ETCD_PORT = 2379

    VETHS = tuple(
        [Veth("rtr", "r-cn", "02:00:00:00:0c:01", "cn", "cn0", "02:00:00:00:0c:02"),
         Veth("rtr", "r-f1", "02:00:00:00:f1:01", "mn", "mn-f1", "02:00:00:00:f1:64"),
         Veth("rtr", "r-f2", "02:00:00:00:f2:01", "mn", "mn-f2", "02:00:00:00:f2:64")]
        + [Veth("rtr", f"r-ha{n}", f"02:00:00:00:a{n}:01", f"ha{n}", "up0", f"02:00:00:00:a{n}:02") for n in REPLICAS]
        + [Veth("db", f"m-ha{n}", f"02:00:00:00:ff:{n:02x}", f"ha{n}", "mgmt0", f"02:00:00:00:fe:{n:02x}") for n in REPLICAS]
    )
    BRIDGE_PORTS = ()
    MGMT_PORTS = tuple(f"m-ha{n}" for n in REPLICAS)

    ADDRESSES = {
        ("cn", "cn0"): [Testbed.CN + "/64"],
        ("rtr", "r-cn"): [Testbed.CN_ROUTER + "/64"],
        ("rtr", "r-f1"): [Testbed.F1_ROUTER + "/64"],
        ("rtr", "r-f2"): [Testbed.F2_ROUTER + "/64"],
        ("mn", "mn-f1"): [Testbed.COA1 + "/64"],
        ("mn", "mn-f2"): [Testbed.COA2 + "/64"],
        **{("rtr", f"r-ha{n}"): [f"fd00:{n}::1/64"] for n in REPLICAS},
        **{(f"ha{n}", "up0"): [f"fd00:{n}::2/64"] for n in REPLICAS},
        **{(f"ha{n}", "mgmt0"): [f"fd00:ff::{n}/64"] for n in REPLICAS},
    }
    ROUTES = {
        "cn": [f"default via {Testbed.CN_ROUTER} dev cn0"],
        "mn": [f"default via {gw} dev {ifname} metric {metric}"
               for ifname, (_coa, gw, metric) in Testbed.MN_FOREIGN_LINKS.items()],
        **{f"ha{n}": [f"default via fd00:{n}::1 dev up0"] for n in REPLICAS},
    }
    DOWN_INTERFACES = set()

    def __init__(self, tag: str = "m6c", **kw):
        kw.setdefault("xdp_pass_peer", False)   # the replicas attach TC (veth), like the cluster default
        kw.setdefault("tx_offload_off", False)
        kw.setdefault("quiet_mn_kernel", False)  # the real `mip6 mn` handles its own packets
        super().__init__(tag, **kw)
        self.bird: dict[str, object] = {}
        self.etcd: dict[int, object] = {}

    # --- names -----------------------------------------------------------------
    def replica(self, n: int) -> str:
        return f"ha{n}"

    def bird_socket(self, node: str) -> Path:
        return self.run_dir / f"bird-{node}.ctl"

    @property
    def store_url(self) -> str:
        return "etcd+http://" + ",".join(f"[{a}]:{self.ETCD_PORT}" for a in self.ETCD.values())

    # --- up --------------------------------------------------------------------
    def _up(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._ip_batch(None, [f"netns add {n}" for n in self.namespaces])
        for node in self.NODES:
            extra = self.ROUTER_SYSCTLS if node in ("rtr",) + tuple(f"ha{n}" for n in REPLICAS) else []
            self._host(["ip", "netns", "exec", self.ns(node), "sysctl", "-q", "-w", *self.SYSCTLS, *extra])
        for v in self.VETHS:
            self._ip_batch(v.a, [f"link add {v.a_if} address {v.a_mac} type veth "
                                 f"peer name {v.b_if} address {v.b_mac} netns {self.ns(v.b)}"])
        db = [f"link add {self.MGMT_BRIDGE} type bridge forward_delay 0 stp_state 0 mcast_snooping 0",
              f"link set dev {self.MGMT_BRIDGE} up"]
        for port in self.MGMT_PORTS:
            db += [f"link set dev {port} addrgenmode none", f"link set dev {port} master {self.MGMT_BRIDGE}",
                   f"link set dev {port} up"]
        db += [f"address add {a}/64 dev {self.MGMT_BRIDGE} nodad" for a in self.ETCD.values()]
        self._ip_batch("db", db + ["link set dev lo up"])
        for node in ("rtr", "cn", "mn") + tuple(f"ha{n}" for n in REPLICAS):
            self._ip_batch(node, self._addr_lines(node))
        for n in REPLICAS:
            self._ip_batch(f"ha{n}", [f"address add {self.HA}/128 dev lo"])
        if self.use_bpffs:
            self._mount_bpffs()
        self.start_etcd()
        self.start_bird()

    # --- etcd ------------------------------------------------------------------
    def start_etcd_member(self, n: int) -> None:
        cluster = ",".join(f"e{m}=http://[{a}]:2380" for m, a in self.ETCD.items())
        a = self.ETCD[n]
        log = open(self.run_dir / f"etcd-e{n}.log", "ab")
        self.etcd[n] = self.popen("db", [
            "etcd", "--name", f"e{n}", "--data-dir", str(self.run_dir / f"etcd-e{n}"),
            "--listen-client-urls", f"http://[{a}]:{self.ETCD_PORT}", "--advertise-client-urls", f"http://[{a}]:{self.ETCD_PORT}",
            "--listen-peer-urls", f"http://[{a}]:2380", "--initial-advertise-peer-urls", f"http://[{a}]:2380",
            "--initial-cluster", cluster, "--initial-cluster-state", "new", "--initial-cluster-token", f"mip6-{self.tag}",
            # A leader lost is replaced within about 2 x 500 ms; the design note measured 100/1000.
            "--heartbeat-interval", "50", "--election-timeout", "500",
            "--auto-compaction-mode", "revision", "--auto-compaction-retention", "100000", "--log-level", "error"],
            stdout=log, stderr=log)

    def start_etcd(self, timeout: float = 20) -> None:
        for n in REPLICAS:
            self.start_etcd_member(n)
        self.wait_etcd(REPLICAS, timeout)

    def wait_etcd(self, members=REPLICAS, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        endpoints = ",".join(f"http://[{self.ETCD[n]}]:{self.ETCD_PORT}" for n in members)
        while time.monotonic() < deadline:
            cp = self.run("db", ["etcdctl", "--endpoints", endpoints, "--command-timeout=1s", "endpoint", "health"],
                          check=False, env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"})
            if cp.returncode == 0:
                return
            time.sleep(0.2)
        raise TestbedError(f"etcd members {list(members)} not healthy in {timeout} s; logs in {self.run_dir}")

    def kill_etcd_member(self, n: int) -> None:
        p = self.etcd.pop(n, None)
        if p is not None:
            self.stop(p, sig=9)

    def etcd_member_used_by(self, node: str) -> int:
        """The etcd member the daemon in `node` talks to. One started afresh has one connection,
        to the member its id hashes to (it moves only when that member fails it)."""
        out = self.run(node, ["ss", "-Htn", "state", "established", f"( dport = :{self.ETCD_PORT} )"]).stdout
        peers = set(re.findall(r"\[([0-9a-f:]+)\]:%d" % self.ETCD_PORT, out))
        if len(peers) != 1:
            raise TestbedError(f"{node} talks to etcd members {sorted(peers)}, not to one")
        address = peers.pop()
        return next(n for n, a in self.ETCD.items() if a == address)

    @contextmanager
    def etcd_member_frozen(self, n: int):
        """Member `n` SIGSTOPped (a hung node: its connections open and silent) for the block."""
        os.kill(self.etcd[n].pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(self.etcd[n].pid, signal.SIGCONT)
            self.wait_etcd()

    def etcdctl(self, *args: str, check: bool = True):
        endpoints = ",".join(f"http://[{a}]:{self.ETCD_PORT}" for a in self.ETCD.values())
        return self.run("db", ["etcdctl", "--endpoints", endpoints, *args], check=check,
                        env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"})

    # --- BIRD ------------------------------------------------------------------
    def _bird_conf(self, node: str) -> str:
        bfd = f"interval {BFD_INTERVAL_MS} ms; multiplier {BFD_MULTIPLIER};"
        if node == "rtr":
            peers = "\n".join(
                f"protocol bgp ha{n} from replicas {{ neighbor fd00:{n}::2 as {65000 + n}; }}" for n in REPLICAS)
            return f"""router id 10.0.0.254;
protocol device {{ scan time 10; }}
protocol kernel {{ ipv6 {{ import none; export where source = RTS_BGP; }}; merge paths on limit 8; }}
protocol bfd {{ interface "r-ha*" {{ {bfd} }}; }}
template bgp replicas {{ local as 65000; bfd on; hold time 9; keepalive time 3; {RETRY}
  ipv6 {{ import all; export none; }}; }}
{peers}
"""
        n = int(node[2:])
        return f"""router id 10.0.0.{n};
protocol device {{ scan time 10; }}
protocol static hp {{ disabled; ipv6; route {self.HOME_PREFIX} unreachable; route {self.HA}/128 unreachable; }}
protocol static hp_lag {{ disabled; ipv6; route {self.HOME_PREFIX} unreachable; route {self.HA}/128 unreachable; }}
protocol bfd {{ interface "up0" {{ {bfd} }}; }}
protocol bgp up {{ local fd00:{n}::2 as {65000 + n}; neighbor fd00:{n}::1 as 65000; bfd on; hold time 9; keepalive time 3; {RETRY}
  ipv6 {{ import none; export filter {{
    if proto = "hp_lag" then {{ bgp_path.prepend({65000 + n}); bgp_path.prepend({65000 + n}); accept; }}
    if proto = "hp" then accept;
    reject; }}; }}; }}
"""

    def start_bird(self, nodes=None) -> None:
        for node in nodes or ("rtr",) + tuple(f"ha{n}" for n in REPLICAS):
            conf = self.run_dir / f"bird-{node}.conf"
            conf.write_text(self._bird_conf(node))
            log = open(self.run_dir / f"bird-{node}.log", "ab")
            self.bird[node] = self.popen(node, ["bird", "-f", "-c", str(conf), "-s", str(self.bird_socket(node)),
                                                "-P", str(self.run_dir / f"bird-{node}.pid")], stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        for node in nodes or ("rtr",) + tuple(f"ha{n}" for n in REPLICAS):
            while self.birdc(node, "show status", check=False).returncode != 0:
                if time.monotonic() > deadline:
                    raise TestbedError(f"BIRD in {node} did not start: {(self.run_dir / f'bird-{node}.log').read_text()[-500:]}")
                time.sleep(0.1)

    def birdc(self, node: str, command: str, check: bool = True):
        return self.run(node, ["birdc", "-s", str(self.bird_socket(node)), *command.split()], check=check)

    def reset_mn(self) -> None:
        """Both foreign links of the MN up with their addresses and routes (no home link here)."""
        for ifname in self.MN_FOREIGN_LINKS:
            self.set_mn_link(ifname, True)

    def router_nexthops(self, prefix: str | None = None) -> list[str]:
        """The router's next hops for the home prefix (the replicas announcing it)."""
        out = json.loads(self.run("rtr", ["ip", "-j", "-6", "route", "show", prefix or self.HOME_PREFIX]).stdout or "[]")
        hops: list[str] = []
        for r in out:
            if "gateway" in r:
                hops.append(r["gateway"])
            for nh in r.get("nexthops", []):
                hops.append(nh["gateway"])
        return sorted(hops)

    def wait_nexthops(self, want: int, timeout: float = 15, prefix: str | None = None) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            hops = self.router_nexthops(prefix)
            if len(hops) == want:
                return hops
            if time.monotonic() > deadline:
                raise TestbedError(f"router has {hops} for {prefix or self.HOME_PREFIX}, wanted {want} next hops")
            time.sleep(0.1)


class Replica:
    """`mip6 ha` in replica N of a ClusterTestbed: virtual home network, the shared store,
    announcing through its BIRD. start() returns once the replica is synced and announced."""

    def __init__(self, tb: ClusterTestbed, n: int, binary: Path, log_dir: Path, extra: list[str] = ()):
        self.tb, self.n, self.binary = tb, n, Path(binary)
        self.node = f"ha{n}"
        self.bpffs = f"/sys/fs/bpf/mip6-{self.node}"
        self.state_dir = str(tb.run_dir / f"{self.node}-state")
        self.log_path = Path(log_dir) / f"mip6-{tb.tag}-{self.node}.log"
        self.argv = [str(self.binary), "ha", "--interface", tb.HA_IF, "--address", tb.HA, "--home-prefix", tb.HOME_PREFIX,
                     "--virtual-home", "--store", tb.store_url, "--store-prefix", f"/mip6/{tb.tag}", "--replica-id", self.node,
                     "--announce", f"bird:{tb.bird_socket(self.node)}:hp", "--bpffs", self.bpffs, "--state-dir", self.state_dir,
                     "--attach-mode", "tc", "--log-level", "info", *extra]
        self.proc = None

    def start(self, timeout: float = 20, wait_announced: bool = True) -> "Replica":
        log = open(self.log_path, "ab")
        self.proc = self.tb.popen(self.node, self.argv, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while True:
            st = self.state()
            if st and st.get("store", {}).get("synced") and (st["store"].get("announced") or not wait_announced):
                return self
            if self.proc.poll() is not None:
                raise TestbedError(f"{self.node}: mip6 ha exited {self.proc.returncode}:\n{self.log_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise TestbedError(f"{self.node}: not synced/announced in {timeout} s:\n{self.log_text()[-2000:]}")
            time.sleep(0.05)

    def state(self) -> dict | None:
        try:
            return json.loads((Path(self.state_dir) / "controlplane.json").read_text())
        except (OSError, ValueError):
            return None

    def stop(self, sig: int = 15, timeout: float = 10) -> int | None:
        return self.tb.stop(self.proc, sig, timeout) if self.proc else None

    def kill(self) -> int | None:
        return self.stop(9)

    def bindings(self) -> list[dict]:
        cp = self.tb.run(self.node, [str(self.binary), "bindings", "list", "--json", "--bpffs", self.bpffs], check=False)
        return json.loads(cp.stdout) if cp.returncode == 0 and cp.stdout.strip() else []

    def binding(self, hoa: str) -> dict | None:
        return next((b for b in self.bindings() if b.get("homeAddress") == hoa), None)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def clear(self) -> None:
        self.tb.run(self.node, [str(self.binary), "dataplane", "detach", "--bpffs", self.bpffs, "--state-dir", self.state_dir],
                    check=False)


class ForwarderClusterTestbed(ClusterTestbed):
    """ClusterTestbed whose router is on the management network too, so `mip6 forwarder`
    there reads etcd (a forwarder-only node at the edge, README "Forwarder-only nodes")."""

    ROUTER_MGMT = "fd00:ff::fe"
    VETHS = ClusterTestbed.VETHS + (Veth("db", "m-rtr", "02:00:00:00:ff:fe", "rtr", "mgmt0", "02:00:00:00:fe:fe"),)
    MGMT_PORTS = ClusterTestbed.MGMT_PORTS + ("m-rtr",)
    ADDRESSES = {**ClusterTestbed.ADDRESSES, ("rtr", "mgmt0"): [f"{ROUTER_MGMT}/64"]}


class Forwarder:
    """`mip6 forwarder` in the router of a ForwarderClusterTestbed, TC on `interfaces`.
    start() returns once it has started (wait_synced() for its first list)."""

    def __init__(self, tb: ClusterTestbed, binary: Path, log_dir: Path, interfaces=("r-cn",), name: str = "fwd",
                 store: str | None = None, store_prefix: str | None = None, extra: list[str] = ()):
        self.tb, self.binary, self.name = tb, Path(binary), name
        self.node = "rtr"
        self.bpffs = f"/sys/fs/bpf/mip6-{tb.tag}-{name}"
        self.state_dir = str(tb.run_dir / f"{name}-state")
        self.log_path = Path(log_dir) / f"mip6-{tb.tag}-{name}.log"
        self.interfaces = list(interfaces)
        self.store = store or tb.store_url
        self.store_prefix = store_prefix or f"/mip6/{tb.tag}"
        self.extra = list(extra)
        self.proc = None

    @property
    def argv(self) -> list[str]:
        ifs = [a for i in self.interfaces for a in ("--interface", i)]
        return [str(self.binary), "forwarder", *ifs, "--address", self.tb.HA, "--home-prefix", self.tb.HOME_PREFIX,
                "--store", self.store, "--store-prefix", self.store_prefix, "--forwarder-id", f"{self.name}-{self.tb.tag}",
                "--bpffs", self.bpffs, "--state-dir", self.state_dir, "--attach-mode", "tc", "--log-level", "info", *self.extra]

    def start(self, timeout: float = 10) -> "Forwarder":
        log = open(self.log_path, "ab")
        self.proc = self.tb.popen(self.node, self.argv, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while not (self.state() or {}).get("interfaces"):
            if self.proc.poll() is not None:
                raise TestbedError(f"{self.name}: mip6 forwarder exited {self.proc.returncode}:\n{self.log_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise TestbedError(f"{self.name}: not started in {timeout} s:\n{self.log_text()[-2000:]}")
            time.sleep(0.02)
        return self

    def wait_synced(self, timeout: float = 10, synced: bool = True) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            st = self.state() or {}
            if st.get("synced") == synced:
                return st
            if time.monotonic() > deadline:
                raise TestbedError(f"{self.name}: synced != {synced} after {timeout} s: {st}\n{self.log_text()[-1500:]}")
            time.sleep(0.02)

    def state(self) -> dict | None:
        try:
            return json.loads((Path(self.state_dir) / "forwarder.json").read_text())
        except (OSError, ValueError):
            return None

    def status(self) -> dict:
        cp = self.tb.run(self.node, [str(self.binary), "forwarder", "status", "--json", "--state-dir", self.state_dir], check=False)
        return json.loads(cp.stdout) if cp.stdout.strip() else {}

    def stop(self, sig: int = 15, timeout: float = 10) -> int | None:
        return self.tb.stop(self.proc, sig, timeout) if self.proc else None

    def bindings(self) -> list[dict]:
        cp = self.tb.run(self.node, [str(self.binary), "bindings", "list", "--json", "--bpffs", self.bpffs], check=False)
        return json.loads(cp.stdout) if cp.returncode == 0 and cp.stdout.strip() else []

    def binding(self, hoa: str) -> dict | None:
        return next((b for b in self.bindings() if b.get("homeAddress") == hoa), None)

    def counters(self) -> dict:
        cp = self.tb.run(self.node, [str(self.binary), "stats", "--json", "--bpffs", self.bpffs, "--state-dir", self.state_dir])
        return json.loads(cp.stdout)["dataplane"]

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def clear(self) -> None:
        self.tb.run(self.node, [str(self.binary), "dataplane", "detach", "--bpffs", self.bpffs, "--state-dir", self.state_dir],
                    check=False)
