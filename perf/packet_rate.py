#!/usr/bin/python3
"""Packet rate through the home agent: a pktgen-style load built into mip6.

    sudo /usr/bin/python3 perf/packet_rate.py [--packets 2000000] [--sizes 64,1500] [--output FILE]

The testbed (testbed/topology.py), home link MTU raised to 1600 so a 1500-byte frame
fits once tunneled, with `mip6 ha` (native XDP on ha0) and one binding
registered for the home address. In the router's namespace, `mip6-bench gen` sends
frames for the home address into ha0 with BPF_PROG_RUN live frames (restoring the
template's headers for every frame, since the home agent encapsulates the pages in
place), and an XDP sink on the router's side of the link counts the frames that come
back IPv6-in-IPv6. The same generator then runs against the bare parse + XDP_TX bounce
(`mip6-bench hold --program mip6_bench_tx` on ha0) in the same topology: the ratio of
the two is the figure (issue 5's target: >= 0.8).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from testbed import Testbed  # noqa: E402
from testbed.harness import HomeAgent, MobileNode, bench_binary, default_binary  # noqa: E402


def gen(tb: Testbed, binary: str, size: int, packets: int) -> dict:
    out = tb.run("rtr", [bench_binary(binary), "gen", "--interface", tb.HA_PEER_IF, "--destination-mac", tb.mac("ha", tb.HA_IF),
                         "--source", tb.CN, "--destination", tb.HOA, "--frame-size", str(size),
                         "--packets", str(packets), "--json"], timeout=300)
    return json.loads(out.stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--packets", type=int, default=2_000_000)
    ap.add_argument("--sizes", default="64,1500")
    ap.add_argument("--tag", default="m6pr")
    ap.add_argument("--bin", default=os.environ.get("MIP6_BIN", str(default_binary())))
    ap.add_argument("--output", default=str(Path(tempfile.gettempdir()) / "mip6-packet-rate.json"))
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces, XDP)", file=sys.stderr)
        return 1
    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict = {"packets": args.packets, "home_agent": {}, "bounce": {}}
    with Testbed(args.tag) as tb:
        # The sink replaces the testbed's XDP_PASS on the router's side (native XDP_TX
        # on veth needs a program on the peer; the sink is one).
        tb.run("rtr", ["ip", "link", "set", "dev", tb.HA_PEER_IF, "xdp", "off"])
        # A 1500-byte frame needs 40 more bytes once tunneled: give the home link room, as
        # an operator would for a tunnel endpoint, so big frames are measured, not bounced
        # back as Packet Too Big.
        tb.run("rtr", ["ip", "link", "set", "dev", "br-home", "mtu", "1600"])
        tb.run("rtr", ["ip", "link", "set", "dev", tb.HA_PEER_IF, "mtu", "1600"])
        tb.run("ha", ["ip", "link", "set", "dev", tb.HA_IF, "mtu", "1600"])
        log = Path(tempfile.gettempdir()) / f"mip6-packet-rate-{args.tag}.log"
        # Native XDP: the target compares the home agent's XDP encapsulation with an XDP_TX bounce.
        ha = HomeAgent(tb, Path(args.bin), log, log_level="info", extra_args=["--no-dad"], attach_mode="xdp").start()
        try:
            ba = MobileNode(tb).register(seq=1, lifetime=600)
            assert ba.get("status") == 0, f"registration failed: {ba}"
            for size in sizes:
                results["home_agent"][size] = gen(tb, args.bin, size, args.packets)
        finally:
            ha.stop()
        hold = tb.popen("ha", [bench_binary(args.bin), "hold", "--program", "mip6_bench_tx", "--interface", tb.HA_IF],
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            time.sleep(1.0)
            for size in sizes:
                results["bounce"][size] = gen(tb, args.bin, size, args.packets)
        finally:
            Testbed.stop(hold)

    print(f"{'frame':>6}  {'home agent (tunneled back)':>28}  {'bare XDP_TX bounce':>20}  ratio")
    for size in sizes:
        h, b = results["home_agent"][size], results["bounce"][size]
        ratio = h["tunneledMpps"] / b["receivedMpps"] if b["receivedMpps"] else float("nan")
        results.setdefault("ratio", {})[size] = ratio
        print(f"{h['frameBytes']:>5}B  {h['tunneledMpps']:>22.2f} Mpps  {b['receivedMpps']:>15.2f} Mpps  {ratio:5.2f}")
    Path(args.output).write_text(json.dumps(results, indent=2))
    print(f"\nwritten to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
