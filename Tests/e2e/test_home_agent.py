"""End-to-end tests of `mip6 ha` in the namespace testbed, driven by the scapy mobile node.

Each test gets a fresh daemon with no pinned state (see conftest.daemon).
"""

from __future__ import annotations

import ipaddress
import json
import time

import pytest

from conftest import REPO_ROOT, counter_delta, mip6_binary, ping_cn, wait_for

ACCEPTED = 0
NOT_HOME_SUBNET = 132
DAD_FAILED = 134
SEQUENCE_OUT_OF_WINDOW = 135
BE_UNRECOGNIZED_MH_TYPE = 2
FIRST_REGISTRATION_BUDGET_MS = 1500   # InitialBindackTimeoutFirstReg: the MN would retransmit after this
EXPIRY_GRACE_S = 1.5
PINGS = 5
HOP_LIMIT = 64                        # Linux default hop limit of the correspondent's ping


def assert_accepted(ba: dict, tb, seq: int, requested: int, coa: str):
    assert "status" in ba, f"no Binding Acknowledgement: {ba}"
    assert ba["status"] == ACCEPTED, f"BA status {ba['status']}, expected 0: {ba}"
    assert ba["sequence"] == seq
    assert ba["lifetime"] <= requested, f"granted lifetime {ba['lifetime']} s > requested {requested} s"
    if requested:
        assert ba["lifetime"] > 0, "a registration was granted lifetime 0"
    assert ba["rh2"] == tb.HOA, f"BA's Type 2 routing header carries {ba['rh2']}, expected the home address"
    assert ba["checksum_ok"], "BA Mobility Header checksum is wrong (pseudo-header: HA -> home address)"
    assert ba["ip_dst"] == coa, f"BA sent to {ba['ip_dst']}, expected the care-of address {coa}"


def register_ok(mn, tb, seq: int, lifetime: int = 60, iface: str = "mn-f1") -> dict:
    coa = tb.COA1 if iface == "mn-f1" else tb.COA2
    ba = mn.register(seq=seq, lifetime=lifetime, iface=iface)
    assert_accepted(ba, tb, seq, lifetime, coa)
    return ba


def ping_through(tb, mn, iface: str = "mn-f1", count: int = PINGS):
    """Ping the home address from the CN with the responder on `iface`; returns (received, responder stats)."""
    r = mn.responder(iface=iface, duration=count * 0.2 + 10)
    try:
        received, cp = ping_cn(tb, count=count)
    finally:
        out = r.finish()
    print(f"responder on {iface}: {json.dumps(out)}")
    return received, out


def test_binary_is_built():
    """FAILS (rather than skips) when the daemon has not been built; the other tests then error."""
    p = mip6_binary()
    if not p.is_file():
        pytest.fail(f"mip6 binary not found at {p}: run `swift build -c release` in {REPO_ROOT} "
                    "(or point MIP6_BIN at it)", pytrace=False)


# --- registration ------------------------------------------------------------
def test_registration_is_accepted_and_listed(testbed, daemon, mn):
    ba = register_ok(mn, testbed, seq=1, lifetime=60)

    binding = daemon.binding(testbed.HOA)
    assert binding is not None, f"{testbed.HOA} not in `bindings list`: {daemon.bindings()}"
    assert binding["careOfAddress"] == testbed.COA1
    assert binding["sequence"] == 1
    assert binding["lifetime"] == ba["lifetime"], "listed lifetime differs from the one granted in the BA"
    assert 0 < binding["remaining"] <= binding["lifetime"]
    assert "H" in binding["flags"] and "A" in binding["flags"], binding["flags"]

    shown = daemon.show(testbed.HOA)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["careOfAddress"] == testbed.COA1
    missing = daemon.show("2001:db8:1::dead")
    assert missing.returncode == 1, "`bindings show` of an unknown home address must exit 1"


def test_first_registration_is_fast(testbed, daemon, mn):
    ba = register_ok(mn, testbed, seq=1, lifetime=60)
    print(f"first registration (BU -> BA, includes DAD for the home address): {ba['rtt_ms']:.1f} ms")
    assert ba["rtt_ms"] < FIRST_REGISTRATION_BUDGET_MS, (
        f"first BA after {ba['rtt_ms']:.0f} ms: a mobile node retransmits after "
        f"{FIRST_REGISTRATION_BUDGET_MS} ms (InitialBindackTimeoutFirstReg)")
    again = register_ok(mn, testbed, seq=2, lifetime=60)
    print(f"refresh of an existing binding: {again['rtt_ms']:.1f} ms")


@pytest.mark.daemon_args("--max-lifetime", "8")
def test_lifetime_is_capped_by_max_lifetime(testbed, daemon, mn):
    ba = register_ok(mn, testbed, seq=1, lifetime=600)
    assert 0 < ba["lifetime"] <= 8, f"--max-lifetime 8 but granted {ba['lifetime']} s"


def _icmp6_out_param_problems(testbed) -> int:
    out = testbed.run("ha", ["cat", "/proc/net/snmp6"]).stdout
    return int(next(l.split()[1] for l in out.splitlines() if l.startswith("Icmp6OutParmProblems")))


def test_kernel_never_answers_a_bu_with_parameter_problem(testbed, daemon, mn):
    """The stock kernel would discard a BU for its Home Address option and send ICMPv6
    Parameter Problem; XDP takes the BU away first."""
    before = _icmp6_out_param_problems(testbed)
    register_ok(mn, testbed, seq=1, lifetime=60)
    register_ok(mn, testbed, seq=2, lifetime=60)
    assert _icmp6_out_param_problems(testbed) == before, "the HA kernel answered a BU with Parameter Problem"


def test_lower_sequence_gets_135_with_last_accepted(testbed, daemon, mn):
    register_ok(mn, testbed, seq=100)
    ba = mn.register(seq=99, lifetime=60)
    assert ba.get("status") == SEQUENCE_OUT_OF_WINDOW, ba
    assert ba["sequence"] == 100, "a status-135 BA must carry the last accepted sequence number"
    assert ba["checksum_ok"]
    assert daemon.binding(testbed.HOA)["sequence"] == 100


def test_sequence_numbers_compare_modulo_2_16(testbed, daemon, mn):
    register_ok(mn, testbed, seq=65535)
    register_ok(mn, testbed, seq=2)   # (2 - 65535) mod 65536 = 3: newer
    assert daemon.binding(testbed.HOA)["sequence"] == 2


def test_home_address_outside_home_prefix_gets_132(testbed, daemon, mn):
    foreign = "2001:db8:2::100"
    assert ipaddress.IPv6Address(foreign) not in ipaddress.IPv6Network(testbed.HOME_PREFIX)
    ba = mn.register(seq=1, lifetime=60, hoa=foreign)
    assert ba.get("status") == NOT_HOME_SUBNET, ba
    assert ba["checksum_ok"]
    assert daemon.binding(foreign) is None


def test_bad_checksum_gets_no_ba_and_no_binding(testbed, daemon, mn):
    before = daemon.stats()
    out = mn.register(seq=1, lifetime=60, timeout=2, extra=("--bad-checksum",))
    assert out == {"ba": None}, f"a BU with a bad checksum was answered: {out}"
    assert daemon.binding(testbed.HOA) is None
    assert daemon.alive()
    counted = counter_delta(before, daemon.stats(), r"checksum")
    print(f"checksum counters: {counted}")
    assert counted and max(counted.values()) >= 1, "the bad checksum was not counted anywhere"


def test_unknown_mh_type_gets_binding_error_2(testbed, daemon, mn):
    out = mn.register(seq=1, lifetime=60, extra=("--mh-type", "42"))
    assert out.get("be") is not None, f"no Binding Error for MH type 42: {out}"
    print(f"Binding Error: {out['be']}")
    assert out["be"]["status"] == BE_UNRECOGNIZED_MH_TYPE
    assert out["be"]["checksum_ok"]
    assert daemon.binding(testbed.HOA) is None


# --- data path ---------------------------------------------------------------
def test_ping_home_address_through_tunnel(testbed, daemon, mn):
    register_ok(mn, testbed, seq=1)
    stats_before = daemon.stats()
    b0 = daemon.binding(testbed.HOA)

    received, seen = ping_through(testbed, mn)

    assert received == PINGS, f"{received}/{PINGS} echo replies reached the CN"
    assert seen["tunneled_requests"] >= PINGS, seen
    assert set(seen["inner_src"]) == {testbed.CN}
    # CN (64) -> router (63) -> home agent decrements before encapsulating (62).
    assert set(seen["inner_hlim"]) == {HOP_LIMIT - 2}, f"inner hop limits {seen['inner_hlim']}"
    # The outer header starts at the HA's hop limit and the router decrements it once.
    assert all(h in (63, 127, 254) for h in seen["outer_hlim"]), f"outer hop limits {seen['outer_hlim']}"
    assert seen["outer_src_mac"] == testbed.VETHS[3].a_mac, "tunneled packets did not come from the router"

    b1 = daemon.binding(testbed.HOA)
    print(f"binding counters before {b0}\nafter {b1}")
    assert b1["packetsToMN"] - b0["packetsToMN"] >= PINGS
    assert b1["packetsFromMN"] - b0["packetsFromMN"] >= PINGS
    assert b1["bytesToMN"] - b0["bytesToMN"] >= PINGS * 104     # 40 IPv6 + 8 ICMPv6 + 56 data
    assert b1["bytesFromMN"] - b0["bytesFromMN"] >= PINGS * 104

    stats_after = daemon.stats()
    enc = counter_delta(stats_before["dataplane"], stats_after["dataplane"], r"encap|to_?mn|tunnel.*out", r"decap")
    dec = counter_delta(stats_before["dataplane"], stats_after["dataplane"], r"decap|from_?mn|tunnel.*in")
    print(f"dataplane deltas: encap-like {enc}, decap-like {dec}")
    assert enc and max(enc.values()) >= PINGS, f"no encapsulation counter grew by {PINGS}: {stats_after['dataplane']}"
    assert dec and max(dec.values()) >= PINGS, f"no decapsulation counter grew by {PINGS}: {stats_after['dataplane']}"


def test_next_hop_change_is_followed_at_once(testbed, daemon, mn):
    """The data plane caches the next hop it got from bpf_fib_lookup; the daemon bumps the
    cache's generation on every netlink neighbour/route/link event, so a router whose MAC
    changes is never sent to at its old address."""
    register_ok(mn, testbed, seq=1)
    received, _ = ping_through(testbed, mn)
    assert received == PINGS
    hits_warm = daemon.stats()["dataplane"].get("nexthop_cache_hit", 0)
    assert hits_warm > 0, "the next-hop cache was not used at all"

    old = testbed.mac("rtr", testbed.HOME_BRIDGE)
    new = "02:00:00:00:01:99"
    try:
        testbed.run("rtr", ["ip", "link", "set", "dev", testbed.HOME_BRIDGE, "address", new])
        # The HA learns the new address (as an NA with Override would tell it); only netlink
        # tells the daemon, which must invalidate what XDP cached.
        testbed.run("ha", ["ip", "-6", "neigh", "replace", testbed.HOME_ROUTER, "lladdr", new,
                           "dev", testbed.HA_IF, "nud", "reachable"])
        misses_before = daemon.stats()["dataplane"].get("nexthop_cache_miss", 0)
        received, _ = ping_through(testbed, mn)
        after = daemon.stats()["dataplane"]
        print(f"after the MAC change: {received}/{PINGS} replies, cache misses "
              f"+{after.get('nexthop_cache_miss', 0) - misses_before}, hits {after.get('nexthop_cache_hit', 0)}")
        assert received == PINGS, "pings lost after the router's MAC changed: forwarded to a stale next hop"
        assert after.get("nexthop_cache_miss", 0) > misses_before, "the cache was not invalidated"
    finally:
        testbed.run("rtr", ["ip", "link", "set", "dev", testbed.HOME_BRIDGE, "address", old], check=False)
        testbed.run("ha", ["ip", "-6", "neigh", "replace", testbed.HOME_ROUTER, "lladdr", old,
                           "dev", testbed.HA_IF, "nud", "reachable"], check=False)


def test_handover_to_second_care_of_address(testbed, daemon, mn):
    register_ok(mn, testbed, seq=1, iface="mn-f1")
    received, seen = ping_through(testbed, mn, iface="mn-f1")
    assert received == PINGS and seen["tunneled_requests"] >= PINGS

    register_ok(mn, testbed, seq=2, iface="mn-f2")
    assert daemon.binding(testbed.HOA)["careOfAddress"] == testbed.COA2

    old = mn.responder(iface="mn-f1", duration=15)
    try:
        received, seen2 = ping_through(testbed, mn, iface="mn-f2")
    finally:
        seen1 = old.finish()
    print(f"after handover: mn-f1 {seen1}, mn-f2 {seen2}")
    assert received == PINGS, f"{received}/{PINGS} replies after moving to {testbed.COA2}"
    assert seen2["tunneled_requests"] >= PINGS
    assert seen1["tunneled_requests"] == 0, "packets still tunneled to the old care-of address"


def test_deregistration_removes_binding(testbed, daemon, mn):
    register_ok(mn, testbed, seq=1)
    ba = mn.register(seq=2, lifetime=0)
    assert_accepted(ba, testbed, 2, 0, testbed.COA1)
    assert ba["lifetime"] == 0

    assert daemon.binding(testbed.HOA) is None, daemon.bindings()
    assert daemon.show(testbed.HOA).returncode == 1
    received, seen = ping_through(testbed, mn, count=3)
    assert received == 0, "the home address still answers after de-registration"
    assert seen["tunneled_requests"] == 0


def test_short_lifetime_expires_on_time(testbed, daemon, mn):
    t_sent = time.monotonic()
    ba = register_ok(mn, testbed, seq=1, lifetime=4)
    t_ba = time.monotonic()     # the BA arrived before this
    granted = ba["lifetime"]
    assert daemon.binding(testbed.HOA) is not None

    gone = wait_for(lambda: daemon.binding(testbed.HOA) is None, granted + EXPIRY_GRACE_S + 3, 0.1)
    t_gone = time.monotonic()
    print(f"granted {granted} s; binding gone {t_gone - t_ba:.2f} s after the BA")
    assert gone, "binding never expired"
    assert t_gone - t_sent >= granted - 0.5, f"binding expired early: after {t_gone - t_sent:.2f} s of {granted} s"
    assert t_gone - t_ba <= granted + EXPIRY_GRACE_S, (
        f"binding removed {t_gone - t_ba:.2f} s after the BA; lifetime {granted} s + {EXPIRY_GRACE_S} s grace")

    received, seen = ping_through(testbed, mn, count=3)
    assert received == 0 and seen["tunneled_requests"] == 0, "still tunneling after expiry"


# --- neighbour discovery on the home link ------------------------------------
def router_neigh(tb) -> dict | None:
    out = tb.run("rtr", ["ip", "-j", "-6", "neigh", "show", tb.HOA, "dev", tb.HOME_BRIDGE]).stdout
    entries = json.loads(out or "[]")
    return entries[0] if entries else None


def test_router_resolves_home_address_to_ha(testbed, daemon, mn):
    ha_mac = testbed.mac("ha", testbed.HA_IF)
    register_ok(mn, testbed, seq=1)
    # Make the router resolve the home address (the ping itself goes nowhere).
    testbed.run("rtr", ["ping", "-6", "-c", "1", "-W", "1", testbed.HOA], check=False)
    entry = wait_for(lambda: (e := router_neigh(testbed)) and e.get("lladdr") == ha_mac and e, 3)
    print(f"router: {router_neigh(testbed)}")
    assert entry, f"router's entry for {testbed.HOA} is {router_neigh(testbed)}, expected lladdr {ha_mac}"


def test_unsolicited_na_overrides_stale_router_entry(testbed, daemon, mn):
    """The MN was at home: the router's cache says mn-home. Registration must repoint it (NA, O flag)."""
    ha_mac = testbed.mac("ha", testbed.HA_IF)
    mn_home_mac = testbed.VETHS[2].b_mac
    testbed.run("rtr", ["ip", "-6", "neigh", "replace", testbed.HOA, "lladdr", mn_home_mac,
                        "dev", testbed.HOME_BRIDGE, "nud", "stale"])
    register_ok(mn, testbed, seq=1)
    entry = wait_for(lambda: (e := router_neigh(testbed)) and e.get("lladdr") == ha_mac and e, 3)
    print(f"router: {router_neigh(testbed)}")
    assert entry, (f"router still maps {testbed.HOA} to {router_neigh(testbed)}: no unsolicited NA "
                   f"with the Override flag from the home agent ({ha_mac})")


def derived_link_local(hoa: str) -> str:
    """fe80::/64 + the home address's interface identifier (RFC 6275 §10.3.1)."""
    return str(ipaddress.IPv6Address((0xFE80 << 112) | (int(ipaddress.IPv6Address(hoa)) & ((1 << 64) - 1))))


def router_resolves(tb, ll: str, count: int = 1) -> dict | None:
    """The router forgets `ll`, pings it on the home link (NS first) and returns its neighbour entry."""
    tb.run("rtr", ["ip", "-6", "neigh", "flush", "to", ll, "dev", tb.HOME_BRIDGE], check=False)
    tb.run("rtr", ["ping", "-6", "-c", str(count), "-i", "0.2", "-W", "1", f"{ll}%{tb.HOME_BRIDGE}"], check=False)
    entries = json.loads(tb.run("rtr", ["ip", "-j", "-6", "neigh", "show", ll, "dev", tb.HOME_BRIDGE]).stdout or "[]")
    return entries[0] if entries else None


def test_l_flag_defends_the_link_local_address(testbed, daemon, mn):
    """RFC 6275 §10.3.1: with L=1 the home agent defends the mobile node's link-local address
    too (after DAD for both), answers the router's NS for it with its own MAC, never tunnels
    to it, and stops with the binding; with L=0 it does not defend it."""
    ha_mac = testbed.mac("ha", testbed.HA_IF)
    ll = derived_link_local(testbed.HOA)

    ba = mn.register(seq=1, lifetime=60, extra=("--flags", "AHL"))
    assert_accepted(ba, testbed, 1, 60, testbed.COA1)
    binding = daemon.binding(testbed.HOA)
    assert "L" in binding["flags"] and binding.get("linkLocal") == ll, binding

    before = daemon.stats()["dataplane"]
    r = mn.responder(iface="mn-f1", duration=8)
    try:
        entry = router_resolves(testbed, ll, count=3)
    finally:
        seen = r.finish()
    print(f"router's entry for {ll}: {entry}; responder {seen}")
    assert (entry or {}).get("lladdr") == ha_mac, f"{ll} not resolved to the home agent ({ha_mac}): {entry}"
    assert seen["tunneled_requests"] == 0 and seen["other_tunneled"] == 0, "a link-local packet was tunneled"
    after = daemon.stats()["dataplane"]
    assert after.get("encap", 0) == before.get("encap", 0), "the pings to the link-local address were encapsulated"
    assert after.get("na_proxy", 0) > before.get("na_proxy", 0)

    ba = mn.register(seq=2, lifetime=0, extra=("--flags", "AHL"))
    assert_accepted(ba, testbed, 2, 0, testbed.COA1)
    entry = router_resolves(testbed, ll)
    print(f"after de-registration: {entry}")
    assert (entry or {}).get("lladdr") != ha_mac, "still defended after de-registration"

    register_ok(mn, testbed, seq=3)   # L=0
    assert daemon.binding(testbed.HOA).get("linkLocal") is None
    entry = router_resolves(testbed, ll)
    print(f"registered without L: {entry}")
    assert (entry or {}).get("lladdr") != ha_mac, "defended without the L flag"


def test_l_flag_link_local_address_in_use_gets_134(testbed, daemon, mn):
    """RFC 6275 §10.3.1: with L=1 DAD covers the derived link-local address too; a node on the
    home link that answers for it fails the whole registration with 134."""
    ll = derived_link_local(testbed.HOA)
    testbed.run("rtr", ["ip", "-6", "addr", "add", f"{ll}/64", "dev", testbed.HOME_BRIDGE, "nodad"])
    try:
        ba = mn.register(seq=1, lifetime=60, extra=("--flags", "AHL"))
        assert ba.get("status") == DAD_FAILED, ba
        assert daemon.binding(testbed.HOA) is None
        register_ok(mn, testbed, seq=2)   # without L only the home address is probed: free
    finally:
        testbed.run("rtr", ["ip", "-6", "addr", "del", f"{ll}/64", "dev", testbed.HOME_BRIDGE], check=False)


# --- robustness --------------------------------------------------------------
def test_malformed_flood_does_not_kill_daemon(testbed, daemon, mn):
    before = daemon.stats()
    out = mn.flood(5000)
    assert out["sent"] == 5000, out
    time.sleep(0.5)
    assert daemon.alive(), f"daemon died after the flood (exit {daemon.proc.returncode})"
    # Every flood packet must be accounted for somewhere (dropped in XDP, or punted and rejected).
    counted = counter_delta(before, daemon.stats(), r"drop|malform|checksum|punt|invalid|error|truncat")
    print(f"flood counters: { {k: v for k, v in counted.items() if v} }")
    assert sum(counted.values()) >= 4500, f"the flood barely shows in the counters: {counted}"
    ba = register_ok(mn, testbed, seq=1)
    print(f"registration right after the flood: {ba['rtt_ms']:.1f} ms")
    assert daemon.binding("2001:db8:1::f10d") is None, "a malformed BU created a binding"


def test_sigterm_exits_zero_and_leaves_the_data_plane(testbed, daemon, mn):
    """SIGTERM stops the control plane only: the program stays attached and keeps tunneling
    (test_restart.py has the restart itself; `mip6 dataplane detach` removes it)."""
    register_ok(mn, testbed, seq=1)
    prog = daemon.attached_program()
    assert prog, "no program on ha0 while the daemon runs"
    code = daemon.stop()
    assert code == 0, f"`mip6 ha` exited {code} on SIGTERM"
    assert daemon.attached_program() == prog, "the program left ha0 when the daemon stopped"
    received, _ = ping_through(testbed, mn, count=3)
    assert received == 3, "tunneling stopped with the control plane"
