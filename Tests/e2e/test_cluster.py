"""No single point of failure (issue 12): three `mip6 ha` replicas sharing bindings through
a real 3-member etcd, reached by BGP anycast with BFD (BIRD2) through an ECMP router
(testbed/cluster.py), a real `mip6 mn` and 1000 datagrams/s each way.

Each failure test keeps both streams running, breaks something, and checks the longest
silence of either stream and that the mobile node sent no Binding Update because of it
(every replica already had its binding). Run with -s to see the figures.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from conftest import NOT_ROOT, TAG, mip6_binary
from testbed.cluster import BFD_INTERVAL_MS, BFD_MULTIPLIER, REPLICAS, ClusterTestbed, Replica
from testbed.harness import PYTHON, MobileNodeDaemon, PcapCapture, UdpStream, counter, wait_for
from testbed.stream import summary

RATE = 1000
SILENT_FAILURE_MS = 350        # BFD 100 ms x 3 + the route change
EXPLICIT_FAILURE_MS = 50       # link down: the router sees it at once
CLUSTER_TAG = (TAG[:9] + "cl")[:12]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip(NOT_ROOT)
    binary = mip6_binary()
    logs = tmp_path_factory.mktemp("cluster")
    tb = ClusterTestbed(CLUSTER_TAG)
    tb.up()
    state = {"tb": tb, "binary": binary, "logs": logs, "replicas": {}, "mn": None}
    try:
        for n in REPLICAS:
            state["replicas"][n] = Replica(tb, n, binary, logs).start()
        tb.wait_nexthops(3)
        mn = MobileNodeDaemon(tb, binary, logs / "mip6-mn.log", interfaces=(tb.MN_IF1, tb.MN_IF2))
        mn.start()
        mn.wait_registered(tb.COA1, 10)
        state["mn"] = mn
        yield state
    finally:
        if state["mn"]:
            state["mn"].stop()
        for r in state["replicas"].values():
            r.stop()
        tb.down()


def healthy(cluster) -> None:
    """Put the cluster back as the fixture made it: every replica running and announced,
    every etcd member up, the MN registered on COA1."""
    tb = cluster["tb"]
    for n in REPLICAS:
        if n not in tb.etcd:
            tb.start_etcd_member(n)
    tb.wait_etcd()
    for n in REPLICAS:
        tb.run(f"ha{n}", ["nft", "delete", "table", "inet", "freeze"], check=False)
        tb.run(f"ha{n}", ["ip", "link", "set", "dev", tb.HA_IF, "up"])
        tb.run(f"ha{n}", ["ip", "-6", "address", "replace", f"fd00:{n}::2/64", "dev", tb.HA_IF, "nodad"])
        tb.run(f"ha{n}", ["ip", "-6", "route", "replace", "default", "via", f"fd00:{n}::1", "dev", tb.HA_IF])
        if tb.birdc(f"ha{n}", "show status", check=False).returncode != 0:
            tb.start_bird([f"ha{n}"])
        r = cluster["replicas"][n]
        if r.proc is None or r.proc.poll() is not None:
            r.start()
    tb.wait_nexthops(3, timeout=20)
    tb.reset_mn()
    cluster["mn"].wait_registered(tb.COA1, 10)
    quiet(cluster["mn"])


def quiet(mn, seconds: float = 1.3, timeout: float = 15) -> None:
    """Until the mobile node has sent no BU for `seconds` (longer than its first retransmission
    timer): "registered" already holds while a BU for the same care-of address (a move back to a
    link whose binding the home agent still has) waits for its BA."""
    deadline = time.monotonic() + timeout
    last, since = counter(mn.status(), "counters.busSent"), time.monotonic()
    while time.monotonic() - since < seconds:
        assert time.monotonic() < deadline, "the mobile node kept sending BUs"
        time.sleep(0.1)
        now = counter(mn.status(), "counters.busSent")
        if now != last:
            last, since = now, time.monotonic()


def streams(tb) -> tuple[UdpStream, UdpStream]:
    down = UdpStream(tb, rate=RATE).start()
    up = UdpStream(tb, dst=tb.CN, src=tb.HOA, src_node="mn", dst_node="cn", port=5556, rate=RATE).start()
    return down, up


def carrier(cluster) -> int:
    """The replica the router sends the stream to the home address to: the one whose data
    plane counts it (the router's hash is not what `ip route get` computes without ports)."""
    tb, replicas = cluster["tb"], cluster["replicas"]
    before = {n: (replicas[n].binding(tb.HOA) or {}).get("packetsToMN", 0) for n in REPLICAS}
    down, up = streams(tb)
    time.sleep(0.3)
    down.stop(), up.stop()
    grew = {n: (replicas[n].binding(tb.HOA) or {}).get("packetsToMN", 0) - before[n] for n in REPLICAS}
    n = max(grew, key=grew.get)
    assert grew[n] > 100, f"no replica tunneled the stream: {grew}"
    return n


def under_streams(cluster, action, settle: float = 1.5) -> dict:
    """Both streams, `action()` after 0.5 s, `settle` s more; the results and the MN's BUs."""
    tb, mn = cluster["tb"], cluster["mn"]
    bus0 = counter(mn.status(), "counters.busSent")
    down, up = streams(tb)
    try:
        time.sleep(0.5)
        detail = action()
        time.sleep(settle)
    finally:
        res_down, res_up = down.stop(), up.stop()
    bus = counter(mn.status(), "counters.busSent") - bus0
    print(f"  CN -> HoA: {summary(res_down)}\n  HoA -> CN: {summary(res_up)}\n  BUs sent by the MN: {bus}; {detail or ''}")
    return {"down": res_down, "up": res_up, "bus": bus}


def silence_ms(res: dict) -> float:
    return res["max_gap_ms"] or 0.0


def test_every_replica_holds_the_binding(cluster):
    tb = cluster["tb"]
    healthy(cluster)
    seen = {n: cluster["replicas"][n].binding(tb.HOA) for n in REPLICAS}
    assert all(b and b["careOfAddress"] == tb.COA1 for b in seen.values()), seen
    assert len({b["sequence"] for b in seen.values()}) == 1, seen


def test_replica_carrying_the_flow_dies_silently(cluster):
    """Its mip6 and BIRD SIGKILLed and everything it would send or receive dropped (a node
    gone without a word): BFD takes it out of the router's ECMP set."""
    tb = cluster["tb"]
    healthy(cluster)
    victim = carrier(cluster)

    def die():
        r = cluster["replicas"][victim]
        tb.run(f"ha{victim}", "nft -f - <<'EOF'\ntable inet freeze {\n chain i { type filter hook input priority -500; policy drop; }\n"
                              " chain o { type filter hook output priority -500; policy drop; }\n"
                              " chain f { type filter hook forward priority -500; policy drop; }\n}\nEOF")
        tb.run(f"ha{victim}", ["tc", "filter", "del", "dev", tb.HA_IF, "ingress"], check=False)  # its data plane goes too
        r.kill()
        tb.stop(tb.bird.pop(f"ha{victim}"), sig=9)
        return f"replica ha{victim} gone"

    seen = under_streams(cluster, die)
    for name in ("down", "up"):
        assert silence_ms(seen[name]) < SILENT_FAILURE_MS, f"{name}: {summary(seen[name])}"
    assert seen["bus"] == 0, "the mobile node had to register again"
    assert tb.wait_nexthops(2) and f"fd00:{victim}::2" not in tb.router_nexthops()


def test_replica_link_cut(cluster):
    tb = cluster["tb"]
    healthy(cluster)
    victim = carrier(cluster)
    seen = under_streams(cluster, lambda: tb.run(f"ha{victim}", ["ip", "link", "set", "dev", tb.HA_IF, "down"]))
    for name in ("down", "up"):
        assert silence_ms(seen[name]) < EXPLICIT_FAILURE_MS, f"{name}: {summary(seen[name])}"
    assert seen["bus"] == 0


def test_graceful_stop_loses_nothing(cluster):
    """SIGTERM: the replica withdraws first, keeps forwarding while the router moves the
    traffic, then exits."""
    tb = cluster["tb"]
    healthy(cluster)
    victim = carrier(cluster)
    seen = under_streams(cluster, lambda: cluster["replicas"][victim].stop())
    for name in ("down", "up"):
        assert seen[name]["lost"] == 0, f"{name}: {summary(seen[name])}"
    assert seen["bus"] == 0
    assert "withdrawing the home prefix" in cluster["replicas"][victim].log_text()


def etcd_leader(tb) -> int:
    status = json.loads(tb.etcdctl("endpoint", "status", "-w", "json").stdout)
    leader_id = status[0]["Status"]["leader"]
    return next(n for n, s in zip(REPLICAS, status) if s["Status"]["header"]["member_id"] == leader_id)


def test_etcd_leader_killed(cluster):
    """The etcd leader SIGKILLed: forwarding never notices (the store is off the packet path),
    no replica withdraws, the mobile node sends nothing. Then, the new leader killed and the
    mobile node moving at once: its BU is accepted within 2 s of the kill, and every replica's
    maps hold it within 1 s of the BA."""
    tb, mn = cluster["tb"], cluster["mn"]
    healthy(cluster)
    logged = {n: len(r.log_text()) for n, r in cluster["replicas"].items()}
    leader = etcd_leader(tb)
    seen = under_streams(cluster, lambda: tb.kill_etcd_member(leader) or f"etcd e{leader} (leader) killed", settle=2.5)
    for name in ("down", "up"):
        assert seen[name]["lost"] == 0, f"{name}: {summary(seen[name])}"
    assert seen["bus"] == 0
    assert len(tb.router_nexthops()) == 3, "a replica withdrew while the store elected a leader"

    tb.start_etcd_member(leader)
    tb.wait_etcd()
    leader = etcd_leader(tb)
    tb.kill_etcd_member(leader)
    t0 = time.monotonic()
    tb.set_mn_link(tb.MN_IF1, False)
    mn.wait_registered(tb.COA2, 5)
    took = time.monotonic() - t0
    print(f"  etcd e{leader} (leader) killed and the MN moved: registered {1000 * took:.0f} ms later")
    assert took < 2, f"the move was accepted {took:.2f} s after the leader died"
    # Every replica's maps follow within a second, also the one whose store member died under
    # its watch (it watches again from its revision on another member; a re-list would wait
    # for the election).
    lag = {}
    while len(lag) < len(REPLICAS) and time.monotonic() - t0 < took + 1:
        for n in REPLICAS:
            b = cluster["replicas"][n].binding(tb.HOA)
            if n not in lag and b and b["careOfAddress"] == tb.COA2:
                lag[n] = time.monotonic() - t0 - took
    print("  in the maps after the BA: " + ", ".join(f"ha{n} {1000 * s:.0f} ms" for n, s in sorted(lag.items())))
    assert len(lag) == len(REPLICAS), f"still the old care-of address 1 s after the BA: {[f'ha{n}' for n in REPLICAS if n not in lag]}"
    # The election made no replica look lagging (a heartbeat that waited for the new leader
    # is not the watch's delay).
    for n in REPLICAS:
        assert "less preferred" not in cluster["replicas"][n].log_text()[logged[n]:], f"ha{n} announced itself lagging"


def test_etcd_member_frozen_under_a_watch(cluster):
    """The etcd member a replica watches frozen (SIGSTOP: a hung node; its connections stay
    open and nothing comes through them, as from a member cut off from its peers). The
    replica's own heartbeats, written through another member once the frozen one times
    out, do not come back; after --max-lag (1 s) it gives the watch up and takes it again
    from its revision on another member: current again while the member is still frozen,
    and a move then reaches every replica's maps."""
    tb, mn = cluster["tb"], cluster["mn"]
    healthy(cluster)
    r = cluster["replicas"][1]
    r.stop()
    r.start()  # one connection, to the member its id hashes to
    frozen = tb.etcd_member_used_by("ha1")
    logged = len(r.log_text())
    t0 = time.monotonic()
    with tb.etcd_member_frozen(frozen):
        assert wait_for(lambda: "lagged behind the store" in r.log_text()[logged:], timeout=5), \
            f"ha1 kept its watch on e{frozen}: {(r.state() or {}).get('store')}\n{r.log_text()[logged:][-1500:]}"
        gave_up = time.monotonic() - t0
        # Current again, the member still frozen: its heartbeats come back through the new watch.
        assert wait_for(lambda: (r.state() or {}).get("store", {}).get("announcement") == "preferred"
                        and (r.state() or {}).get("store", {}).get("lagMilliseconds", 1e9) < 500, timeout=3), \
            f"ha1 not current again: {(r.state() or {}).get('store')}"
        current = time.monotonic() - t0
        print(f"  e{frozen} frozen under ha1's watch: given up after {1000 * gave_up:.0f} ms, current again after {1000 * current:.0f} ms")
        tb.wait_etcd([n for n in REPLICAS if n != frozen])
        t1 = time.monotonic()
        tb.set_mn_link(tb.MN_IF1, False)
        mn.wait_registered(tb.COA2, 5)
        took = time.monotonic() - t1
        for n in REPLICAS:
            assert wait_for(lambda: ((cluster["replicas"][n].binding(tb.HOA) or {}).get("careOfAddress") == tb.COA2), timeout=1), \
                f"ha{n} still without the move 1 s after the BA ({1000 * took:.0f} ms after the move)"


def test_quorum_lost_forwarding_goes_on_and_recovers(cluster):
    """Two etcd members of three SIGKILLed: forwarding goes on from the maps (nothing lost,
    nobody withdraws), a BU is refused with 130 and counted; quorum back, no restart, the
    next BU is accepted."""
    tb, mn = cluster["tb"], cluster["mn"]
    healthy(cluster)
    replicas = cluster["replicas"]
    refusals0 = sum(r.state().get("storeRefusals", 0) for r in replicas.values())

    def lose_quorum():
        tb.kill_etcd_member(1)
        tb.kill_etcd_member(2)
        return "quorum lost (e1, e2 killed)"

    seen = under_streams(cluster, lose_quorum, settle=4.0)  # past the replicas' 3 s outage threshold
    for name in ("down", "up"):
        assert seen[name]["lost"] == 0, f"{name}: {summary(seen[name])}"
    assert seen["bus"] == 0
    assert len(tb.router_nexthops()) == 3, "a replica withdrew because the store was unreachable"
    assert all(r.state()["store"]["refusing"] for r in replicas.values())

    tb.set_mn_link(tb.MN_IF1, False)  # a move the store cannot record
    st = mn.wait_status(lambda s: s.get("lastStatus") == 130, 8, "a BU answered 130")
    refusals = sum(r.state().get("storeRefusals", 0) for r in replicas.values())
    print(f"  quorum lost: the move's BU answered {st['lastStatus']}, refusals {refusals - refusals0}")
    assert refusals > refusals0
    assert all(r.proc.poll() is None for r in replicas.values()), "a replica died"

    for n in (1, 2):
        tb.start_etcd_member(n)
    tb.wait_etcd()
    t0 = time.monotonic()
    tb.set_mn_link(tb.MN_IF1, True)
    mn.wait_registered(tb.COA1, 10)
    print(f"  quorum back: registered again {1000 * (time.monotonic() - t0):.0f} ms after the next move")
    for n in REPLICAS:
        assert replicas[n].binding(tb.HOA)["careOfAddress"] == tb.COA1


def test_all_replicas_restarted_restore_from_the_store(cluster):
    """Every replica killed, its pinned state removed, started again: the bindings come
    back from etcd and the mobile node sends nothing."""
    tb, mn = cluster["tb"], cluster["mn"]
    healthy(cluster)
    bus0 = counter(mn.status(), "counters.busSent")
    for r in cluster["replicas"].values():
        r.kill()
        r.clear()  # no pins: only the store knows the binding
    for r in cluster["replicas"].values():
        r.start()
    tb.wait_nexthops(3)
    for n, r in cluster["replicas"].items():
        b = r.binding(tb.HOA)
        assert b and b["careOfAddress"] == tb.COA1, f"ha{n}: {b}"
    down, up = streams(tb)
    time.sleep(1)
    res_down, res_up = down.stop(), up.stop()
    assert res_down["lost"] == 0 and res_up["lost"] == 0, (summary(res_down), summary(res_up))
    assert counter(mn.status(), "counters.busSent") == bus0, "the mobile node registered again"


def test_newer_bu_that_loses_the_store_race_is_judged_again_and_accepted(cluster, tmp_path):
    """Two replicas take BUs for one home address at the same time: ha1 accepts BU 12 but its
    commit is held up (its etcd traffic frozen) while ha2 accepts and commits the older BU 11.
    When ha1's compare-and-swap then fails, ha1 judges BU 12 again against what the store holds
    now (11): it is newer, so it is committed on the new revision and its BA (status 0) leaves
    after all; the store ends at 12 everywhere (RFC 6275 §9.5.1 cluster-wide)."""
    tb, replicas = cluster["tb"], cluster["replicas"]
    healthy(cluster)
    hoa, coa = "2001:db8:1::200", tb.CN_ROUTER           # a second home address; BAs come back to the router

    def bu(n: int, seq: int, lifetime: int = 60, timeout: float = 2.0) -> dict:
        cp = tb.run("rtr", [PYTHON, "-m", "testbed.scapy_mn", "register", "--iface", f"r-ha{n}",
                            "--dst-mac", f"02:00:00:00:a{n}:02", "--coa", coa, "--ha", tb.HA, "--hoa", hoa,
                            "--seq", str(seq), "--lifetime", str(lifetime), "--timeout", str(timeout)], timeout=30)
        return json.loads(cp.stdout.strip().splitlines()[-1])

    def judged_again(n: int) -> int:
        return int(((replicas[n].state() or {}).get("store") or {}).get("counters", {}).get("judgedAgain", 0))

    assert bu(2, 10).get("status") == 0
    assert wait_for(lambda: (replicas[1].binding(hoa) or {}).get("sequence") == 10, 3), "ha1 did not learn seq 10"
    before = judged_again(1)
    cap = PcapCapture(tb, "rtr", "r-ha1", f"ip6 and src {tb.HA} and dst {coa}", tmp_path / "ha1-ba.pcap").start()
    freeze = ("table inet etcdfreeze {\n chain o { type filter hook output priority 0; policy accept; "
              f"tcp dport {tb.ETCD_PORT} drop; }}\n}}\n")
    tb.run("ha1", ["nft", "-f", "-"], input=freeze)
    try:
        held = bu(1, 12, timeout=0.3)
        assert "status" not in held, f"ha1 answered BU 12 before its commit: {held}"
        first = bu(2, 11)
        assert first.get("status") == 0 and first.get("sequence") == 11, first
    finally:
        tb.run("ha1", ["nft", "delete", "table", "inet", "etcdfreeze"], check=False)
    try:
        assert wait_for(lambda: judged_again(1) > before, 10), f"ha1 never judged BU 12 again: {replicas[1].state()}"
        assert wait_for(lambda: all((replicas[n].binding(hoa) or {}).get("sequence") == 12 for n in REPLICAS), 5), \
            {n: replicas[n].binding(hoa) for n in REPLICAS}
        time.sleep(0.2)
        bas = []
        for p in cap.stop():
            # IPv6 header, Type 2 Routing Header (24 bytes), then the Mobility Header: a BA is type 6.
            if len(p) >= 40 + 24 + 12 and p[6] == 43 and p[40] == 135 and p[64 + 2] == 6:
                bas.append({"status": p[64 + 6], "sequence": int.from_bytes(p[64 + 8:64 + 10], "big")})
        assert {"status": 0, "sequence": 12} in bas, f"no accepting BA for BU 12 from ha1: {bas}"
        print(f"  ha1's BAs: {bas}; judged again: {judged_again(1) - before}")
    finally:
        bu(2, 13, lifetime=0)


def test_replica_logs_hold_no_libbpf_warnings(cluster):
    """After every start, restart, kill and probe above: a hook with no filter yet and a clsact
    that is already there are answers, not problems, and libbpf's kernel messages for them are
    not warnings in the replicas' logs (every start of a replica printed one)."""
    for n, r in cluster["replicas"].items():
        warned = [l for l in r.log_text().splitlines() if " warning " in l and "libbpf" in l]
        assert warned == [], f"ha{n}: {warned[:3]}"
