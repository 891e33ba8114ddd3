"""Forwarder-only nodes (issue 12, the SDN variant): `mip6 forwarder` in the router of the
cluster testbed (testbed/cluster.py: three `mip6 ha` replicas, etcd, BIRD2/ECMP), TC on the
router's interface towards the correspondent (r-cn), programmed only from the store. The
mobile node (a real `mip6 mn`) registers through the replicas; the forwarder tunnels the
correspondent's traffic to it at the edge, and passes everything to the replicas whenever it
cannot show its maps are current. Run with -s to see the figures.
"""

from __future__ import annotations

import ipaddress
import json
import os
import time

import pytest

from conftest import NOT_ROOT, TAG, mip6_binary
from testbed.cluster import REPLICAS, Forwarder, ForwarderClusterTestbed, Replica
from testbed.harness import PYTHON, MobileNodeDaemon
from testbed.harness import UdpStream
from testbed.stream import summary

RATE = 1000
CLUSTER_TAG = (TAG[:9] + "fw")[:12]
COLD_BINDINGS = 100_000
HTTP = "[::1]:9466"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip(NOT_ROOT)
    binary = mip6_binary()
    logs = tmp_path_factory.mktemp("forwarder")
    tb = ForwarderClusterTestbed(CLUSTER_TAG)
    tb.up()
    state = {"tb": tb, "binary": binary, "logs": logs, "replicas": {}, "mn": None, "fwd": None}
    try:
        for n in REPLICAS:
            state["replicas"][n] = Replica(tb, n, binary, logs).start()
        tb.wait_nexthops(3)
        fwd = Forwarder(tb, binary, logs, extra=["--http-listen", HTTP])
        fwd.clear()
        state["fwd"] = fwd.start()
        fwd.wait_synced(5)
        mn = MobileNodeDaemon(tb, binary, logs / "mip6-mn.log", interfaces=(tb.MN_IF1, tb.MN_IF2))
        mn.start()
        state["mn"] = mn
        mn.wait_registered(tb.COA1, 10)
        yield state
    finally:
        if state["mn"]:
            state["mn"].stop()
        if state["fwd"]:
            state["fwd"].stop()
            state["fwd"].clear()
        for r in state["replicas"].values():
            r.stop()
        tb.down()


def wait_binding(fwd: Forwarder, hoa: str, coa: str, timeout: float) -> float:
    """Seconds until the forwarder's maps hold hoa -> coa."""
    t0 = time.monotonic()
    while True:
        b = fwd.binding(hoa)
        if b and b["careOfAddress"] == coa:
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"forwarder has {b} for {hoa}, wanted care-of {coa} within {timeout} s")
        time.sleep(0.01)


def to_mn(cluster) -> dict:
    """packetsToMN of the home address at every replica and at the forwarder."""
    tb = cluster["tb"]
    seen = {f"ha{n}": (cluster["replicas"][n].binding(tb.HOA) or {}).get("packetsToMN", 0) for n in REPLICAS}
    seen["fwd"] = (cluster["fwd"].binding(tb.HOA) or {}).get("packetsToMN", 0)
    return seen


def downlink(cluster, seconds: float = 2.0) -> tuple[dict, dict]:
    """A 1000/s stream CN -> home address for `seconds`; its result and who tunneled it."""
    before = to_mn(cluster)
    s = UdpStream(cluster["tb"], rate=RATE).start()
    time.sleep(seconds)
    res = s.stop()
    after = to_mn(cluster)
    grew = {k: after[k] - before[k] for k in after}
    print(f"  CN -> HoA: {summary(res)}; tunneled by {grew}")
    return res, grew


def test_forwarder_has_the_binding_and_status(cluster):
    tb, fwd = cluster["tb"], cluster["fwd"]
    took = wait_binding(fwd, tb.HOA, tb.COA1, 1.0)
    deadline = time.monotonic() + 1  # the state file is written at most every 200 ms
    while (st := fwd.status())["state"]["bindings"] < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    print(f"  binding in the forwarder's maps ({took * 1000:.0f} ms after the check began); status {st['state']['synced']}")
    assert st["running"] and st["state"]["synced"] and st["state"]["bindings"] >= 1
    assert st["state"]["interfaces"]["r-cn"]["attach"] == "tc"
    assert st["state"]["lagMilliseconds"] < 1000
    text = tb.run("rtr", [str(cluster["binary"]), "forwarder", "status", "--state-dir", fwd.state_dir]).stdout
    assert "yes: forwarding" in text
    get = ("import sys, urllib.request\nfor p in ('/readyz', '/metrics'):\n"
           f"    r = urllib.request.urlopen('http://{HTTP}' + p, timeout=2); print(r.status, r.read().decode())")
    out = tb.run("rtr", [PYTHON, "-c", get]).stdout
    assert out.startswith("200") and "mip6_forwarder_synced 1" in out, out


def test_downlink_is_tunneled_at_the_edge(cluster):
    """The correspondent's stream reaches the MN, tunneled by the forwarder: no replica's
    per-binding counter moves."""
    res, grew = downlink(cluster)
    assert res["lost"] <= 2, summary(res)
    assert grew["fwd"] >= 0.95 * RATE * 2, grew
    assert all(grew[f"ha{n}"] == 0 for n in REPLICAS), grew
    c = cluster["fwd"].counters()
    assert c.get("mh_punt", 0) == 0 and c.get("na_proxy", 0) == 0, c


def test_move_reaches_the_replicas_and_the_forwarder_follows(cluster):
    """The MN moves (mn-f1 down): its BU goes through the router to a replica, and the new
    care-of address reaches the forwarder within a second of the registration."""
    tb, mn, fwd = cluster["tb"], cluster["mn"], cluster["fwd"]
    try:
        tb.set_mn_link(tb.MN_IF1, False)
        mn.wait_registered(tb.COA2, 5)
        took = wait_binding(fwd, tb.HOA, tb.COA2, 1.0)
        print(f"  registered from COA2; in the forwarder's maps {took * 1000:.0f} ms after the MN saw its BA")
        # Its own measure, from the replica's acceptance (status --json and the state file alike).
        conv = fwd.status()["state"]["convergence"]
        assert conv and conv["samples"] >= 1 and 0 <= conv["p50"] < 1000, conv
        res, grew = downlink(cluster, 1.0)
        assert res["lost"] <= 2 and grew["fwd"] >= 0.9 * RATE, (summary(res), grew)
        assert all(grew[f"ha{n}"] == 0 for n in REPLICAS), grew
    finally:
        tb.reset_mn()
    mn.wait_registered(tb.COA1, 10)
    wait_binding(fwd, tb.HOA, tb.COA1, 1.0)


def test_no_store_access_passes_everything_to_the_replicas(cluster):
    """Stopped, the forwarder's program passes every packet; started again with a store it
    cannot reach it never forwards (its pinned maps may be stale): the replicas tunnel it."""
    tb, fwd, binary, logs = cluster["tb"], cluster["fwd"], cluster["binary"], cluster["logs"]
    fwd.stop()
    res, grew = downlink(cluster, 1.0)
    assert res["lost"] <= 2 and grew["fwd"] == 0 and sum(grew[f"ha{n}"] for n in REPLICAS) >= 0.9 * RATE, grew
    blind = Forwarder(tb, binary, logs, store="etcd+http://[fd00:ff::fe]:1")  # nothing listens there
    blind.start()
    cluster["fwd"] = blind
    try:
        time.sleep(1.5)
        st = blind.status()["state"]
        assert not st["synced"] and st["notSyncedReason"], st
        res, grew = downlink(cluster, 1.0)
        assert res["lost"] <= 2, summary(res)
        assert grew["fwd"] == 0 and sum(grew[f"ha{n}"] for n in REPLICAS) >= 0.9 * RATE, grew
    finally:
        blind.stop()
        cluster["fwd"] = fwd.start()
        fwd.wait_synced(5)
    # And a store that goes silent under a running forwarder: it stops forwarding within
    # --max-lag (1 s) plus a heartbeat period.
    tb.run("rtr", "nft -f - <<'EOF'\ntable inet fwdcut {\n chain o { type filter hook output priority 0; "
                  "ip6 daddr fd00:ff::/64 drop; }\n}\nEOF")
    try:
        t0 = time.monotonic()
        fwd.wait_synced(5, synced=False)
        took = time.monotonic() - t0
        print(f"  store cut off: the forwarder stopped forwarding after {took * 1000:.0f} ms")
        res, grew = downlink(cluster, 1.0)
        assert res["lost"] <= 2 and grew["fwd"] == 0, (summary(res), grew)
    finally:
        tb.run("rtr", ["nft", "delete", "table", "inet", "fwdcut"], check=False)
    fwd.wait_synced(10)


def test_a_frozen_member_under_the_watch_is_left_for_another(cluster):
    """The etcd member the forwarder watches frozen (SIGSTOP: a hung node, its connection open
    and silent). Its heartbeats stop coming back: it stops forwarding (the replicas take the
    traffic), gives the watch up after --max-lag and takes it again from its revision on
    another member, and forwards again with the member still frozen."""
    tb, fwd = cluster["tb"], cluster["fwd"]
    fwd.stop()
    cluster["fwd"] = fwd.start()  # one connection, to the member its id hashes to
    fwd.wait_synced(5)
    frozen = tb.etcd_member_used_by("rtr")
    logged = len(fwd.log_text())
    t0 = time.monotonic()
    with tb.etcd_member_frozen(frozen):
        fwd.wait_synced(4, synced=False)
        stopped = time.monotonic() - t0
        fwd.wait_synced(5)
        back = time.monotonic() - t0
        print(f"  e{frozen} frozen under the forwarder's watch: stopped forwarding after {stopped * 1000:.0f} ms, "
              f"forwarding again after {back * 1000:.0f} ms")
        assert "lagged behind the store" in fwd.log_text()[logged:], fwd.log_text()[logged:][-1500:]
        res, grew = downlink(cluster, 1.0)
        assert res["lost"] <= 2 and grew["fwd"] >= 0.9 * RATE, (summary(res), grew)


FILL = r"""
import base64, ipaddress, json, struct, sys, time, urllib.request
endpoint, prefix, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
now = time.time_ns()
# BindingRecord v1 (Sources/Mip6Store/BindingRecord.swift): version, options, care-of address,
# sequence, flags, lifetime, registered and expiry (unix ns), writer.
value = lambda coa: base64.b64encode(struct.pack(">BB16sHHIqq", 1, 0, ipaddress.IPv6Address(coa).packed, 1, 0xC000, 3600,
    now, now + 3600 * 10**9) + b"bench").decode()
base = int(ipaddress.IPv6Address("2001:db8:1::1:0"))
ops = []
def flush():
    req = urllib.request.Request(endpoint + "/v3/kv/txn", data=json.dumps({"success": ops}).encode(),
                                 headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=10).read()
    ops.clear()
for i in range(count):
    hoa = str(ipaddress.IPv6Address(base + i))
    key = base64.b64encode(f"{prefix}/b/{hoa}".encode()).decode()
    ops.append({"requestPut": {"key": key, "value": value(f"2001:db8:f1::{(i % 60000) + 1:x}")}})
    if len(ops) == 128:
        flush()
if ops:
    flush()
"""


def test_cold_start_100k_bindings(cluster):
    """100,000 bindings in the store (another prefix, another interface): forwarder start ->
    synced (its first list in the maps). Target < 3 s."""
    tb, binary, logs = cluster["tb"], cluster["binary"], cluster["logs"]
    prefix = f"/mip6cold/{tb.tag}"
    t0 = time.monotonic()
    tb.run("db", [PYTHON, "-c", FILL, f"http://[{tb.ETCD[1]}]:{tb.ETCD_PORT}", prefix, str(COLD_BINDINGS)], timeout=300)
    print(f"  {COLD_BINDINGS} bindings written to the store in {time.monotonic() - t0:.1f} s")
    # An interface of its own (a veth: this kernel may have no dummy driver).
    tb.run("rtr", "ip link show cold0 >/dev/null 2>&1 || ip link add cold0 type veth peer name cold1; ip link set cold0 up; ip link set cold1 up")
    cold = Forwarder(tb, binary, logs, interfaces=("cold0",), name="cold", store_prefix=prefix,
                     extra=["--max-bindings", "200000"])
    cold.clear()
    t0 = time.monotonic()
    cold.start(timeout=30)
    try:
        st = cold.wait_synced(30)
        took = time.monotonic() - t0
        first = st.get("firstSyncMilliseconds")
        print(f"  COLD START: {COLD_BINDINGS} bindings, forwarder start -> synced {took * 1000:.0f} ms "
              f"(the daemon's own start -> first list in the maps: {first:.0f} ms)")
        assert st["bindings"] == COLD_BINDINGS, st
        assert len(cold.bindings()) == COLD_BINDINGS
    finally:
        cold.stop()
        cold.clear()
        tb.etcdctl("del", "--prefix", prefix + "/", check=False)
