#!/usr/bin/python3
"""Handoff of an unmodified host between two `mip6 mag`s (Proxy Mobile IPv6), measured with
UDP streams both ways.

    sudo /usr/bin/python3 perf/pmip_handover.py [--runs 10] [--rate 1000] [--output FILE]
                                                [--tag m6ph] [--bin PATH] [--quick]

The PMIPv6 testbed (testbed/pmip.py): a correspondent, `mip6 lma`, `mip6 mag` x 2, and a plain
Linux host (RA + SLAAC, no mip6) on a bridge whose MAG ports go up and down as a host roaming
between access points sees it: the host's own carrier never drops, so it sends no RS and does
no DAD (design doc pmipv6.md §2.2). The correspondent streams to the host's address and the
host to the correspondent, each at --rate datagrams/s (testbed/stream.py). Each run moves the
host to the other MAG (break before make: the old port goes down, then the new one comes up)
and reports per direction the outage (last datagram before the interruption -> first after),
datagrams lost, and the new MAG's own attach -> PBA time (`lastRegistrationMs`, from the
first PBU to the accepted PBA). Then the median and maximum of each. Writes JSON (--output).

What the network controls is attach detection (carrier up -> the MAG pings all-nodes -> the
host's answer from its MAC, or the host's own next frame) plus one PBU/PBA round trip plus
writing the maps; the RA only refreshes what the host already has.
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

from testbed.harness import UdpStream, default_binary, wait_for  # noqa: E402
from testbed.pmip import PmipTestbed  # noqa: E402
from testbed.stream import summary  # noqa: E402

PRE_S = 0.5
POST_S = 0.7


def registered(tb, binary, n: int) -> bool:
    e = [x for x in tb.mag_status(binary, n)["status"]["entries"] if x["state"] == "registered" and x["installed"]]
    return bool(e)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--rate", type=float, default=1000)
    ap.add_argument("--tag", default="m6ph")
    ap.add_argument("--bin", default=str(default_binary()))
    ap.add_argument("--output")
    ap.add_argument("--quick", action="store_true", help="two runs (CI smoke): figures not meaningful")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("perf/pmip_handover.py needs root (network namespaces)", file=sys.stderr)
        return 1
    runs = 2 if args.quick else args.runs
    logs = Path(tempfile.mkdtemp(prefix="mip6-pmip-ho-"))
    tb = PmipTestbed(args.tag)
    tb.up()
    procs = []
    results = []
    try:
        tb.policy_path = logs / "pmip.policy"
        tb.policy_path.write_text(tb.policy())
        procs.append(tb.start_lma(args.bin, logs / "lma.log"))
        for n in (1, 2):
            procs.append(tb.start_mag(args.bin, n, logs / f"mag{n}.log"))
        t0 = time.monotonic()
        tb.move_to(1)
        if not wait_for(lambda: registered(tb, args.bin, 1), 10):
            raise RuntimeError(f"the host did not register at MAG1: {tb.mag_status(args.bin, 1)}")
        address = tb.wait_mn_address()
        first_attach_s = time.monotonic() - t0
        print(f"first attach: address {address} usable after {first_attach_s:.2f} s (includes the host's DAD)")
        at = 1
        for i in range(runs):
            to = 2 if at == 1 else 1
            down = UdpStream(tb, dst=address, rate=args.rate, src_node="cn", dst_node="mn", port=5701).start()
            up = UdpStream(tb, dst=tb.CN, rate=args.rate, src_node="mn", dst_node="cn", port=5702, src=address).start()
            time.sleep(PRE_S)
            down.mark("move")
            tb.move_to(to)
            ok = wait_for(lambda: registered(tb, args.bin, to), 5)
            time.sleep(POST_S)
            d = down.stop()
            u = up.stop()
            reg = tb.mag_status(args.bin, to)["status"]["counters"].get("lastRegistrationMs")
            r = {"run": i + 1, "to": to, "registered": ok, "registration_ms": reg,
                 "downlink": {k: d.get(k) for k in ("sent", "lost", "outage_ms", "gap_lost", "max_gap_ms")},
                 "uplink": {k: u.get(k) for k in ("sent", "lost", "outage_ms", "gap_lost", "max_gap_ms")}}
            results.append(r)
            print(f"run {i + 1} MAG{at} -> MAG{to}: registration {reg} ms; down: {summary(d)}; up: {summary(u)}", flush=True)
            at = to
    finally:
        for p in procs:
            PmipTestbed.stop(p)
        tb.down()

    def stat(path: list[str]) -> dict:
        vals = []
        for r in results:
            v = r
            for k in path:
                v = v.get(k) if isinstance(v, dict) else None
            if v is not None:
                vals.append(v)
        return {"median": statistics.median(vals), "max": max(vals)} if vals else {}

    out = {
        "date": time.strftime("%Y-%m-%d"), "host": platform.node(), "cpus": os.cpu_count(), "rate": args.rate,
        "runs": results, "first_attach_s": round(first_attach_s, 3),
        "downlink_outage_ms": stat(["downlink", "outage_ms"]), "uplink_outage_ms": stat(["uplink", "outage_ms"]),
        "downlink_lost": stat(["downlink", "lost"]), "uplink_lost": stat(["uplink", "lost"]),
        "registration_ms": stat(["registration_ms"]),
    }
    print(json.dumps({k: v for k, v in out.items() if k != "runs"}, indent=1))
    if args.output:
        Path(args.output).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
