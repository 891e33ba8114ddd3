"""End-to-end tests of `mip6 lma` (Proxy Mobile IPv6 local mobility anchor, RFC 5213) against
a MAG built independently with scapy (testbed/scapy_mag.py).

On the standard testbed: the LMA runs in the HA namespace with the home agent's address
(2001:db8:1::a); the scapy MAG sits in the MN namespace with COA1 (2001:db8:f1::100) as its
Proxy-CoA; the router routes the home network prefixes (2001:db8:200::/48) to the LMA. A
correspondent in the CN namespace sends to an address of the mobile node's prefix: the LMA
must tunnel it to the MAG; what the MAG sends up the reverse tunnel must reach the
correspondent, and only from the MAG the prefix is bound to.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from testbed.harness import PYTHON, Capture, HarnessError, LocalMobilityAnchor, metric_labelled, metric_samples, ping, wait_for
from testbed.harness import http_get as harness_http_get

NAI = "mn1@pmip.example"
MN_MAC = "02:00:00:00:0a:01"
HNP = "2001:db8:200:1::/64"
HOST = "2001:db8:200:1::5"        # an address the mobile node would form in its prefix
HNP_ROUTE = "2001:db8:200::/48"


@pytest.fixture
def lma(testbed, mip6_bin, tmp_path, request):
    tb = testbed
    marker = request.node.get_closest_marker("lma_args")
    policy = (f"mag {tb.COA1}\n"
              f"mn {NAI} mac {MN_MAC} prefix {HNP}\n"
              "mn pool@pmip.example mac 02:00:00:00:0a:02 prefix pool\n"
              "pool 2001:db8:300::/48\n")
    tb.run("rtr", ["ip", "-6", "route", "replace", HNP_ROUTE, "via", tb.HA, "dev", tb.HOME_BRIDGE])
    tb.run("rtr", ["ip", "-6", "route", "replace", "2001:db8:300::/48", "via", tb.HA, "dev", tb.HOME_BRIDGE])
    policy_path = tmp_path / "pmip.policy"
    policy_path.write_text(policy)
    d = LocalMobilityAnchor(tb, mip6_bin, tmp_path / "mip6-lma.log", policy_path,
                            extra_args=list(marker.args) if marker else []).start()
    yield d
    d.stop()
    print(f"- mip6 lma log -\n{d.log_text()[-4000:]}")
    d.clear_state()
    tb.run("rtr", ["ip", "-6", "route", "del", HNP_ROUTE], check=False)
    tb.run("rtr", ["ip", "-6", "route", "del", "2001:db8:300::/48"], check=False)


def mag(tb, command: str, *args, node: str = "mn", iface: str | None = None, source: str | None = None,
        lma: str | None = None) -> dict:
    iface = iface or tb.MN_IF1
    router_mac = next(v.a_mac for v in tb.VETHS if v.b_if == iface)
    cp = tb.run(node, [PYTHON, "-m", "testbed.scapy_mag", command, "--iface", iface, "--mag", source or tb.COA1,
                       "--lma", lma or tb.HA, "--router-mac", router_mac, *map(str, args)], check=False, timeout=30)
    try:
        out = json.loads(cp.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise HarnessError(f"scapy_mag {command} printed no JSON (exit {cp.returncode}): {cp.stdout}{cp.stderr}") from None
    if "error" in out:
        raise HarnessError(f"scapy_mag {command}: {out['error']}\n{cp.stderr}")
    return out


def pbu(tb, seq: int, *extra, **kw) -> dict:
    return mag(tb, "pbu", "--nai", kw.pop("nai", NAI), "--mac", MN_MAC, "--seq", seq, *extra, **kw)


def tshark_fields(packet_hex: str, tmp_path, fields: list[str]) -> dict[str, str]:
    """Our PBA decoded by tshark (Debian's 4.0, installed by scripts/install-deps): the value of
    each field, and any expert info or malformed-packet mark, which must be none."""
    from scapy.all import Ether, IPv6 as ScapyIPv6, wrpcap
    path = tmp_path / "pba.pcap"
    wrpcap(str(path), [Ether(src="02:00:00:00:01:0a", dst="02:00:00:00:f1:64") / ScapyIPv6(bytes.fromhex(packet_hex))])
    args = ["tshark", "-r", str(path), "-T", "fields", "-E", "separator=|", "-e", "_ws.expert", "-e", "_ws.malformed"]
    for f in fields:
        args += ["-e", f]
    cp = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0, cp.stderr
    values = cp.stdout.rstrip("\n").split("|")
    assert values[0] == "" and values[1] == "", f"tshark flags the PBA: expert {values[0]!r}, malformed {values[1]!r}"
    return dict(zip(fields, values[2:]))


def test_registration_then_traffic_both_ways(testbed, lma, tmp_path):
    """PBU -> PBA (P flag, sequence echoed, options mirrored, checksum right); then the
    correspondent's packets to the prefix arrive tunneled at the MAG, and what the MAG sends
    up the reverse tunnel reaches the correspondent."""
    tb = testbed
    ba = pbu(tb, 7, "--prefix", HNP, "--lifetime", 60)
    print(f"PBA: {json.dumps({k: v for k, v in ba.items() if k != 'hex'})}")
    assert ba["status"] == 0 and ba["flags"] & 0x20 and ba["seq"] == 7 and ba["checksum_ok"], ba
    assert ba["lifetime"] == 15
    o = ba["options"]
    assert o["nai"] == NAI and o["prefixes"] == [HNP] and o["hi"] == 4 and o["att"] == 3, o
    assert o["mn_ll_id"] == MN_MAC.replace(":", "") and o["timestamp"] == ba["sent_timestamp"], o
    # RFC 5213 §8.2 as an independent decoder reads it (compared numerically, never by label).
    t = tshark_fields(ba["hex"], tmp_path, ["mip6.ba.status", "mip6.ba.p_flag", "mip6.ba.seqnr", "mip6.ba.lifetime",
                                            "mip6.mnid.identifier", "mip6.nemo.mnp.mnp", "mip6.nemo.mnp.pfl", "mip6.hi",
                                            "mip6.att", "mip6.mnlli.lli", "mip6.timestamp_tmp"])
    print(f"tshark: {t}")
    assert (t["mip6.ba.status"], t["mip6.ba.p_flag"], t["mip6.ba.seqnr"], t["mip6.ba.lifetime"]) == ("0", "1", "7", "15"), t
    assert t["mip6.mnid.identifier"] == NAI and t["mip6.nemo.mnp.mnp"] == "2001:db8:200:1::" and t["mip6.nemo.mnp.pfl"] == "64", t
    assert (t["mip6.hi"], t["mip6.att"]) == ("4", "3") and t["mip6.mnlli.lli"].replace(":", "") == MN_MAC.replace(":", ""), t
    assert t["mip6.timestamp_tmp"], t
    b = lma.bindings()["bindings"]
    assert len(b) == 1 and b[0]["prefixes"] == [HNP] and b[0]["mag"] == tb.COA1 and b[0]["active"], b

    # Downlink: the correspondent pings an address in the prefix; the LMA tunnels it to the MAG.
    cap = Capture(tb, "mn", tb.MN_IF1, f"ip6 proto 41 and src {tb.HA} and dst {tb.COA1}").start()
    tb.run("cn", ["ping", "-6", "-c", "3", "-i", "0.2", "-W", "1", HOST], check=False)
    lines = cap.stop()
    print("\n".join(lines[:3]))
    assert len([l for l in lines if HOST in l and "echo request" in l]) == 3, lines

    # Uplink: the MAG's reverse tunnel, decapsulated at the LMA, routed to the correspondent.
    cap = Capture(tb, "cn", tb.CN_IF, f"udp and src {HOST} and dst port 9999").start()
    mag(tb, "uplink", "--inner-src", HOST, "--inner-dst", tb.CN, "--count", 3)
    lines = cap.stop()
    assert len(lines) == 3, lines
    dp = lma.bindings()["dataplane"]
    assert dp.get("encap", 0) >= 3 and dp.get("decap", 0) >= 3, dp


def test_spoofed_uplink_and_unknown_mag(testbed, lma):
    """The reverse tunnel is taken only from the MAG the prefix is bound to; a PBU from a MAG
    the policy does not list is refused with 154 and binds nothing."""
    tb = testbed
    assert pbu(tb, 1, "--prefix", HNP)["status"] == 0
    # COA2 is another address of the same node, not a MAG of the policy.
    refused = pbu(tb, 2, "--prefix", HNP, iface=tb.MN_IF2, source=tb.COA2)
    assert refused["status"] == 154, refused
    before = lma.bindings()["dataplane"].get("drop_tunnel_spoofed", 0)
    cap = Capture(tb, "cn", tb.CN_IF, f"udp and src {HOST}").start()
    mag(tb, "uplink", "--inner-src", HOST, "--inner-dst", tb.CN, "--count", 2, iface=tb.MN_IF2, source=tb.COA2)
    assert cap.stop() == []
    assert lma.bindings()["dataplane"].get("drop_tunnel_spoofed", 0) == before + 2


def test_late_deregistration_from_the_old_mag_changes_nothing(testbed, mip6_bin, tmp_path):
    """The node moves from MAG A to MAG B and B registers first; A's de-registration arrives
    after (RFC 5213 §5.3.5): it is answered, and the binding, the tunnel to B and its traffic
    stay as they are."""
    tb = testbed
    tb.run("rtr", ["ip", "-6", "route", "replace", HNP_ROUTE, "via", tb.HA, "dev", tb.HOME_BRIDGE])
    policy = tmp_path / "late.policy"
    policy.write_text(f"mag {tb.COA1}\nmag {tb.COA2}\nmn {NAI} mac {MN_MAC} prefix {HNP}\n")
    lma = LocalMobilityAnchor(tb, mip6_bin, tmp_path / "mip6-lma-late.log", policy)
    try:
        lma.start()
        assert pbu(tb, 1, "--prefix", HNP)["status"] == 0
        moved = pbu(tb, 2, "--prefix", HNP, "--hi", 3, iface=tb.MN_IF2, source=tb.COA2)
        assert moved["status"] == 0, moved
        late = pbu(tb, 3, "--prefix", HNP, "--lifetime", 0)
        assert late["status"] == 0 and late["lifetime"] == 0, late
        b = lma.bindings()["bindings"]
        assert len(b) == 1 and b[0]["mag"] == tb.COA2 and b[0]["active"], b
        cap = Capture(tb, "mn", tb.MN_IF2, f"ip6 proto 41 and src {tb.HA} and dst {tb.COA2}").start()
        tb.run("cn", ["ping", "-6", "-c", "2", "-i", "0.2", "-W", "1", HOST], check=False)
        assert len([l for l in cap.stop() if HOST in l and "echo request" in l]) == 2, "still tunneled to MAG B"
        events = lma.status()["events"]
        assert events["stale_deregistrations"] == 1 and events["deregistrations"] == 0 and events["handoffs"] == 1, events
    finally:
        lma.stop()
        lma.clear_state()
        tb.run("rtr", ["ip", "-6", "route", "del", HNP_ROUTE], check=False)


def test_entries_a_killed_lma_left_forward_until_expiry_then_go(testbed, mip6_bin, tmp_path):
    """An LMA SIGKILLed with a binding and started again: the new daemon's cache is empty, but
    the pinned entry it inherited keeps tunneling to the MAG until its expiry (the data plane
    checks it). Its MAG never refreshes it, so once expired it is deleted from the map rather
    than left there for good (across restarts they would fill it)."""
    tb = testbed
    tb.run("rtr", ["ip", "-6", "route", "replace", HNP_ROUTE, "via", tb.HA, "dev", tb.HOME_BRIDGE])
    policy = tmp_path / "inherit.policy"
    policy.write_text(f"mag {tb.COA1}\nmn {NAI} mac {MN_MAC} prefix {HNP}\n")
    lma = LocalMobilityAnchor(tb, mip6_bin, tmp_path / "mip6-lma-inherit.log", policy)
    pinned = str(lma.bpffs_host / "mip6_lma_hnp")

    def entries() -> int:
        return len(json.loads(subprocess.run(["bpftool", "-j", "map", "dump", "pinned", pinned],
                                             capture_output=True, text=True, check=True).stdout))
    try:
        lma.start()
        assert pbu(tb, 1, "--prefix", HNP, "--lifetime", 8)["lifetime"] == 2  # 8 s, in units of 4 s
        t_registered = time.monotonic()
        lma.stop(sig=9)
        lma.start(keep_pins=True)
        assert lma.bindings()["bindings"] == [] and entries() == 1
        assert lma.status()["events"]["inherited_entries"] == 1
        cap = Capture(tb, "mn", tb.MN_IF1, f"ip6 proto 41 and src {tb.HA} and dst {tb.COA1}").start()
        tb.run("cn", ["ping", "-6", "-c", "2", "-i", "0.2", "-W", "1", HOST], check=False)
        assert len([l for l in cap.stop() if HOST in l and "echo request" in l]) == 2, "not tunneled after the restart"
        assert wait_for(lambda: entries() == 0, timeout=8 + 3 - (time.monotonic() - t_registered)), \
            f"the expired entry is still pinned {time.monotonic() - t_registered:.1f} s after its registration"
        events = lma.status()["events"]
        assert events["inherited_entries"] == 0 and events["inherited_entries_removed"] == 1, events
    finally:
        lma.stop()
        lma.clear_state()
        tb.run("rtr", ["ip", "-6", "route", "del", HNP_ROUTE], check=False)


@pytest.mark.parametrize("leave_out,status", [(8, 160), (22, 158), (23, 161), (24, 162)])
def test_missing_mandatory_options(testbed, lma, leave_out, status):
    tb = testbed
    assert pbu(tb, 3, "--prefix", HNP, "--leave-out", leave_out)["status"] == status


def test_timestamps_prefixes_and_deregistration(testbed, lma):
    """156 for a clock 1 s off (with the LMA's time in the PBA), 155 for a prefix that is not
    the node's, 152 for an unknown node, 157 for the same PBU replayed 50 ms later; a pool
    node gets a /64 of the pool; de-registration stops the tunnel."""
    tb = testbed
    off = pbu(tb, 10, "--prefix", HNP, "--timestamp-offset-ms", 1000)
    assert off["status"] == 156 and abs(off["options"]["timestamp"] / 65536 - time.time()) < 1, off
    assert pbu(tb, 11, "--prefix", "2001:db8:200:9::/64")["status"] == 155
    assert pbu(tb, 12, "--prefix", HNP, nai="nobody@pmip.example")["status"] == 152
    replayed = pbu(tb, 13, "--prefix", HNP, "--replay")
    assert replayed["first_status"] == 0 and replayed["status"] == 157, replayed
    pool = mag(tb, "pbu", "--nai", "pool@pmip.example", "--mac", "02:00:00:00:0a:02", "--seq", 15, "--prefix", "::/0")
    assert pool["status"] == 0 and pool["options"]["prefixes"][0].startswith("2001:db8:300:"), pool

    dereg = pbu(tb, 16, "--prefix", HNP, "--lifetime", 0)
    assert dereg["status"] == 0 and dereg["lifetime"] == 0
    entry = next(b for b in lma.bindings()["bindings"] if b["identifier"] == NAI)
    assert not entry["active"], entry
    cap = Capture(tb, "mn", tb.MN_IF1, f"ip6 proto 41 and src {tb.HA}").start()
    tb.run("cn", ["ping", "-6", "-c", "2", "-i", "0.2", "-W", "1", HOST], check=False)
    assert [l for l in cap.stop() if HOST in l] == [], "de-registered: nothing tunneled"


def test_policy_reloaded_on_sighup(testbed, lma):
    """SIGHUP reads the policy again: a MAG taken out is refused (154) from then on; a file
    that does not parse leaves the previous policy in force."""
    tb = testbed
    assert pbu(tb, 20, "--prefix", HNP)["status"] == 0
    lma.policy_path.write_text("mag 2001:db8:f1::100\nmn mn1@pmip.example mac nonsense prefix pool\n")
    lma.proc.send_signal(1)
    time.sleep(0.5)
    assert "keeping the previous policy" in lma.log_path.read_text(errors="replace")
    assert pbu(tb, 21, "--prefix", HNP)["status"] == 0, "the bad file changed nothing"
    lma.policy_path.write_text(f"mag 2001:db8:f9::1\nmn {NAI} mac {MN_MAC} prefix {HNP}\n")
    lma.proc.send_signal(1)
    time.sleep(0.5)
    assert pbu(tb, 22, "--prefix", HNP)["status"] == 154


# --- --http-listen: /healthz, /readyz, /metrics ------------------------------------------------
LMA_LISTEN = "[::1]:9465"


def http_get(tb, path: str) -> dict:
    """GET from inside the LMA's namespace (the endpoint listens on its loopback)."""
    return harness_http_get(tb, "ha", f"http://{LMA_LISTEN}{path}")


SEND_MH = r"""
import sys
from scapy.all import Ether, IPv6, Raw, sendp
iface, mac, src, dst, kind = sys.argv[1:6]
if kind == "oversized":
    # A 1,400-byte Mobility Header: the data plane punts its first 1,280 bytes, marked truncated.
    mh = bytes([59, 1400 // 8 - 1, 5, 0, 0, 0]) + bytes(1394)
else:
    # A PBU-shaped Mobility Header whose checksum is wrong (RFC 6275 §9.2: silently discarded).
    mh = bytes([59, 1, 5, 0, 0xde, 0xad, 0, 1, 0x82, 0, 0, 15, 0, 0, 0, 0])
sendp(Ether(dst=mac) / IPv6(src=src, dst=dst, nh=135, hlim=64) / Raw(mh), iface=iface, verbose=0)
"""


def send_bad_mh(tb, kind: str) -> None:
    router_mac = next(v.a_mac for v in tb.VETHS if v.b_if == tb.MN_IF1)
    tb.run("mn", [PYTHON, "-c", SEND_MH, tb.MN_IF1, router_mac, tb.COA1, tb.HA, kind], timeout=30)


@pytest.mark.lma_args("--http-listen", LMA_LISTEN)
def test_metrics_health_and_status_follow_real_signaling(testbed, lma):
    """/healthz and /readyz answer once the LMA is up; /metrics (and `mip6 lma status --json`)
    move with what really happens: a registration through the scapy MAG, a refused PBU,
    traffic tunneled to the MAG, a Mobility Header with a bad checksum and one too long to be
    punted whole (both answered by nothing, counted, and the daemon carries on); readiness
    follows the data plane when the program is taken off behind the daemon's back."""
    tb = testbed
    h = http_get(tb, "/healthz")
    assert h["status"] == 200, h
    r = http_get(tb, "/readyz")
    print(r["body"])
    assert r["status"] == 200, f"not ready right after start: {r}"
    for check in ("programs", "maps", "policy", "signaling"):
        assert f"[+]{check} ok" in r["body"], r["body"]
    assert "2 mobile nodes, 1 MAGs" in r["body"], r["body"]

    before = http_get(tb, "/metrics")
    assert before["status"] == 200 and before["type"].startswith("text/plain"), before
    b = before["body"]
    assert metric_labelled(b, "mip6_lma_bindings", state="active") == 0, b
    assert metric_samples(b, "mip6_lma_proxy_binding_updates_total") == {"": 0.0}, b
    assert metric_samples(b, "mip6_lma_policy_mobile_nodes") == {"": 2.0}
    for name in ("mip6_lma_bindings", "mip6_lma_proxy_binding_updates_total", "mip6_lma_dataplane_packets_total",
                 "mip6_lma_pba_latency_seconds", "mip6_lma_punts_rate_limited_total", "mip6_lma_controlplane_events_total"):
        assert f"# HELP {name} " in b and f"# TYPE {name} " in b, name

    # Real signaling and traffic through the scapy MAG and the correspondent.
    assert pbu(tb, 7, "--prefix", HNP, "--lifetime", 60)["status"] == 0
    assert pbu(tb, 8, "--prefix", HNP, nai="nobody@pmip.example")["status"] == 152
    tb.run("cn", ["ping", "-6", "-c", "3", "-i", "0.2", "-W", "1", HOST], check=False)
    send_bad_mh(tb, "checksum")
    send_bad_mh(tb, "oversized")
    time.sleep(0.3)
    assert lma.proc.poll() is None, "the LMA exited on malformed signaling"

    m = http_get(tb, "/metrics")["body"]
    print("\n".join(line for line in m.splitlines() if line.startswith("mip6_lma_") and not line.endswith(" 0")))
    assert metric_labelled(m, "mip6_lma_bindings", state="active") == 1
    assert metric_labelled(m, "mip6_lma_bindings", state="deregistered") == 0
    assert metric_samples(m, "mip6_lma_proxy_binding_updates_total") == {"": 2.0}
    assert metric_labelled(m, "mip6_lma_proxy_binding_acks_total", status="0", result="accepted") == 1
    assert metric_labelled(m, "mip6_lma_proxy_binding_acks_total", status="152", result="rejected") == 1
    assert metric_labelled(m, "mip6_lma_controlplane_events_total", event="registrations") == 1
    assert metric_labelled(m, "mip6_lma_controlplane_events_total", event="punts_malformed") == 1
    assert metric_labelled(m, "mip6_lma_controlplane_events_total", event="send_failures") == 0
    assert metric_labelled(m, "mip6_lma_signaling_dropped_total", reason="malformed_mh") == 1
    assert metric_labelled(m, "mip6_lma_dataplane_packets_total", reason="encap") >= 3
    assert metric_labelled(m, "mip6_lma_dataplane_packets_total", reason="mh_punt") == 4
    assert metric_labelled(m, "mip6_lma_dataplane_packets_total", reason="mh_punt_truncated") == 1
    assert metric_labelled(m, "mip6_lma_punts_rate_limited_total", scope="mag") == 0
    assert metric_samples(m, "mip6_lma_pba_latency_seconds_count") == {"": 2.0}, "one latency per PBA sent"
    assert 0 < metric_samples(m, "mip6_lma_pba_latency_seconds_sum")[""] < 1.0

    # The same figures from the CLI (state file + the pinned counters read now).
    time.sleep(0.4)  # the state file is written at most every 200 ms
    st = lma.status()
    print(json.dumps({k: v for k, v in st.items() if k != "dataplane"}))
    assert st["running"] and st["bindings"] == 1 and st["activeBindings"] == 1, st
    assert st["proxyBindingUpdates"] == 2 and st["acksByStatus"] == {"0": 1, "152": 1}, st
    assert st["events"]["registrations"] == 1 and st["events"]["punts_malformed"] == 1, st
    assert st["dropped"] == {"malformed_mh": 1}, st
    assert st["dataplaneLive"] and st["dataplane"]["mh_punt"] == 4 and st["dataplane"]["encap"] >= 3, st
    text = lma.cli("status").stdout
    assert "1 active" in text and "pba_status_152" in text and "mh_punt_truncated" in text, text

    # Readiness follows the data plane; liveness does not.
    tb.run("ha", ["tc", "filter", "del", "dev", tb.HA_IF, "ingress"])
    r = http_get(tb, "/readyz")
    print(r["body"])
    assert r["status"] == 503 and "[-]programs failed" in r["body"] and "[+]policy ok" in r["body"], r
    assert http_get(tb, "/healthz")["status"] == 200, "liveness must not follow the data plane"


def test_bad_flags_are_refused(testbed, mip6_bin, tmp_path):
    """A bad --http-listen or --bpffs is refused before anything is attached, with the flag named."""
    tb = testbed
    policy = tmp_path / "p.policy"
    policy.write_text(f"mag {tb.COA1}\n")
    base = [str(mip6_bin), "lma", "--interface", tb.HA_IF, "--address", tb.HA, "--policy", str(policy)]
    for extra, needle in ((["--http-listen", "nowhere"], "--http-listen"), (["--bpffs", "relative/dir"], "--bpffs"),
                          (["--punt-rate", "-1"], "--punt-rate")):
        cp = tb.run("ha", base + extra, check=False)
        assert cp.returncode != 0 and needle in cp.stderr, (extra, cp.returncode, cp.stderr)


def test_binding_list_is_written_on_request_and_at_shutdown(testbed, lma):
    """`mip6 lma bindings` asks the running daemon for its list (SIGUSR1) and gets one written
    for that request; after a stop, the list the daemon wrote at shutdown, said to be old."""
    tb = testbed
    assert pbu(tb, 30, "--prefix", HNP)["status"] == 0
    listing = lma.bindings()
    assert listing["fresh"] and listing["running"], {k: v for k, v in listing.items() if k != "dataplane"}
    assert [b["identifier"] for b in listing["bindings"]] == [NAI], listing["bindings"]
    again = lma.bindings()
    assert again["fresh"] and again["takenAt"] >= listing["takenAt"]
    assert lma.alive(), "SIGUSR1 ended the daemon"
    assert lma.stop() == 0
    cp = lma.cli("bindings", "--json", "--wait", "1")
    after = json.loads(cp.stdout)
    assert not after["fresh"] and not after["running"], after
    assert [b["identifier"] for b in after["bindings"]] == [NAI] and "is not running" in cp.stderr, cp.stderr


COLOCATED_LMA = "2001:db8:5::b"        # on the home agent's interface, outside its home prefix


def test_colocated_with_the_home_agent(testbed, daemon, mobile_node, mip6_bin, tmp_path):
    """RFC 6612 co-location: `mip6 ha` and `mip6 lma` on the same node and interface, each with
    its own address, prefixes and binding cache. The home agent's TC program runs first and
    passes what is not its own on (TC_ACT_UNSPEC), so the LMA's sees the PBUs and its tunnel;
    a mobile node registered with the home agent and a proxy binding at the LMA both carry
    traffic at the same time."""
    tb = testbed
    tb.run("ha", ["ip", "-6", "address", "replace", f"{COLOCATED_LMA}/128", "dev", tb.HA_IF, "nodad"])
    tb.run("rtr", ["ip", "-6", "route", "replace", f"{COLOCATED_LMA}/128", "via", tb.HA, "dev", tb.HOME_BRIDGE])
    tb.run("rtr", ["ip", "-6", "route", "replace", HNP_ROUTE, "via", tb.HA, "dev", tb.HOME_BRIDGE])
    policy = tmp_path / "colocated.policy"
    policy.write_text(f"mag {tb.COA1}\nmn {NAI} mac {MN_MAC} prefix {HNP}\n")
    lma = LocalMobilityAnchor(tb, mip6_bin, tmp_path / "mip6-lma-colocated.log", policy, address=COLOCATED_LMA)
    try:
        lma.start()
        mn = mobile_node()
        mn.wait_registered(tb.COA1, timeout=8)
        ba = pbu(tb, 21, "--prefix", HNP, lma=COLOCATED_LMA)
        assert ba["status"] == 0 and ba["flags"] & 0x20, ba
        # Host-based mobility through the home agent...
        received, _ = ping(tb, "cn", tb.HOA, count=3)
        assert received == 3, "CN -> home address through the home agent"
        # ...and the proxy binding through the LMA, at the same time on the same interface.
        cap = Capture(tb, "mn", tb.MN_IF1, f"ip6 proto 41 and src {COLOCATED_LMA} and dst {tb.COA1}").start()
        tb.run("cn", ["ping", "-6", "-c", "3", "-i", "0.2", "-W", "1", HOST], check=False)
        lines = cap.stop()
        assert len([l for l in lines if HOST in l and "echo request" in l]) == 3, lines
        b = lma.bindings()
        assert [x["prefixes"] for x in b["bindings"]] == [[HNP]] and b["dataplane"]["encap"] >= 3, b
        assert daemon.binding(tb.HOA) is not None, "the home agent kept its own binding"
    finally:
        lma.stop()
        lma.clear_state()
        tb.run("rtr", ["ip", "-6", "route", "del", HNP_ROUTE], check=False)
        tb.run("rtr", ["ip", "-6", "route", "del", f"{COLOCATED_LMA}/128"], check=False)
        tb.run("ha", ["ip", "-6", "address", "del", f"{COLOCATED_LMA}/128", "dev", tb.HA_IF], check=False)
