"""End-to-end tests of the mobile-node daemon `mip6 mn` against the real home agent `mip6 ha`.

Each test gets a fresh home agent (conftest.daemon) and starts its own mobile node
(conftest.mobile_node); afterwards the MN's links are put back (both foreign links up,
mn-f1 preferred, mn-home down). Figures (registration times, throughput, loss at a
move) are printed: run with -s to see them.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from conftest import counter_delta, ping, wait_for
from testbed.harness import (Capture, HarnessError, UdpStream, counter, iperf3, move_break_before_make,
                             move_make_before_break, send_forged_ba)
from testbed.stream import summary

PINGS = 5
MIN_TCP_MBPS = 50             # a tunnel through two XDP/TC programs on veth does far more
STREAM_RATE = 1000            # datagrams/s of the handover stream
MAX_BBM_LOSS = 200            # datagrams (ms at 1000/s): netlink + one BU/BA round trip, no timer
MAX_MBB_LOSS = 5              # make-before-break: the old link carries on until the BA (~0; a few
                              # datagrams race the switch of the MN's decapsulation address)
FIRST_RETRANSMISSION_S = 1.0  # INITIAL_BINDACK_TIMEOUT: a move faster than this used no timer
MAX_OUTAGE_MS = 50            # longest silence of a 1000/s stream at a move with a usable address
STATUS_KEYS = {"homeAddress", "homeAgent", "careOfAddress", "tunnelCareOf", "state", "grantedLifetime",
               "secondsToRefresh", "secondsToExpiry", "sequence", "lastStatus", "counters", "dataplane"}
COUNTER_KEYS = {"busSent", "retransmissions", "acksAccepted", "acksIgnored", "resyncs135",
                "registrations", "refreshes", "lastRegistrationMs"}


def ha_counters(ha) -> tuple[dict, dict]:
    """The home agent's data-plane counters and its binding for the home address (or {})."""
    return ha.stats()["dataplane"], ha.binding(ha.tb.HOA) or {}


def tc_programs(tb, ifname: str) -> dict[str, list]:
    """BPF filters attached to `ifname` by direction."""
    out = {}
    for direction in ("ingress", "egress"):
        cp = tb.run("mn", ["tc", "-j", "filter", "show", "dev", ifname, direction], check=False)
        filters = json.loads(cp.stdout or "[]") if cp.returncode == 0 else []
        out[direction] = [f for f in filters if f.get("kind") == "bpf"]
    return out


def assert_binding(ha, coa: str, timeout: float = 3.0) -> dict:
    b = wait_for(lambda: (x := ha.binding(ha.tb.HOA)) and x.get("careOfAddress") == coa and x, timeout)
    assert b, f"the home agent's binding for {ha.tb.HOA} is {ha.binding(ha.tb.HOA)}, expected care-of {coa}"
    return b


def test_mn_subcommand_exists(mip6_bin):
    """FAILS (not skips) when the binary has no `mn` subcommand yet; every other test here needs it."""
    cp = subprocess.run([str(mip6_bin), "mn", "--help"], capture_output=True, text=True, timeout=20)
    assert cp.returncode == 0 and "--home-address" in cp.stdout, (
        f"`{mip6_bin} mn --help` exited {cp.returncode}: {cp.stdout.strip()} {cp.stderr.strip()}")


# --- registration ---------------------------------------------------------------
def test_registration(testbed, daemon, mobile_node):
    tb = testbed
    drops0 = tb.mn_kernel_drops()
    mn = mobile_node()
    st = mn.wait_registered(tb.COA1, timeout=8)
    print(f"ready {mn.ready_seconds:.2f} s after start, registered (status) after "
          f"{time.monotonic() - mn.started_at:.2f} s; first BU -> accepted BA: "
          f"{st['counters'].get('lastRegistrationMs')} ms (includes the HA's DAD for the home address)")
    print(json.dumps(st, indent=1))

    missing = STATUS_KEYS - st.keys()
    assert not missing, f"`mip6 mn status --json` lacks {sorted(missing)}"
    assert not COUNTER_KEYS - st["counters"].keys(), f"counters lack {sorted(COUNTER_KEYS - st['counters'].keys())}"
    assert st["homeAddress"] == tb.HOA and st["homeAgent"] == tb.HA
    assert st["lastStatus"] == 0
    assert 0 < st["grantedLifetime"] <= 600
    assert st["secondsToRefresh"] < st["secondsToExpiry"] <= st["grantedLifetime"]
    assert st["counters"]["registrations"] == 1 and st["counters"]["acksAccepted"] >= 1
    assert st["dataplane"].get("mh_punt", 0) >= 1, "the BA did not come through the data plane's punt"

    b = assert_binding(daemon, tb.COA1)
    print(f"home agent: {b}")
    assert b["sequence"] == st["sequence"], "the HA's binding has another sequence number than the MN's last BU"
    assert b["lifetime"] == st["grantedLifetime"]

    # What the daemon set up in the MN namespace.
    lo = tb.run("mn", ["ip", "-6", "addr", "show", "dev", "lo"]).stdout
    assert f"{tb.HOA}/128" in lo, f"home address not on lo:\n{lo}"
    for ifname in (tb.MN_IF1, tb.MN_IF2):
        progs = tc_programs(tb, ifname)
        assert progs["ingress"] and progs["egress"], f"TC programs on {ifname}: {progs}"
    assert mn.log_lines("registered", f"mip6.coa={tb.COA1}"), "no `registered ... mip6.coa=` log line"
    assert tb.mn_kernel_drops() == drops0, "a BA or tunneled packet reached the MN's kernel (nft counted it)"


# --- data path --------------------------------------------------------------------
def test_ping_both_ways_through_tunnel(testbed, daemon, mobile_node):
    tb = testbed
    mn = mobile_node()
    mn.wait_registered(tb.COA1, timeout=8)
    dp0, b0 = ha_counters(daemon)
    m0 = mn.status()

    received_in, _ = ping(tb, "cn", tb.HOA, count=PINGS)
    received_out, _ = ping(tb, "mn", tb.CN, count=PINGS, source=tb.HOA)

    dp1, b1 = ha_counters(daemon)
    m1 = mn.status()
    enc = counter_delta(dp0, dp1, r"^encap$")
    dec = counter_delta(dp0, dp1, r"^decap$")
    mn_enc = counter(m1, "dataplane.encap") - counter(m0, "dataplane.encap")
    mn_dec = counter(m1, "dataplane.decap") - counter(m0, "dataplane.decap")
    print(f"HA encap {enc}, decap {dec}; binding to MN {b1.get('packetsToMN', 0) - b0.get('packetsToMN', 0)}, "
          f"from MN {b1.get('packetsFromMN', 0) - b0.get('packetsFromMN', 0)}; MN encap {mn_enc}, decap {mn_dec}")
    assert received_in == PINGS, f"CN -> home address: {received_in}/{PINGS} replies"
    assert received_out == PINGS, f"MN (from the home address) -> CN: {received_out}/{PINGS} replies"
    # Each direction: the request one way, the reply the other, both through the tunnel.
    assert enc.get("encap", 0) >= 2 * PINGS, f"HA encap grew by {enc}"
    assert dec.get("decap", 0) >= 2 * PINGS, f"HA decap grew by {dec}"
    assert mn_enc >= 2 * PINGS and mn_dec >= 2 * PINGS, f"MN data plane: encap +{mn_enc}, decap +{mn_dec}"


def test_tcp_through_tunnel_both_directions(testbed, daemon, mobile_node):
    tb = testbed
    mn = mobile_node()
    mn.wait_registered(tb.COA1, timeout=8)
    dp0, b0 = ha_counters(daemon)
    up = iperf3(tb, "cn", tb.CN, "mn", client_bind=tb.HOA, seconds=2)                 # MN -> CN
    down = iperf3(tb, "cn", tb.CN, "mn", client_bind=tb.HOA, seconds=2, reverse=True)  # CN -> MN
    dp1, b1 = ha_counters(daemon)
    to_mn = b1.get("bytesToMN", 0) - b0.get("bytesToMN", 0)
    from_mn = b1.get("bytesFromMN", 0) - b0.get("bytesFromMN", 0)
    print(f"TCP through the home agent: MN -> CN {up['mbps']:.0f} Mbit/s ({up['retransmits']} retransmits), "
          f"CN -> MN {down['mbps']:.0f} Mbit/s ({down['retransmits']} retransmits); "
          f"HA binding bytes to MN +{to_mn}, from MN +{from_mn}")
    assert up["mbps"] > MIN_TCP_MBPS, f"MN -> CN through the tunnel: {up['mbps']:.1f} Mbit/s"
    assert down["mbps"] > MIN_TCP_MBPS, f"CN -> MN through the tunnel: {down['mbps']:.1f} Mbit/s"
    # The traffic really went through the home agent (not some direct path).
    assert to_mn >= 0.8 * down["mbps"] * 1e6 / 8 * down["seconds"], f"only {to_mn} bytes tunneled to the MN"
    assert from_mn >= 0.8 * up["mbps"] * 1e6 / 8 * up["seconds"], f"only {from_mn} bytes from the MN's reverse tunnel"


# --- moves ------------------------------------------------------------------------
def test_break_before_make_move_between_foreign_links(testbed, daemon, mobile_node):
    """mn-f1 (the care-of link) goes down while mn-f2 is up: the MN registers COA2 at once."""
    tb = testbed
    mn = mobile_node(interfaces=(tb.MN_IF1, tb.MN_IF2))
    st0 = mn.wait_registered(tb.COA1, timeout=8)
    stream = UdpStream(tb, rate=STREAM_RATE).start()
    try:
        time.sleep(0.5)
        st0 = mn.status()
        stream.mark("link_down")
        move = move_break_before_make(tb, mn, tb.MN_IF1, tb.COA2)
        time.sleep(0.5)
    finally:
        res = stream.stop()
    st = mn.status()
    b = assert_binding(daemon, tb.COA2)
    drops = counter_delta(st0["dataplane"], st["dataplane"], r"^drop")
    print(f"break-before-make mn-f1 -> mn-f2: registered from {tb.COA2} {move['seconds'] * 1000:.0f} ms after "
          f"the link went down (status poll), BU -> BA {st['counters'].get('lastRegistrationMs')} ms; "
          f"stream: {summary(res)}; MN data-plane drops {({k: v for k, v in drops.items() if v})}")
    print(f"home agent: {b}")
    assert res["received"] > 0, "the stream never reached the home address"
    assert counter(st, "counters.retransmissions") == counter(st0, "counters.retransmissions"), (
        "the move needed a retransmission (or the MN waited for a timer)")
    assert move["seconds"] < FIRST_RETRANSMISSION_S, f"re-registration took {move['seconds']:.2f} s"
    assert res["lost"] <= MAX_BBM_LOSS, f"{res['lost']} datagrams lost at the move: {summary(res)}"
    # Not `first_after`: with nothing lost that is just the longest silence, which may
    # well come before the link went down.
    assert res["last_arrived_ns"] > stream.events["link_down"], "no datagram arrived after the move"
    received, _ = ping(tb, "mn", tb.CN, count=3, source=tb.HOA)
    assert received == 3, "MN -> CN from the home address does not work after the move"


def test_make_before_break_move(testbed, daemon, mobile_node):
    """mn-f2 (preferred) comes up while the MN is registered on mn-f1: it moves while mn-f1
    still works; then mn-f1 goes down. Nothing should be lost."""
    tb = testbed
    tb.set_mn_link(tb.MN_IF2, False)
    mn = mobile_node(interfaces=(tb.MN_IF2, tb.MN_IF1))
    mn.wait_registered(tb.COA1, timeout=8)
    dp_mn0 = mn.status()["dataplane"]
    stream = UdpStream(tb, rate=STREAM_RATE).start()
    try:
        time.sleep(0.5)
        stream.mark("link_up")
        move = move_make_before_break(tb, mn, tb.MN_IF2, tb.COA2, tb.MN_IF1)
        stream.mark("old_link_down")
        time.sleep(0.5)
    finally:
        res = stream.stop()
    st = mn.status()
    assert_binding(daemon, tb.COA2)
    drops = counter_delta(dp_mn0, st["dataplane"], r"^drop")
    print(f"make-before-break mn-f1 -> mn-f2: registered from {tb.COA2} {move['seconds'] * 1000:.0f} ms after "
          f"mn-f2 came up (BU -> BA {st['counters'].get('lastRegistrationMs')} ms); stream: {summary(res)}; "
          f"MN data-plane drops {({k: v for k, v in drops.items() if v})}")
    assert res["received"] > 0
    assert res["lost"] <= MAX_MBB_LOSS, f"{res['lost']} datagrams lost in a make-before-break move: {summary(res)}"
    assert st["state"] == "registered" and st["careOfAddress"] == tb.COA2


def two_streams(tb) -> tuple[UdpStream, UdpStream]:
    """1000 datagrams/s CN -> home address and home address -> CN (reverse tunnel)."""
    down = UdpStream(tb, rate=STREAM_RATE).start()
    try:
        up = UdpStream(tb, dst=tb.CN, src=tb.HOA, src_node="mn", dst_node="cn", port=5556, rate=STREAM_RATE).start()
    except BaseException:
        down.stop()
        raise
    return down, up


def test_two_default_routes_move_both_ways_with_dad(testbed, daemon, mobile_node):
    """As a user sets it up: `--interface mn-f1 --interface mn-f2`, a default route through
    each (metric 100 and 200), addresses that go through DAD, 1000 datagrams/s each way.
    `ip link set mn-f1 down`: the MN must register COA2 at once; mn-f1 back up with its
    address: the MN stays on COA2 while COA1 is tentative (nothing reaches a tentative
    address: RFC 4862 §5.4) and moves back the moment DAD ends, not a timer later. Under
    MAX_OUTAGE_MS of silence in either direction, both moves."""
    tb = testbed
    with tb.mn_dad():
        tb.set_mn_link(tb.MN_IF1, False)
        tb.set_mn_link(tb.MN_IF2, False)
        tb.set_mn_link(tb.MN_IF1, True, dad=True)
        tb.set_mn_link(tb.MN_IF2, True, dad=True)
        mn = mobile_node(interfaces=(tb.MN_IF1, tb.MN_IF2))
        mn.wait_registered(tb.COA1, timeout=8)
        results = {}
        for move in ("away", "back"):
            st0 = mn.status()
            down, up = two_streams(tb)
            try:
                time.sleep(0.5)
                t0 = time.monotonic()
                if move == "away":
                    tb.run("mn", ["ip", "link", "set", "dev", tb.MN_IF1, "down"])
                    st = mn.wait_registered(tb.COA2, timeout=5)
                else:
                    tb.set_mn_link(tb.MN_IF1, True, dad=True)
                    st = mn.wait_registered(tb.COA1, timeout=5)
                seen = time.monotonic() - t0
                time.sleep(0.5)
            finally:
                res_down, res_up = down.stop(), up.stop()
            results[move] = (seen, st, res_down, res_up)
            print(f"{move}: registration seen {seen * 1000:.0f} ms after the link event, BU -> BA "
                  f"{st['counters'].get('lastRegistrationMs')} ms, retransmissions "
                  f"{counter(st, 'counters.retransmissions') - counter(st0, 'counters.retransmissions')}\n"
                  f"  CN -> HoA: {summary(res_down)}\n  HoA -> CN: {summary(res_up)}")
        for move, (seen, st, res_down, res_up) in results.items():
            for name, res in (("CN -> HoA", res_down), ("HoA -> CN", res_up)):
                assert res["received"] > 0, f"{move}: {name} never arrived"
                assert res["max_gap_ms"] < MAX_OUTAGE_MS, f"{move}: {name} silent for {res['max_gap_ms']:.0f} ms: {summary(res)}"
                # Lost at the end counts too (datagrams stuck behind a neighbour that never resolves).
                assert res["lost"] <= MAX_OUTAGE_MS * STREAM_RATE / 1000, f"{move}: {name}: {summary(res)}"
            # A BU from a usable address is answered in a round trip; one from a tentative
            # address waits for DAD (and for the retransmission timer).
            assert st["counters"]["lastRegistrationMs"] < FIRST_RETRANSMISSION_S * 1000 / 4, (
                f"{move}: BU -> BA took {st['counters']['lastRegistrationMs']} ms")
        assert results["back"][0] > 0.5, (
            "the MN moved back before DAD of COA1 could have finished (about 1 s)")


def test_unresolved_router_entry_does_not_hold_the_bu(testbed, daemon, mobile_node):
    """The intermittent second of the test above, made certain. A packet the data plane
    redirects to mn-f1 in the instant it goes down leaves an INCOMPLETE entry for the router
    there. While the link's addresses are tentative that entry sends no solicitation (there
    is no source for one), and it drops what it queued when its probes run out, three
    seconds after it was made. The first BU from COA1 used to go into that queue: lost,
    sent again a second later. The MN now clears such an entry before a BU."""
    tb = testbed
    router = tb.MN_FOREIGN_LINKS[tb.MN_IF1][1]
    with tb.mn_dad():
        mn = mobile_node(interfaces=(tb.MN_IF1, tb.MN_IF2))
        mn.wait_registered(tb.COA1, timeout=8)
        tb.set_mn_link(tb.MN_IF1, False)
        mn.wait_registered(tb.COA2, timeout=5)
        st0 = mn.status()
        tb.set_mn_link(tb.MN_IF1, True, dad=True)
        tb.run("mn", ["ip", "-6", "neigh", "replace", router, "dev", tb.MN_IF1, "nud", "incomplete"])
        st = mn.wait_registered(tb.COA1, timeout=5)
        retransmissions = counter(st, "counters.retransmissions") - counter(st0, "counters.retransmissions")
        print(f"back to COA1: BU -> BA {st['counters'].get('lastRegistrationMs')} ms, retransmissions {retransmissions}")
        assert retransmissions == 0 and st["counters"]["lastRegistrationMs"] < FIRST_RETRANSMISSION_S * 1000 / 4, (
            f"the first BU from COA1 was held by the stale entry: {st['counters']}")


# --- home -------------------------------------------------------------------------
def router_neigh(tb) -> dict | None:
    out = tb.run("rtr", ["ip", "-j", "-6", "neigh", "show", tb.HOA, "dev", tb.HOME_BRIDGE]).stdout
    entries = json.loads(out or "[]")
    return entries[0] if entries else None


def rx_packets(tb, node: str, ifname: str) -> int:
    link = json.loads(tb.run(node, ["ip", "-j", "-s", "link", "show", "dev", ifname]).stdout)[0]
    return link["stats64"]["rx"]["packets"]


def test_returning_home_deregisters_and_leaving_registers_again(testbed, daemon, mobile_node):
    tb = testbed
    mn_home_mac = tb.VETHS[2].b_mac
    ha_mac = tb.mac("ha", tb.HA_IF)
    # The home link first: as soon as it is usable the MN is home, whatever else is up.
    mn = mobile_node(interfaces=(tb.MN_HOME_IF, tb.MN_IF1, tb.MN_IF2))
    mn.wait_registered(tb.COA1, timeout=8)
    received, _ = ping(tb, "cn", tb.HOA, count=2)
    assert received == 2
    entry = router_neigh(tb)
    print(f"router's entry for {tb.HOA} while away: {entry}")
    assert entry and entry.get("lladdr") == ha_mac, "the router should reach the home address through the HA"

    # Watch the home link for the MN's signaling and Neighbor Advertisements while it comes home.
    cap = Capture(tb, "rtr", tb.HOME_BRIDGE, f"ether src {mn_home_mac} and (ip6[40] == 136 or ip6 proto 135)").start()
    # The NAs over the whole stay at home: RFC 6275 §11.5.5 lets the MN repeat them.
    nas = Capture(tb, "rtr", tb.HOME_BRIDGE, f"ether src {mn_home_mac} and icmp6 and ip6[40] == 136").start()
    dp0 = daemon.stats()["dataplane"]
    t0 = time.monotonic()
    tb.mn_go_home()
    failures = []
    try:
        st = mn.wait_state("home", timeout=8)
    except HarnessError as e:
        pytest.fail(str(e), pytrace=False)
    t_home = time.monotonic() - t0
    gone = wait_for(lambda: daemon.binding(tb.HOA) is None, 3)
    print(f"at home: state {st['state']} {t_home * 1000:.0f} ms after mn-home came up; "
          f"careOfAddress {st.get('careOfAddress', '(absent)')}, tunnelCareOf {st.get('tunnelCareOf', '(absent)')}, "
          f"HA binding {'gone' if gone else daemon.binding(tb.HOA)}; counters {st['counters']}")
    for key in ("careOfAddress", "tunnelCareOf"):
        if key not in st or st[key] is not None:
            failures.append(f"status at home: {key} is {st.get(key, 'absent from the JSON')}, expected null")
    if not gone:
        failures.append(f"the HA still holds a binding: {daemon.binding(tb.HOA)}")

    # No traffic yet: only an unsolicited NA (Override) from the MN can repoint the router.
    moved = wait_for(lambda: (e := router_neigh(tb)) and e.get("lladdr") == mn_home_mac, 2)
    seen = cap.stop()
    print(f"router's entry after de-registration, before any traffic: {router_neigh(tb)}")
    print("from mn-home on the home link (BU, NA):", *(seen or ["(nothing)"]), sep="\n  ")
    if not moved:
        failures.append(f"the router still maps {tb.HOA} to {router_neigh(tb)} 2 s after the MN came home: "
                        f"no unsolicited NA with the Override flag from the MN ({mn_home_mac})")

    rx0 = rx_packets(tb, "mn", tb.MN_HOME_IF)
    received, _ = ping(tb, "cn", tb.HOA, count=PINGS)
    rx1 = rx_packets(tb, "mn", tb.MN_HOME_IF)
    enc = counter_delta(dp0, daemon.stats()["dataplane"], r"^encap$").get("encap", 0)
    print(f"at home: {received}/{PINGS} replies, mn-home received {rx1 - rx0} packets, HA encap +{enc}; "
          f"router entry {router_neigh(tb)}")
    if received != PINGS:
        failures.append(f"CN -> home address at home: {received}/{PINGS} replies")
    if rx1 - rx0 < PINGS:
        failures.append(f"mn-home received {rx1 - rx0} packets for {PINGS} pings: not delivered natively")
    if enc:
        failures.append(f"the HA still encapsulated {enc} packets after de-registration")
    entry = router_neigh(tb)
    if not (entry and entry.get("lladdr") == mn_home_mac):
        failures.append(f"after the pings the router maps {tb.HOA} to {entry}, expected {mn_home_mac}")
    # Multicast is unreliable: MAX_NEIGHBOR_ADVERTISEMENT (3) unsolicited NAs, RetransTimer (1 s) apart.
    wait_for(lambda: mn.log_text().count("home: unsolicited NA sent") >= 3, 3)
    time.sleep(0.2)
    announced = [l for l in nas.stop() if f"tgt is {tb.HOA}" in l]
    without_override = [l for l in announced if "override" not in l]
    if without_override:
        failures.append(f"unsolicited NAs for {tb.HOA} without the Override flag: {without_override}")
    times = [float(l.split()[0]) for l in announced]
    print(f"unsolicited NAs for {tb.HOA} while home: {len(announced)}, "
          f"{[round(b - a, 2) for a, b in zip(times, times[1:])]} s apart")
    if len(announced) != 3 or any(not 0.9 <= b - a <= 1.5 for a, b in zip(times, times[1:])):
        failures.append(f"expected 3 unsolicited NAs about 1 s apart, saw {len(announced)} at {times}")

    # And away again: the MN registers from mn-f1 once more.
    t0 = time.monotonic()
    tb.mn_leave_home()
    st = mn.wait_registered(tb.COA1, timeout=8)
    assert_binding(daemon, tb.COA1)
    received, _ = ping(tb, "cn", tb.HOA, count=3)
    print(f"left home: registered from {tb.COA1} after {(time.monotonic() - t0) * 1000:.0f} ms; {received}/3 replies")
    if received != 3:
        failures.append(f"CN -> home address after leaving home again: {received}/3 replies")
    if failures:
        pytest.fail("\n".join(failures), pytrace=False)


# --- the home agent's side --------------------------------------------------------
def test_mn_re_registers_after_home_agent_restart(testbed, daemon, mobile_node):
    """Lifetime 8 s: the HA restarts with no bindings; the MN's refresh goes unanswered, it
    retransmits, and registers with the new home agent."""
    tb = testbed
    mn = mobile_node(lifetime=8)
    st0 = mn.wait_registered(tb.COA1, timeout=8)
    assert st0["grantedLifetime"] <= 8
    t0 = time.monotonic()
    daemon.stop()
    daemon.clear_state()
    print(f"home agent stopped, its state cleared; MN refresh due in {st0['secondsToRefresh']} s")
    retrans0 = counter(st0, "counters.retransmissions")
    st = mn.wait_status(lambda s: counter(s, "counters.retransmissions") > retrans0, st0["grantedLifetime"] + 4,
                        "retransmitting its refresh")
    t_retrans = time.monotonic() - t0
    print(f"MN retransmitted {t_retrans:.1f} s after the HA stopped: state {st['state']}, "
          f"busSent {counter(st, 'counters.busSent')}, retransmissions {counter(st, 'counters.retransmissions')}")
    daemon.start(append=True)
    accepted0 = counter(st, "counters.acksAccepted")
    st = mn.wait_status(lambda s: s["state"] == "registered" and s["careOfAddress"] == tb.COA1
                        and counter(s, "counters.acksAccepted") > accepted0, 20, "registered with the new HA")
    t_back = time.monotonic() - t0
    b = assert_binding(daemon, tb.COA1)
    print(f"re-registered {t_back:.1f} s after the HA stopped ({t_back - t_retrans:.1f} s after its restart); "
          f"counters {st['counters']}; HA binding {b}")
    assert b["sequence"] == st["sequence"]
    received, _ = ping(tb, "cn", tb.HOA, count=3)
    assert received == 3, "CN -> home address after the re-registration"


def test_ba_with_wrong_sequence_is_ignored(testbed, daemon, mobile_node):
    tb = testbed
    mn = mobile_node()
    st0 = mn.wait_registered(tb.COA1, timeout=8)
    wrong = (st0["sequence"] + 1000) % 65536
    send_forged_ba(tb, tb.COA1, wrong, status=0, lifetime=600)
    st = mn.wait_status(lambda s: counter(s, "counters.acksIgnored") > counter(st0, "counters.acksIgnored"),
                        3, "counting the forged BA as ignored")
    print(f"after a BA with sequence {wrong} (last BU {st0['sequence']}): counters {st['counters']}")
    assert counter(st, "dataplane.mh_punt") > counter(st0, "dataplane.mh_punt")
    assert counter(st, "counters.acksIgnored") == counter(st0, "counters.acksIgnored") + 1
    for key in ("acksAccepted", "registrations", "refreshes"):
        assert counter(st, f"counters.{key}") == counter(st0, f"counters.{key}"), key
    for key in ("state", "careOfAddress", "tunnelCareOf", "sequence", "lastStatus", "grantedLifetime"):
        assert st[key] == st0[key], f"{key} changed from {st0[key]} to {st[key]}"
    assert_binding(daemon, tb.COA1)


def test_forged_ba_only_counts_with_the_outstanding_sequence(testbed, mobile_node):
    """No home agent runs: the MN's BU stays outstanding. A BA with another sequence number
    is ignored; one with the outstanding number (same forger, same packet otherwise) is
    accepted, which shows the first was ignored for its sequence number alone."""
    tb = testbed
    mn = mobile_node(extra=("--initial-sequence", "100"))
    for attempt in range(3):
        st0 = mn.wait_status(lambda s: s["state"] == "registering" and s.get("sequence") is not None, 5,
                             "registering (BU outstanding)")
        outstanding = st0["sequence"]
        send_forged_ba(tb, tb.COA1, (outstanding + 50) % 65536)
        st = mn.wait_status(lambda s: counter(s, "counters.acksIgnored") > counter(st0, "counters.acksIgnored"),
                            3, "counting the forged BA as ignored")
        assert st["state"] == "registering" and counter(st, "counters.acksAccepted") == 0, st
        if st["sequence"] != outstanding:
            continue      # a retransmission (new sequence number) came in between: again
        send_forged_ba(tb, tb.COA1, outstanding, lifetime=60)
        try:
            st = mn.wait_registered(tb.COA1, timeout=2)
        except HarnessError:
            if mn.status()["sequence"] != outstanding:
                continue
            raise
        print(f"BU {outstanding} outstanding: BA {outstanding + 50} ignored, BA {outstanding} accepted: {st['counters']}")
        assert counter(st, "counters.acksAccepted") == 1
        return
    pytest.fail("the MN retransmitted between every status read and forged BA (three attempts)")


def test_status_135_resynchronises_sequence(testbed, daemon, mobile_node, mn):
    tb = testbed
    ba = mn.register(seq=1000, lifetime=60)          # the scapy mobile node, from mn-f1
    assert ba.get("status") == 0, ba
    mip6 = mobile_node(extra=("--initial-sequence", "5"))
    st = mip6.wait_registered(tb.COA1, timeout=10)
    b = assert_binding(daemon, tb.COA1)
    print(f"after 135: counters {st['counters']}, sequence {st['sequence']}, HA binding sequence {b['sequence']}")
    assert counter(st, "counters.resyncs135") >= 1
    assert st["lastStatus"] == 0
    assert st["sequence"] == 1001, "the BU after status 135 must carry the home agent's sequence + 1"
    assert b["sequence"] == 1001


# --- shutdown ---------------------------------------------------------------------
def test_sigterm_deregisters_and_detaches(testbed, daemon, mobile_node):
    tb = testbed
    mn = mobile_node()
    mn.wait_registered(tb.COA1, timeout=8)
    assert_binding(daemon, tb.COA1)
    mark = mn.mark()
    code = mn.stop()
    gone = wait_for(lambda: daemon.binding(tb.HOA) is None, 3)
    leftovers = {i: tc_programs(tb, i) for i in (tb.MN_IF1, tb.MN_IF2)}
    lo = tb.run("mn", ["ip", "-6", "addr", "show", "dev", "lo"]).stdout
    print(f"exit code {code}; HA binding {'gone' if gone else daemon.binding(tb.HOA)}; "
          f"TC programs left {leftovers}; home address on lo after exit: {tb.HOA in lo}")
    print("log after SIGTERM:", mn.log_text(mark).strip()[-2000:], sep="\n")
    assert code == 0, f"`mip6 mn` exited {code} on SIGTERM"
    assert gone, f"the HA still holds a binding after the MN's SIGTERM: {daemon.binding(tb.HOA)}"
    assert all(not p["ingress"] and not p["egress"] for p in leftovers.values()), f"TC programs left: {leftovers}"
