"""End-to-end tests of `mip6 mag` with `mip6 lma` (Proxy Mobile IPv6, RFC 5213) and an
unmodified Linux host (testbed/pmip.py): the host attaches to MAG1, forms its address from
the RA that follows the PBA, talks to the correspondent through the LMA, moves to MAG2 and
back with traffic flowing both ways, and keeps its address and default router throughout.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import time

import pytest

from conftest import NOT_ROOT, TAG, mip6_binary
from testbed.harness import PYTHON, PcapCapture, UdpStream, http_get, metric_labelled, wait_for
from testbed.pmip import HNP, LMA, MAG, MAG_LINK_LOCAL, MAG_MAC, MN_MAC, NAI, PmipTestbed
from testbed.stream import summary

PMIP_TAG = (TAG[:9] + "pm")[:12]
LIFETIME = 12       # short, so that a refresh comes within the LMA restart test (75 %: 9 s)


class Gateway:
    """`mip6 mag` in `<tag>-magN`, and its CLI."""

    def __init__(self, tb: PmipTestbed, n: int, binary, logs):
        self.tb, self.n, self.binary = tb, n, binary
        self.log_path = logs / f"mip6-mag{n}.log"
        self.proc = None

    def start(self) -> "Gateway":
        self.proc = self.tb.start_mag(self.binary, self.n, self.log_path, "--lifetime", str(LIFETIME),
                                      "--http-listen", "[::1]:9466", "--log-level", "debug")
        return self

    def stop(self, sig=None):
        if self.proc:
            PmipTestbed.stop(self.proc, *([sig] if sig else []))

    def status(self) -> dict:
        return self.tb.mag_status(self.binary, self.n)

    def entry(self) -> dict | None:
        entries = [e for e in self.status()["status"]["entries"] if e["identifier"] == NAI]
        return entries[0] if entries else None

    def registered(self) -> bool:
        e = self.entry()
        return bool(e and e["state"] == "registered" and e["installed"])


def start_lma(tb, binary, logs):
    return tb.start_lma(binary, logs / f"mip6-lma-{time.monotonic_ns()}.log", "--log-level", "debug")


@pytest.fixture(scope="module")
def pmip(tmp_path_factory):
    if __import__("os").geteuid() != 0:
        pytest.skip(NOT_ROOT)
    binary = mip6_binary()
    logs = tmp_path_factory.mktemp("pmip")
    tb = PmipTestbed(PMIP_TAG)
    tb.up()
    tb.policy_path = logs / "pmip.policy"
    tb.policy_path.write_text(tb.policy())
    state = {"tb": tb, "binary": binary, "logs": logs}
    try:
        state["lma"] = start_lma(tb, binary, logs)
        state["mags"] = {n: Gateway(tb, n, binary, logs).start() for n in (1, 2)}
        yield state
    finally:
        for g in state.get("mags", {}).values():
            g.stop()
        if "lma" in state:
            PmipTestbed.stop(state["lma"])
        for p in sorted(logs.glob("*.log")):
            print(f"- {p.name} -\n{p.read_text(errors='replace')[-4000:]}")
        tb.down()


def lma_bindings(pmip) -> list[dict]:
    return pmip["tb"].lma_bindings(pmip["binary"])


def attach_first(pmip, mag: int = 1) -> str:
    """The host on MAG `mag`, registered, with a usable address in its prefix."""
    tb = pmip["tb"]
    if tb.attached_to != mag:
        tb.move_to(mag)
    assert wait_for(pmip["mags"][mag].registered, 10), pmip["mags"][mag].status()
    return tb.wait_mn_address()


def test_first_attach_ra_after_pba_and_traffic_through_the_lma(pmip):
    """Carrier up on MAG1's access link: MAG1 solicits, learns the host's MAC, registers it
    with the LMA, then sends the RA. The host forms an address in its prefix from that RA,
    takes fe80::1 as its router with the tunnel's MTU, and reaches the correspondent through
    the LMA both ways."""
    tb = pmip["tb"]
    cap = PcapCapture(tb, "rtr", "r-lma", "ip6 proto 135", pmip["logs"] / "pbu.pcap").start()
    t0 = time.monotonic()
    tb.move_to(1)
    address = attach_first(pmip, 1)
    print(f"host address {address} after {time.monotonic() - t0:.2f} s")
    assert address.startswith("2001:db8:100:1:")
    # RFC 5213 §6.9.3/§6.8: the router is the shared link-local, with the shared MAC.
    routes = tb.run("mn", ["ip", "-6", "route", "show", "default"]).stdout
    assert f"via {MAG_LINK_LOCAL} dev mn0" in routes, routes
    neigh = tb.run("mn", ["ip", "-6", "neigh", "show", MAG_LINK_LOCAL, "dev", "mn0"]).stdout
    assert MAG_MAC in neigh, neigh
    # The RA's MTU option: the access link's 1500 less the tunnel's 40.
    assert tb.run("mn", ["cat", "/proc/sys/net/ipv6/conf/mn0/mtu"]).stdout.strip() == "1460"

    st = pmip["mags"][1].status()
    assert st["fresh"] and st["running"], {k: v for k, v in st.items() if k != "dataplane"}
    assert [e["identifier"] for e in st["status"]["entries"]] == [NAI] and st["nodes"] == {"registered": 1}, st
    e = pmip["mags"][1].entry()
    assert e["mac"] == MN_MAC and e["homeNetworkPrefixes"] == [HNP] and e["lma"] == LMA, e
    b = lma_bindings(pmip)
    assert len(b) == 1 and b[0]["identifier"] == NAI and b[0]["mag"] == MAG[1] and b[0]["active"], b
    assert b[0]["linkLayerIdentifier"] == MN_MAC, b

    ping = tb.run("mn", ["ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", tb.CN], check=False)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    ping = tb.run("cn", ["ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", address], check=False)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    dp = pmip["mags"][1].status()["dataplane"]
    assert dp["encap"] >= 6 and dp["decap"] >= 6, dp

    # Our PBU as tshark reads it: A|P, no H, the options of RFC 5213 §6.9.1.5.
    packets = cap.stop()
    pbus = [p for p in packets if p[6] == 135 and p[42] == 5]        # MH type 5 (BU) after the IPv6 header
    assert pbus, f"no PBU captured ({len(packets)} MH packets)"
    from scapy.all import Ether, IPv6 as ScapyIPv6, wrpcap
    path = pmip["logs"] / "pbu-decoded.pcap"
    wrpcap(str(path), [Ether(src="02:00:00:00:b1:01", dst="02:00:00:00:0a:01") / ScapyIPv6(pbus[0])])
    fields = ["mip6.bu.a_flag", "mip6.bu.h_flag", "mip6.bu.p_flag", "mip6.bu.lifetime", "mip6.mnid.identifier",
              "mip6.nemo.mnp.mnp", "mip6.nemo.mnp.pfl", "mip6.hi", "mip6.att", "mip6.mnlli.lli", "mip6.timestamp_tmp"]
    args = ["tshark", "-r", str(path), "-T", "fields", "-E", "separator=|", "-e", "_ws.expert", "-e", "_ws.malformed"]
    for f in fields:
        args += ["-e", f]
    cp = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0, cp.stderr
    values = cp.stdout.rstrip("\n").split("|")
    assert values[:2] == ["", ""], f"tshark flags our PBU: {values[:2]}"
    t = dict(zip(fields, values[2:]))
    print(f"tshark: {t}")
    assert (t["mip6.bu.a_flag"], t["mip6.bu.h_flag"], t["mip6.bu.p_flag"]) == ("1", "0", "1"), t
    assert t["mip6.bu.lifetime"] == str(LIFETIME // 4) and t["mip6.mnid.identifier"] == NAI, t      # in 4 s units
    assert t["mip6.nemo.mnp.mnp"] == "2001:db8:100:1::" and t["mip6.nemo.mnp.pfl"] == "64", t
    assert t["mip6.hi"] == "4" and t["mip6.att"] == "3", t            # handoff state unknown, IEEE 802.3
    assert t["mip6.mnlli.lli"].replace(":", "") == MN_MAC.replace(":", "") and t["mip6.timestamp_tmp"], t


def move_with_traffic(pmip, to: int, settle: float = 1.0) -> tuple[dict, dict, dict]:
    """Streams of 1000 datagrams/s both ways while the host moves to MAG `to`: returns the
    downlink and uplink analyses and the new MAG's status entry."""
    tb = pmip["tb"]
    address = tb.wait_mn_address()
    down = UdpStream(tb, dst=address, rate=1000, src_node="cn", dst_node="mn", port=5601).start()
    up = UdpStream(tb, dst=tb.CN, rate=1000, src_node="mn", dst_node="cn", port=5602, src=address).start()
    time.sleep(settle)
    down.mark("move")
    up.events["move"] = down.events["move"]
    tb.move_to(to)
    assert wait_for(pmip["mags"][to].registered, 5), pmip["mags"][to].status()
    time.sleep(settle)
    d, u = down.stop(), up.stop()
    return d, u, pmip["mags"][to].entry()


def test_handoff_between_mags_keeps_the_address_with_traffic_both_ways(pmip):
    """MAG1 -> MAG2 -> MAG1 with 1000 datagrams/s each way: the host keeps its address and
    router (no RS, no DAD: its carrier never dropped), the LMA moves the prefix, the outage
    is what attach detection and one PBU/PBA cost, and the old MAG de-registers."""
    tb = pmip["tb"]
    address = attach_first(pmip, 1)
    outages = []
    for to in (2, 1):
        before = pmip["mags"][to].status()["status"]["counters"]
        d, u, entry = move_with_traffic(pmip, to)
        print(f"to MAG{to} downlink: {summary(d)}")
        print(f"to MAG{to} uplink:   {summary(u)}")
        print(f"MAG{to} registration took {pmip['mags'][to].status()['status']['counters'].get('lastRegistrationMs')} ms")
        assert tb.wait_mn_address() == address, "the host kept its address"
        assert entry["homeNetworkPrefixes"] == [HNP], entry
        b = lma_bindings(pmip)
        assert len(b) == 1 and b[0]["mag"] == MAG[to] and b[0]["active"], b
        # Traffic came back on both directions, with a bounded interruption (CI machines are
        # slow and shared: the tight figures are perf/pmip_handover.py's).
        for name, a in (("downlink", d), ("uplink", u)):
            assert a["received"] > 1500 and a["outage_ms"] is not None and a["outage_ms"] < 1000, (name, a)
        outages.append(max(d["outage_ms"], u["outage_ms"]))
        after = pmip["mags"][to].status()["status"]["counters"]
        assert after["registrations"] == before["registrations"] + 1, (before, after)
    print(f"outages (worse direction) {outages} ms, median {statistics.median(outages)} ms")
    # The MAG the host left de-registered it (carrier down on its access link).
    assert wait_for(lambda: pmip["mags"][2].entry() is None, 5), pmip["mags"][2].status()
    assert pmip["mags"][2].status()["status"]["counters"]["detaches"] >= 1


def test_unknown_host_is_not_served(pmip):
    """A MAC the policy does not know (RFC 5213 §6.5) gets no PBU and no RA: its frames are
    counted and dropped, and the known host's service is untouched."""
    tb = pmip["tb"]
    attach_first(pmip, 1)
    before = pmip["mags"][1].status()
    # Small frames from one unknown MAC, and one full-size frame from another: the access
    # program punts only a frame's first 256 bytes, which is an attach trigger all the same.
    script = ("from scapy.all import Ether, IPv6, UDP, Raw, sendp\n"
              "def frame(mac, n): return (Ether(src=mac, dst='02:00:5e:00:53:01') / IPv6(src='2001:db8:100:99::bad', "
              "dst='2001:db8:c::2') / UDP(sport=1, dport=9) / Raw(b'x' * n))\n"
              "sendp(frame('02:00:00:00:bb:01', 8), iface='br-air', count=3, inter=0.05, verbose=False)\n"
              "sendp(frame('02:00:00:00:bb:02', 1400), iface='br-air', verbose=False)\n")
    tb.run("air", [PYTHON, "-c", script])
    time.sleep(0.3)
    after = pmip["mags"][1].status()
    c0, c1 = before["status"]["counters"], after["status"]["counters"]
    assert c1["unknownMobileNodes"] == c0["unknownMobileNodes"] + 2, (c0, c1)
    assert after["daemon"]["puntsMalformed"] == before["daemon"]["puntsMalformed"], "a head of a packet is no malformed punt"
    assert c1["pbusSent"] == c0["pbusSent"], "no PBU for an unknown node"
    assert after["dataplane"]["drop_unknown_mac"] >= before["dataplane"].get("drop_unknown_mac", 0) + 4, after["dataplane"]
    assert [e["identifier"] for e in after["status"]["entries"]] == [NAI]


def test_mag_killed_and_restarted_registers_the_host_again(pmip):
    """SIGKILL of the serving MAG and a restart: the new daemon starts with an empty Binding
    Update List and forgets the old forwarding; the host's next frame is an attach trigger,
    so it is registered again without doing anything itself, and keeps its address."""
    tb = pmip["tb"]
    address = attach_first(pmip, 1)
    g = pmip["mags"][1]
    g.stop(__import__("signal").SIGKILL)
    old_pid = g.proc.pid
    g.start()
    # Nothing is inherited: whatever the new daemon lists, it attached itself since its start
    # (the host's own frames, ND or a stream's tail, may already have been triggers).
    st = g.status()
    assert st["fresh"] and st["pid"] != old_pid, {k: v for k, v in st.items() if k != "dataplane"}
    assert len(st["status"]["entries"]) <= st["status"]["counters"]["attaches"], st["status"]
    # The host's own next frame is the trigger: one ping.
    t0 = time.monotonic()
    tb.run("mn", ["ping", "-6", "-c", "1", "-W", "1", tb.CN], check=False)
    assert wait_for(g.registered, 5), g.status()
    print(f"registered again {(time.monotonic() - t0) * 1000:.0f} ms after the host's first frame")
    assert tb.wait_mn_address() == address
    ping = tb.run("cn", ["ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", address], check=False)
    assert ping.returncode == 0, ping.stdout


def test_mag_restarted_twice_in_a_second_registers_its_quiet_host(pmip):
    """Two restarts less than a second apart: the first one's solicitation made the host's
    answer an attach trigger, so the data plane's one-trigger-a-second limit for its MAC was
    still running at the second. The second daemon forgets that limit with the rest of the
    pinned node state: its own solicitation's answer registers the host, which sends
    nothing else."""
    tb = pmip["tb"]
    attach_first(pmip, 1)
    g = pmip["mags"][1]
    g.stop(__import__("signal").SIGKILL)
    g.start()
    assert wait_for(g.registered, 5), g.status()
    t0 = time.monotonic()
    g.stop(__import__("signal").SIGKILL)
    g.start()
    assert wait_for(g.registered, 3), g.status()
    print(f"registered again {(time.monotonic() - t0) * 1000:.0f} ms after the second kill")


def test_hop_limit_1_gets_time_exceeded_from_the_mag(pmip):
    """The MAG is the host's first-hop router: a packet with hop limit 1 is answered with Time
    Exceeded from the shared link-local address (a traceroute shows the MAG), not tunneled."""
    tb = pmip["tb"]
    attach_first(pmip, 1)
    before = pmip["mags"][1].status()["dataplane"].get("time_exceeded", 0)
    out = tb.run("mn", ["ping", "-6", "-c", "1", "-t", "1", "-W", "2", tb.CN], check=False).stdout
    assert f"From {MAG_LINK_LOCAL}" in out and "Time exceeded" in out, out
    assert pmip["mags"][1].status()["dataplane"].get("time_exceeded", 0) == before + 1


def test_bad_flags_exit_nonzero_with_a_reason(pmip):
    tb, binary = pmip["tb"], str(pmip["binary"])
    for args, says in ((["--core", "m1-core", "--proxy-coa", MAG[1], "--lma", LMA, "--policy", "/nonexistent"], "--access"),
                       (["--access", "m1-acc", "--core", "m1-core", "--proxy-coa", "fe80::5", "--lma", LMA, "--policy", "x"], "--proxy-coa"),
                       (["--access", "m1-acc", "--core", "m1-core", "--proxy-coa", MAG[1], "--lma", LMA, "--policy", "x",
                         "--mac", "01:00:5e:00:00:01"], "--mac")):
        cp = tb.run("mag1", [binary, "mag", *args], check=False)
        assert cp.returncode != 0 and says in cp.stderr, (args, cp.returncode, cp.stderr)
    cp = tb.run("mag1", [binary, "mag", "--access", "nosuch0", "--core", "m1-core", "--proxy-coa", MAG[1], "--lma", LMA,
                         "--policy", str(tb.policy_path), "--bpffs", "/sys/fs/bpf/mip6-magx", "--state-dir", "/run/mip6-magx"],
                check=False, timeout=20)
    assert cp.returncode == 1 and "nosuch0" in cp.stderr, cp.stderr


def test_metrics_and_probes(pmip):
    """`--http-listen`: /readyz says ready with both programs attached; /metrics shows the host
    registered, the registration in the latency histogram, and the tunnel's packets; removing
    our filter from the core interface behind the daemon's back makes /readyz fail."""
    tb = pmip["tb"]
    address = attach_first(pmip, 1)
    tb.run("cn", ["ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", address], check=False)

    def get(path: str) -> dict:
        return http_get(tb, "mag1", f"http://[::1]:9466{path}")

    ready = get("/readyz")
    assert ready["status"] == 200, ready
    assert get("/healthz")["status"] == 200
    m = get("/metrics")
    assert m["status"] == 200 and m["type"].startswith("text/plain"), m
    text = m["body"]
    assert metric_labelled(text, "mip6_mag_nodes", state="registered") == 1, text
    assert metric_labelled(text, "mip6_mag_controlplane_events_total", event="registrations") >= 1
    assert metric_labelled(text, "mip6_mag_dataplane_packets_total", reason="decap") >= 3
    assert metric_labelled(text, "mip6_mag_registration_latency_seconds_count") >= 1
    assert metric_labelled(text, "mip6_mag_policy_mobile_nodes") == 2
    try:
        tb.run("mag1", ["tc", "filter", "del", "dev", "m1-core", "ingress", "pref", str(0x13), "handle", "0x6d67", "bpf"])
        nope = get("/readyz")
        assert nope["status"] == 503 and "m1-core" in nope["body"], nope
        # A hook with no filter is an answer, not a problem: libbpf's kernel message for it
        # (and for a clsact that exists at start) is not a warning in our log.
        warned = [l for l in pmip["mags"][1].log_path.read_text(errors="replace").splitlines() if " warning " in l and "libbpf" in l]
        assert warned == [], warned
    finally:
        g = pmip["mags"][1]
        g.stop()
        g.start()


def test_lma_restart_keeps_traffic_and_takes_the_binding_back(pmip):
    """`mip6 lma` stopped and started again: its pinned entries carry the host's traffic
    meanwhile (each expires on its own), and the MAG's next refresh gives the new daemon the
    binding back, with the same prefix, without the host doing anything."""
    tb = pmip["tb"]
    address = attach_first(pmip, 1)
    PmipTestbed.stop(pmip["lma"])
    pmip["lma"] = start_lma(tb, pmip["binary"], pmip["logs"])
    assert lma_bindings(pmip) == [], "a restarted LMA starts with an empty cache"
    ping = tb.run("cn", ["ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", address], check=False)
    assert ping.returncode == 0, "the pinned entry forwards while the cache is empty: " + ping.stdout
    assert wait_for(lambda: [b["prefixes"] for b in lma_bindings(pmip)] == [[HNP]], LIFETIME), lma_bindings(pmip)
    b = lma_bindings(pmip)[0]
    assert b["mag"] == MAG[1] and b["active"], b
    assert pmip["mags"][1].registered()


def test_node_list_is_written_on_request_and_at_shutdown(pmip):
    """mag.json holds counters and counts by state only; `mip6 mag status` asks the running
    daemon for its Binding Update List (SIGUSR1) and lists the node from a list written for
    that request; after a stop, from the list the daemon wrote at shutdown, said to be old."""
    tb = pmip["tb"]
    attach_first(pmip, 1)
    g = pmip["mags"][1]

    def state() -> dict:
        return json.loads(tb.run("mag1", ["cat", f"/run/mip6-mag1-{tb.tag}/mag.json"]).stdout)
    # Written at most every 200 ms after a change: counts by state, no entries.
    assert wait_for(lambda: state()["nodes"] == {"registered": 1}, 2), state()
    assert "entries" not in json.dumps(state()), state()
    first = g.status()
    assert first["fresh"] and first["running"]
    assert [e["identifier"] for e in first["status"]["entries"]] == [NAI], first["status"]
    again = g.status()
    assert again["fresh"] and again["takenAt"] >= first["takenAt"]
    assert g.proc.poll() is None, "SIGUSR1 ended the daemon"
    g.stop()
    try:
        cp = tb.run("mag1", tb.mag_cli(pmip["binary"], 1, "status", "--json", "--wait", "1"), check=False)
        after = json.loads(cp.stdout)
        assert cp.returncode == 0 and not after["fresh"] and not after["running"], (cp.stderr, after)
        assert [e["identifier"] for e in after["status"]["entries"]] == [NAI] and "is not running" in cp.stderr, cp.stderr
    finally:
        g.start()
