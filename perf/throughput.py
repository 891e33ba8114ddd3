#!/usr/bin/python3
"""Throughput through the home agent next to the direct path, in one run.

    sudo /usr/bin/python3 perf/throughput.py [--seconds 5] [--repeat 1] [--udp-rate 500M]
                                             [--udp-length 1200] [--no-udp] [--output FILE]
                                             [--tag m6tp] [--bin PATH]

The testbed with `mip6 ha` and `mip6 mn` registered from mn-f1. iperf3 with the
server in the MN namespace and the client in the correspondent's:

  via HA   server on the home address: CN -> router -> home agent (XDP encapsulation,
           XDP_TX back to the router) -> router -> mn-f1 (TC decapsulation); the other
           way the MN's TC egress reverse-tunnels to the home agent (XDP decapsulation).
  direct   server on the care-of address COA1: CN -> router -> mn-f1 and back, no
           tunnel and no home agent (the MN's TC programs still see every packet and
           pass it: their cost is included).

Both directions (CN -> MN: the client sends; MN -> CN: iperf3 -R), TCP and UDP
(offered --udp-rate, --udp-length byte datagrams: 1200 fits the tunnel's 1460-byte
MTU). Figures are what the receiver got (TCP goodput; UDP received rate and loss).
Prints a table and writes JSON (--output). Every case runs --repeat times; the
table shows the median.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from testbed import TestbedError  # noqa: E402
from testbed.harness import HarnessError, Setup, default_binary, iperf3  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--udp-rate", default="500M", help="offered UDP rate, iperf3 -b syntax (default 500M)")
    ap.add_argument("--udp-length", type=int, default=1200)
    ap.add_argument("--no-udp", action="store_true")
    ap.add_argument("--modes", default="tc,xdp",
                    help="home agent attach modes to measure, comma-separated (tc: clsact with GSO/TSO on; "
                         "xdp: native XDP, offloads off as native XDP_TX on veth needs)")
    ap.add_argument("--output", default=str(Path(tempfile.gettempdir()) / "mip6-throughput.json"))
    ap.add_argument("--tag", default="m6tp")
    ap.add_argument("--bin", default=os.environ.get("MIP6_BIN", str(default_binary())))
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces, XDP, TC)", file=sys.stderr)
        return 1

    protos = ("tcp",) if args.no_udp else ("tcp", "udp")
    rows: list[dict] = []
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    hmeta: dict[str, dict] = {}
    try:
        for mode in modes:
            with Setup(args.tag, Path(args.bin), Path(tempfile.gettempdir()), attach_mode=mode) as s:
                tb = s.tb
                paths = (("via HA", tb.HOA), ("direct", tb.COA1))
                ha0 = s.ha.binding(tb.HOA) or {}
                for proto in protos:
                    for reverse in (False, True):
                        for path, addr in paths:
                            runs = []
                            for _ in range(args.repeat):
                                runs.append(iperf3(tb, "mn", addr, "cn", seconds=args.seconds, reverse=reverse,
                                                   udp_rate=args.udp_rate if proto == "udp" else None,
                                                   udp_length=args.udp_length, echo=False))
                            mbps = statistics.median(r["mbps"] for r in runs)
                            row = {"mode": mode, "path": path, "address": addr,
                                   "direction": "MN -> CN" if reverse else "CN -> MN",
                                   "proto": proto, "mbps": round(mbps, 1), "runs": runs}
                            if proto == "tcp":
                                row["retransmits"] = statistics.median(r["retransmits"] or 0 for r in runs)
                            else:
                                row["lost_percent"] = round(statistics.median(r["lost_percent"] or 0 for r in runs), 3)
                            rows.append(row)
                            extra = (f"{row['retransmits']:.0f} retransmits" if proto == "tcp"
                                     else f"{row['lost_percent']:.2f}% lost of {args.udp_rate} offered")
                            print(f"{mode:3} {proto.upper():3} {row['direction']:8} {path:7} {mbps:8.0f} Mbit/s  {extra}",
                                  flush=True)
                ha1 = s.ha.binding(tb.HOA) or {}
                hmeta[mode] = {
                    "ha_binding_delta": {k: ha1.get(k, 0) - ha0.get(k, 0)
                                         for k in ("packetsToMN", "bytesToMN", "packetsFromMN", "bytesFromMN")},
                    "ha_counters": {k: v for k, v in s.ha.stats().get("dataplane", {}).items() if v},
                    "mn_dataplane": s.mn.status().get("dataplane", {}),
                }
    except (HarnessError, TestbedError) as e:
        print(f"throughput measurement failed: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130

    print("\n| attach mode | proto | direction | via HA (Mbit/s) | direct (Mbit/s) | via HA / direct |")
    print("|---|---|---|---:|---:|---:|")
    for mode in modes:
        for proto in protos:
            for direction in ("CN -> MN", "MN -> CN"):
                pick = [r for r in rows if r["mode"] == mode and r["proto"] == proto and r["direction"] == direction]
                via = next(r for r in pick if r["path"] == "via HA")
                direct = next(r for r in pick if r["path"] == "direct")
                ratio = via["mbps"] / direct["mbps"] if direct["mbps"] else float("nan")
                print(f"| {mode} | {proto.upper()} | {direction} | {via['mbps']:.0f} | {direct['mbps']:.0f} | {ratio:.2f} |")
    for mode, m in hmeta.items():
        print(f"\n{mode}: home agent binding counters over the run: {m['ha_binding_delta']}")
        print(f"{mode}: home agent data plane: {m['ha_counters']}")
    doc = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": platform.node(), "kernel": platform.release(),
           "cpus": os.cpu_count(), "seconds": args.seconds, "repeat": args.repeat, "udp_rate": args.udp_rate,
           "udp_length": args.udp_length, "modes": modes, "rows": rows, "per_mode": hmeta}
    Path(args.output).write_text(json.dumps(doc, indent=1) + "\n")
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
