"""Many mobile nodes at once (issue 11, item 9): a conference network or a site behind one
access router is thousands of mobile nodes whose care-of addresses share one /64, and who
send their first Binding Update together and retransmit on RFC 6275 timers (1.5 s, doubling).
With default flags every one of them must be registered within 5 s, and traffic to them
tunneled, while the per-source limit still keeps one prefix's flood from starving others
(test_security.py floods from one and from 200 prefixes)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import PYTHON, ping

NODES = 2000
FIRST_COA = "2001:db8:f1::1:0"      # node i: care-of address FIRST_COA + i on mn-f1
FIRST_HOA = "2001:db8:1::1:0"       # node i: home address FIRST_HOA + i


def addresses(first: str, n: int) -> list[str]:
    import ipaddress
    base = int(ipaddress.IPv6Address(first))
    return [str(ipaddress.IPv6Address(base + i)) for i in range(n)]


@pytest.fixture
def crowd_addresses(testbed):
    """The crowd's care-of addresses on mn-f1 (the kernel answers the router's NS for them),
    and room in the kernel's neighbour table: it is one table for every namespace, sized by
    the initial namespace's gc_thresh3 (1024 by default), and the router needs 2000 entries,
    as a real access router for such a site would have."""
    tb = testbed
    coas = addresses(FIRST_COA, NODES)
    tb.run("mn", ["ip", "-batch", "-"], input="".join(f"addr add {a}/64 dev {tb.MN_IF1} nodad\n" for a in coas), timeout=60)
    knob = Path("/proc/sys/net/ipv6/neigh/default/gc_thresh3")
    old = knob.read_text().strip()
    knob.write_text(str(max(int(old), 8 * NODES)))
    try:
        yield coas
    finally:
        tb.run("mn", ["ip", "-batch", "-"], input="".join(f"addr del {a}/64 dev {tb.MN_IF1}\n" for a in coas),
               check=False, timeout=60)
        # The router's 2000 neighbour entries go before the table shrinks back: over
        # gc_thresh3 no new entry could be made, and the next tests would lose their links.
        for node in ("rtr", "mn", "ha"):
            tb.run(node, ["ip", "-6", "neigh", "flush", "all"], check=False)
        knob.write_text(old)


def test_2000_mobile_nodes_behind_one_prefix_all_register_within_5_s(testbed, daemon, crowd_addresses):
    tb = testbed
    cp = tb.run("mn", [PYTHON, "-m", "testbed.scapy_mn", "crowd", "--iface", tb.MN_IF1, "--coa", FIRST_COA,
                       "--hoa", FIRST_HOA, "--ha", tb.HA, "--count", str(NODES), "--timeout", "20"], timeout=90)
    result = json.loads(cp.stdout.strip().splitlines()[-1])
    print(json.dumps(result, indent=1))
    stats = daemon.stats()
    print("data plane:", {k: v for k, v in stats.get("dataplane", {}).items() if v})
    assert result["accepted"] == NODES, f"only {result['accepted']} of {NODES} accepted within 20 s: {result}"
    assert result["last_accepted_s"] < 5.0, f"the last node waited {result['last_accepted_s']} s (want < 5 s)"

    bindings = daemon.bindings()
    assert len(bindings) == NODES, f"{len(bindings)} bindings in the data plane"
    # Traffic to an accepted home address is tunneled to its care-of address.
    for hoa in (FIRST_HOA, addresses(FIRST_HOA, NODES)[-1]):
        before = daemon.binding(hoa)["packetsToMN"]
        ping(tb, "cn", hoa, count=3, interval=0.1, wait=0.3)
        after = daemon.binding(hoa)
        assert after["packetsToMN"] >= before + 3, f"pings to {hoa} were not tunneled: {after}"
