"""End-to-end: a path MTU between 1280 and 1319 from the home agent to the care-of address
(RFC 2473 §7.1). A packet of 1280 bytes or less no longer fits the tunnel with its 40 bytes,
and its sender may not be asked for less than 1280: the real `mip6 ha` sends such packets as
fragmented tunnel packets (through its tunnel socket), the real `mip6 mn` takes them after its
kernel reassembled them. Larger packets still get Packet Too Big 1280.

The HA learns the path MTU the way it would on the Internet: the router answers the first
tunnel packet that does not fit with a Packet Too Big, which the HA's tunnel socket hands to
its kernel. Figures are printed: run with -s to see them.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

from conftest import counter_delta, ping, wait_for
from testbed.harness import PcapCapture, UdpStream, counter

PATH_MTU = 1300
F1_PREFIX = "2001:db8:f1::/64"


@contextmanager
def path_mtu_to_care_of_link(tb, mtu: int, link_too: bool = False):
    """The router forwards to the MN's first foreign link (mn-f1, the care-of address's) through
    a route with an MTU of `mtu`: a path HA -> care-of address whose MTU is below 1280 + 40,
    while the link itself (and so the MN's reverse tunnel) keeps 1500. With `link_too` the link
    itself has that MTU, both ends. Afterwards everything is as it was, the path MTUs the
    home agent and the correspondent learned included."""
    route = f"ip -6 route replace {F1_PREFIX} dev r-f1 proto kernel metric 256"
    try:
        if link_too:
            tb.run("rtr", f"ip link set dev r-f1 mtu {mtu}")
            tb.run("mn", f"ip link set dev {tb.MN_IF1} mtu {mtu}")
        else:
            tb.run("rtr", f"{route} mtu {mtu}")
        yield
    finally:
        tb.run("rtr", f"{route}; ip link set dev r-f1 mtu 1500", check=False)
        tb.run("mn", f"ip link set dev {tb.MN_IF1} mtu 1500", check=False)
        for node in ("ha", "cn", "mn"):
            tb.run(node, "ip -6 route flush cache", check=False)


def learn_path_mtu(tb, daemon, size: int) -> None:
    """Pings of `size` bytes of ICMPv6 data until the home agent's kernel has taken the path MTU
    from the router's Packet Too Big (the first ones die at the router)."""
    def learned():
        ping(tb, "cn", tb.HOA, count=1, interval=0.2, wait=0.5, echo=False, size=size)
        return daemon.stats()["controlplane"].get("tunnelPacketTooBig", 0) > 0
    assert wait_for(learned, 10, interval=0.3), "the home agent never learned the path MTU to the care-of address"


def settled(daemon, mn, ha0: dict, mn0: dict, at_least: int, timeout: float = 3.0) -> tuple[dict, dict]:
    """The home agent's stats and the mobile node's status once both daemons have counted at
    least `at_least` fragmented tunnel packets since `ha0`/`mn0` (their state files are written
    a moment after the fact), or as they are after `timeout`."""
    last: tuple[dict, dict] = ({}, {})

    def check():
        nonlocal last
        last = (daemon.stats(), mn.status())
        sent = last[0]["controlplane"]["tunnelFragmented"] - ha0["controlplane"]["tunnelFragmented"]
        delivered = counter(last[1], "reassembledTunnel.delivered") - counter(mn0, "reassembledTunnel.delivered")
        return sent >= at_least and delivered >= at_least

    wait_for(check, timeout, interval=0.2)
    return last


def fragments(packets: list[bytes], src: str) -> list[bytes]:
    """The captured IPv6 packets from `src` with a Fragment header right after the IPv6 header."""
    import ipaddress
    s = ipaddress.IPv6Address(src).packed
    return [p for p in packets if len(p) > 48 and p[6] == 44 and p[8:24] == s]


def parameter_problems(packets: list[bytes], src: str) -> list[bytes]:
    import ipaddress
    s = ipaddress.IPv6Address(src).packed
    return [p for p in packets if len(p) > 40 and p[6] == 58 and p[40] == 4 and p[8:24] == s]


def test_packets_of_1280_or_less_cross_a_1300_byte_path_in_fragmented_tunnel_packets(testbed, daemon, mobile_node, tmp_path):
    tb = testbed
    mn = mobile_node(interfaces=(tb.MN_IF1,))
    mn.wait_registered(tb.COA1, timeout=8)
    drops0 = tb.mn_kernel_drops()
    with path_mtu_to_care_of_link(tb, PATH_MTU):
        learn_path_mtu(tb, daemon, 1232)
        ha0, mn0 = daemon.stats(), mn.status()
        cap = PcapCapture(tb, "mn", tb.MN_IF1, "ip6", tmp_path / "mn-f1.pcap").start()

        # ICMPv6 data + 48 = the packet: 1280 and 1268 do not fit 1300 with 40 more, 1260 does.
        full, _ = ping(tb, "cn", tb.HOA, count=10, interval=0.1, size=1232)
        mid, _ = ping(tb, "cn", tb.HOA, count=5, interval=0.1, size=1220)
        fits, _ = ping(tb, "cn", tb.HOA, count=5, interval=0.1, size=1212)
        # The daemons write their counters a moment later (state files).
        ha1, mn1 = settled(daemon, mn, ha0, mn0, 15)

        # A 1298-byte UDP datagram may be asked down to 1280: the correspondent's kernel then
        # fragments it, and the 1280-byte first fragment takes the fragmented tunnel.
        stream = UdpStream(tb, dst=tb.HOA, rate=20, size=1250).start()
        time.sleep(1.5)
        udp = stream.stop(drain=0.5)
        ha2, mn2 = settled(daemon, mn, ha1, mn1, udp["received"])
        packets = cap.stop()

    punts = counter_delta(ha0, ha1, r"dataplane\.encap_frag_punt$").get("dataplane.encap_frag_punt", 0)
    sent = ha1["controlplane"]["tunnelFragmented"] - ha0["controlplane"]["tunnelFragmented"]
    delivered = counter(mn1, "reassembledTunnel.delivered") - counter(mn0, "reassembledTunnel.delivered")
    passed = counter(mn1, "dataplane.pass_tunnel_fragment") - counter(mn0, "dataplane.pass_tunnel_fragment")
    frags = fragments(packets, tb.HA)
    print(f"pings through a {PATH_MTU}-byte path: 1280 bytes {full}/10, 1268 bytes {mid}/5, 1260 bytes {fits}/5; "
          f"HA punted {punts}, sent {sent} fragmented; MN passed {passed} fragments, delivered {delivered}; "
          f"fragment sizes on {tb.MN_IF1}: {sorted({len(p) for p in frags})}")
    udp_too_big = counter_delta(ha1, ha2, r"dataplane\.encap_too_big$").get("dataplane.encap_too_big", 0)
    udp_punts = counter_delta(ha1, ha2, r"dataplane\.encap_frag_punt$").get("dataplane.encap_frag_punt", 0)
    print(f"UDP 1298-byte datagrams: {udp['sent']} sent, {udp['received']} received; HA Packet Too Big "
          f"+{udp_too_big}, punted +{udp_punts}; MN {mn2.get('reassembledTunnel')}")
    print(f"home agent: {ha2['controlplane'].get('tunnelFragmentedDrops')}, Packet Too Big about tunnel packets "
          f"{ha2['controlplane']['tunnelPacketTooBig']}")

    assert full == 10 and mid == 5 and fits == 5, "every ping answered (the replies have room in the reverse tunnel)"
    # Each of the 15 requests of 1261..1280 bytes: punted by the data plane, sent by the daemon,
    # two fragments on the wire, reassembled and delivered by the mobile node. The 1260-byte
    # ones were tunneled whole.
    assert punts == 15 and sent == 15, f"HA: {punts} punted, {sent} sent as fragmented tunnel packets"
    assert passed == 30 and delivered == 15, f"MN: {passed} fragments to the kernel, {delivered} delivered"
    assert frags and all(len(p) <= PATH_MTU for p in frags), f"fragments within the path MTU: {[len(p) for p in frags]}"
    assert all(p[40] == 41 for p in frags), "fragments of tunnel packets (next header 41)"
    assert not parameter_problems(packets, tb.COA1), "the MN's kernel answered a tunnel packet with Parameter Problem"
    assert tb.mn_kernel_drops() == drops0

    # The first datagram meets the Packet Too Big (and the last may still be on its way when the
    # sender stops); none after that is lost.
    assert udp["loss_runs"] == 0 and udp["received"] >= udp["sent"] - 3, f"UDP: {udp}"
    assert udp_too_big >= 1, "the 1298-byte datagram was asked down to 1280"
    assert counter(mn2, "reassembledTunnel.delivered") - counter(mn1, "reassembledTunnel.delivered") >= udp["received"], \
        "each datagram's 1280-byte first fragment came through the fragmented tunnel"
    cp = ha2["controlplane"]
    assert not cp.get("tunnelFragmentedDrops"), f"nothing punted was dropped: {cp.get('tunnelFragmentedDrops')}"
    assert cp["tunnelPacketTooBig"] >= 1


def test_a_1300_byte_care_of_link_both_ways(testbed, daemon, mobile_node):
    """The care-of link itself has an MTU of 1300 (both ends): what the home agent sends arrives
    as above. The mobile node's own reverse tunnel over that link is a separate matter: its
    egress program answers a packet of 1261..1280 bytes from the home address with a Packet Too
    Big of 1280 to its own stack, which cannot go lower, so such packets (here: the echo replies)
    do not leave. Printed, not asserted: RFC 2473 §7.1(b) on the mobile node's side is not done."""
    tb = testbed
    mn = mobile_node(interfaces=(tb.MN_IF1,))
    mn.wait_registered(tb.COA1, timeout=8)
    with path_mtu_to_care_of_link(tb, PATH_MTU, link_too=True):
        learn_path_mtu(tb, daemon, 1232)
        mn0 = mn.status()
        ha0 = daemon.stats()
        stream = UdpStream(tb, dst=tb.HOA, rate=20, size=1232 - 8).start()   # 1280-byte packets to the MN
        time.sleep(1.0)
        udp = stream.stop(drain=0.5)
        replies, _ = ping(tb, "cn", tb.HOA, count=3, interval=0.2, size=1220)
        _, mn1 = settled(daemon, mn, ha0, mn0, udp["received"] + 3)
    delivered = counter(mn1, "reassembledTunnel.delivered") - counter(mn0, "reassembledTunnel.delivered")
    too_big = counter(mn1, "dataplane.encap_too_big") - counter(mn0, "dataplane.encap_too_big")
    print(f"1300-byte care-of link: UDP 1280-byte packets {udp['received']}/{udp['sent']} received "
          f"({delivered} through the fragmented tunnel); 1268-byte pings {replies}/3 answered, "
          f"MN reverse tunnel Packet Too Big to its own stack +{too_big}")
    assert udp["received"] >= udp["sent"] - 1 and delivered >= udp["received"], \
        f"to the MN: {udp['received']}/{udp['sent']}, {delivered} through the fragmented tunnel"


def udp_checksum_errors(tb) -> int:
    """Udp6InCsumErrors of the mobile node's kernel."""
    for line in tb.run("mn", "cat /proc/net/snmp6").stdout.splitlines():
        if line.startswith("Udp6InCsumErrors"):
            return int(line.split()[1])
    return 0


def test_a_checksum_left_to_offload_is_finished_by_the_home_agent(testbed, daemon, mobile_node):
    """Under TC an skb from a veth peer may still have its UDP checksum left to offload
    (CHECKSUM_PARTIAL); the data plane copies its bytes as they are, and the daemon must finish
    the checksum as the kernel would before the bytes leave in a fragmented tunnel packet. The
    testbed computes checksums before the home link (tx offload off there, for native XDP);
    this test turns offload on, which only TC can take."""
    tb = testbed
    if (daemon.attached_program() or {}).get("kind") != "tc":
        import pytest
        pytest.skip("the home agent is not attached with TC (offloaded checksums are an skb's)")
    mn = mobile_node(interfaces=(tb.MN_IF1,))
    mn.wait_registered(tb.COA1, timeout=8)
    try:
        tb.run("rtr", f"ethtool -K {tb.HA_PEER_IF} tx on")
        tb.run("ha", f"ethtool -K {tb.HA_IF} tx on")
        with path_mtu_to_care_of_link(tb, PATH_MTU):
            learn_path_mtu(tb, daemon, 1232)
            errors0, ha0, mn0 = udp_checksum_errors(tb), daemon.stats(), mn.status()
            stream = UdpStream(tb, dst=tb.HOA, rate=20, size=1224).start()   # 1272-byte datagrams, whole
            time.sleep(1.0)
            udp = stream.stop(drain=0.5)
            errors = udp_checksum_errors(tb) - errors0
            _, mn1 = settled(daemon, mn, ha0, mn0, udp["sent"] - 1)
    finally:
        tb.run("rtr", f"ethtool -K {tb.HA_PEER_IF} tx off", check=False)
        tb.run("ha", f"ethtool -K {tb.HA_IF} tx off", check=False)
    delivered = counter(mn1, "reassembledTunnel.delivered") - counter(mn0, "reassembledTunnel.delivered")
    print(f"UDP with checksums left to offload: {udp['received']}/{udp['sent']} received, {delivered} through the "
          f"fragmented tunnel, {errors} checksum errors at the MN")
    assert errors == 0 and udp["received"] >= udp["sent"] - 1 and delivered >= udp["received"]
