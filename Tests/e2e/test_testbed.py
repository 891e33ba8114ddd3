"""Tests of the test tools themselves (no daemon needed): the topology and testbed.scapy_mn.

A scapy stand-in for the home agent (fake_ha.py) answers in the HA namespace;
it uses scapy's own MIP6 layers, so the hand-written codec in scapy_mn is
checked against an independent one.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from conftest import PYTHON, REPO_ROOT, Testbed, ping_cn, wait_for

FAKE_HA = str(REPO_ROOT / "Tests" / "e2e" / "fake_ha.py")


@pytest.fixture
def idle_ha(testbed):
    """The HA namespace with no daemon: nothing attached to ha0."""
    assert testbed.xdp_info("ha", testbed.HA_IF) is None, "an XDP program is attached to ha0"
    return testbed


def fake_ha(tb: Testbed, *args: str) -> subprocess.Popen:
    p = tb.popen("ha", [PYTHON, FAKE_HA, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if args[0] == "answer":
        line = p.stderr.readline()
        assert "READY" in line, line + p.stderr.read()
    return p


def fake_ha_result(p: subprocess.Popen) -> dict:
    out, err = p.communicate(timeout=15)
    assert p.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def test_bringup_is_fast(testbed):
    assert testbed.up_seconds < 5, f"testbed up took {testbed.up_seconds:.2f} s"


def test_second_tag_coexists(testbed):
    other = Testbed(testbed.tag + "b")
    try:
        other.up()
        received, _ = ping_cn(other, other.COA1, count=1)
        assert received == 1
        received, _ = ping_cn(testbed, testbed.COA1, count=1)
        assert received == 1
    finally:
        other.down()
    assert other.exists() == []
    assert not other.run_dir.exists()


@pytest.mark.parametrize("dst", [Testbed.COA1, Testbed.COA2, Testbed.HA, Testbed.HOME_ROUTER])
def test_cn_reaches_through_router(testbed, dst):
    received, cp = ping_cn(testbed, dst, count=2)
    assert received == 2, cp.stdout + cp.stderr


def test_addresses_are_configured_and_not_tentative(testbed):
    for (node, ifname), addrs in Testbed.ADDRESSES.items():
        out = json.loads(testbed.run(node, ["ip", "-j", "-6", "addr", "show", "dev", ifname]).stdout)
        have = {f"{a['local']}/{a['prefixlen']}": a for a in out[0]["addr_info"]}
        for addr in addrs:
            assert addr in have, f"{node}/{ifname} lacks {addr}: {sorted(have)}"
            assert not have[addr].get("tentative"), f"{addr} on {ifname} is tentative"


def test_mobile_node_home_interface_is_down(testbed):
    out = json.loads(testbed.run("mn", ["ip", "-j", "link", "show", "dev", "mn-home"]).stdout)
    assert "UP" not in out[0]["flags"]
    route = testbed.run("mn", ["ip", "-6", "route", "show", "default"]).stdout
    assert "via 2001:db8:f1::1 dev mn-f1" in route


def test_no_router_advertisement_or_dad_settings(testbed):
    for node in Testbed.NODES:
        out = testbed.run(node, "sysctl -n net.ipv6.conf.default.accept_ra net.ipv6.conf.default.accept_dad").stdout
        assert out.split() == ["0", "0"], f"{node}: {out}"
    assert testbed.run("rtr", "sysctl -n net.ipv6.conf.all.forwarding").stdout.strip() == "1"


def test_xdp_pass_on_home_agent_peer(testbed):
    info = testbed.xdp_info("rtr", Testbed.HA_PEER_IF)
    assert info and info["prog"]["name"] == "xdp_pass", info
    assert info["mode"] == 1, "expected native (driver) mode"


def test_bpffs_is_shared_between_commands(testbed):
    d = "/sys/fs/bpf/testbed-probe"
    testbed.run("ha", ["mkdir", "-p", d])
    try:
        assert testbed.run("mn", ["stat", "-f", "-c", "%T", d]).stdout.strip() == "bpf_fs"
        assert (testbed.BPFFS / "testbed-probe").is_dir()
    finally:
        testbed.run("ha", ["rmdir", d])


def test_bu_reaches_ha_and_ba_is_parsed(idle_ha, mn):
    tb = idle_ha
    p = fake_ha(tb, "answer", "--max-units", "10")
    ba = mn.register(seq=7, lifetime=60, extra=("--alt-coa", tb.COA1))
    got = fake_ha_result(p)["received"][0]
    # What the HA saw: our BU, one router hop later, checksum as scapy computes it.
    assert got["src"] == tb.COA1 and got["hoa"] == tb.HOA
    assert got["seq"] == 7 and got["lifetime_units"] == 15
    assert got["checksum"] == got["checksum_expected"]
    assert got["hlim"] == 63
    # What the MN made of scapy's BA (lifetime capped to 10 units by the fake HA).
    assert ba["status"] == 0 and ba["sequence"] == 7 and ba["lifetime"] == 40
    assert ba["rh2"] == tb.HOA and ba["checksum_ok"] and ba["ip_dst"] == tb.COA1


def test_bad_checksums_are_detected(idle_ha, mn):
    tb = idle_ha
    p = fake_ha(tb, "answer", "--corrupt-reply")
    ba = mn.register(seq=8, lifetime=8, extra=("--bad-checksum",))
    got = fake_ha_result(p)["received"][0]
    assert got["checksum"] != got["checksum_expected"], "--bad-checksum sent a valid checksum"
    assert ba["checksum_ok"] is False, "a corrupted BA passed the checksum check"


def test_deregistration_and_second_interface(idle_ha, mn):
    tb = idle_ha
    p = fake_ha(tb, "answer")
    ba = mn.register(seq=9, lifetime=0, iface="mn-f2")
    got = fake_ha_result(p)["received"][0]
    assert got["src"] == tb.COA2 and got["lifetime_units"] == 0
    assert ba["status"] == 0 and ba["lifetime"] == 0 and ba["ip_dst"] == tb.COA2


def test_binding_error_is_parsed(idle_ha, mn):
    tb = idle_ha
    p = fake_ha(tb, "answer")
    out = mn.register(seq=1, lifetime=8, extra=("--mh-type", "42"))
    assert fake_ha_result(p)["received"][0]["mh_type"] == 42
    assert out["be"] == {**out["be"], "status": 2, "home_address": tb.HOA, "checksum_ok": True}


def test_no_answer_times_out(idle_ha, mn):
    t0 = time.monotonic()
    assert mn.register(seq=1, lifetime=8, timeout=0.5) == {"ba": None}
    assert time.monotonic() - t0 < 5


def test_responder_answers_through_reverse_tunnel(idle_ha, mn):
    tb = idle_ha
    r = mn.responder(iface="mn-f1", duration=10)
    try:
        replies = [fake_ha_result(fake_ha(tb, "tunnel", "--coa", tb.COA1, "--hoa", tb.HOA, "--cn", tb.CN,
                                          "--seq", str(i)))["reply"] for i in (1, 2)]
    finally:
        seen = r.finish()
    for i, rep in enumerate(replies, 1):
        assert rep is not None, "no reverse-tunneled reply reached the HA"
        assert (rep["outer_src"], rep["outer_dst"]) == (tb.COA1, tb.HA)
        assert (rep["inner_src"], rep["inner_dst"]) == (tb.HOA, tb.CN)
        assert rep["seq"] == i and rep["data"] == "mip6-testbed" and rep["checksum_ok"]
        assert rep["outer_hlim"] == 63
    assert seen["tunneled_requests"] == 2 and seen["replies"] == 2
    assert seen["outer_hlim"] == [63, 63] and seen["inner_hlim"] == [63, 63]
    assert seen["echo_seq"] == [1, 2]


def test_mn_kernel_stays_quiet(idle_ha, mn):
    """The MN namespace's kernel must not answer tunneled packets or BAs with ICMPv6 errors."""
    tb = idle_ha
    cap = tb.popen("ha", ["tcpdump", "-i", "ha0", "-nn", "-l", "--immediate-mode", "-c", "50",
                          f"icmp6 and src {tb.COA1} and ip6[40] == 4"],
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    r = mn.responder(iface="mn-f1", duration=10)
    try:
        rep = fake_ha_result(fake_ha(tb, "tunnel", "--coa", tb.COA1, "--hoa", tb.HOA, "--cn", tb.CN))
    finally:
        r.finish()
    p = fake_ha(tb, "answer")
    mn.register(seq=3, lifetime=8)
    fake_ha_result(p)
    time.sleep(0.3)
    tb.stop(cap, timeout=3)
    out = cap.stdout.read()
    assert rep["reply"] is not None
    assert "parameter problem" not in out, out


def test_flood_reaches_ha(idle_ha, mn):
    tb = idle_ha

    def rx_packets():
        return json.loads(tb.run("ha", ["ip", "-j", "-s", "link", "show", "dev", "ha0"]).stdout)[0]["stats64"]["rx"]["packets"]

    before = rx_packets()
    out = mn.flood(5000)
    assert out["sent"] == 5000 and sum(out["kinds"].values()) == 5000
    arrived = wait_for(lambda: rx_packets() - before >= 5000, 3) and rx_packets() - before
    print(f"flood: {out}; ha0 received {rx_packets() - before} packets")
    assert arrived, f"only {rx_packets() - before} of 5000 flood packets reached ha0"


def test_mn_has_a_default_route_through_each_foreign_link(testbed):
    routes = testbed.run("mn", ["ip", "-6", "route", "show", "default"]).stdout
    assert "via 2001:db8:f1::1 dev mn-f1 metric 100" in routes, routes
    assert "via 2001:db8:f2::1 dev mn-f2 metric 200" in routes, routes


def test_mn_link_down_and_up_restores_address_and_route(testbed):
    """What a move looks like to the MN: the kernel drops the care-of address and the route
    with the link; set_mn_link(up) brings both back."""
    try:
        testbed.set_mn_link(testbed.MN_IF1, False)
        down = testbed.mn_link_state(testbed.MN_IF1)
        assert down == {"up": False, "addresses": [], "default": False}, down
        other = testbed.mn_link_state(testbed.MN_IF2)
        assert other["up"] and other["default"] and testbed.COA2 in other["addresses"], other
        received, _ = ping_cn(testbed, testbed.COA2, count=1)
        assert received == 1, "mn-f2 alone does not reach the CN"
        testbed.set_mn_link(testbed.MN_IF1, True)
        up = testbed.mn_link_state(testbed.MN_IF1)
        assert up == {"up": True, "addresses": [testbed.COA1], "default": True}, up
        received, _ = ping_cn(testbed, testbed.COA1, count=1)
        assert received == 1
    finally:
        testbed.reset_mn()


def test_mn_goes_home_and_leaves_again(testbed):
    try:
        testbed.mn_go_home()
        assert not testbed.mn_link_state(testbed.MN_IF1)["up"] and not testbed.mn_link_state(testbed.MN_IF2)["up"]
        home = testbed.mn_link_state(testbed.MN_HOME_IF)
        assert home["up"] and home["default"] and testbed.HOA in home["addresses"], home
        testbed.mn_leave_home()
        assert not testbed.mn_link_state(testbed.MN_HOME_IF)["up"]
        assert testbed.mn_link_state(testbed.MN_IF1)["default"] and testbed.mn_link_state(testbed.MN_IF2)["default"]
    finally:
        testbed.reset_mn()
