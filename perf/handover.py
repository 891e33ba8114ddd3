#!/usr/bin/python3
"""Handover of `mip6 mn` between two foreign links, measured with a UDP stream.

    sudo /usr/bin/python3 perf/handover.py [--runs 5] [--rate 1000] [--kind both|bbm|mbb]
                                           [--output FILE] [--tag m6ho] [--bin PATH]

The testbed (testbed/topology.py) with `mip6 ha` and `mip6 mn --interface mn-f1
--interface mn-f2` (mn-f1 preferred). The correspondent sends a constant stream of
UDP datagrams (testbed/stream.py: sequence number + send time in each) to the home
address; the receiver in the MN namespace records every arrival. Each run moves the
mobile node once while the stream flows:

  bbm  break-before-make: mn-f1 (the care-of link) goes down while mn-f2 is up; the
       MN must notice (netlink) and register COA2. Datagrams the home agent still
       tunnels to COA1 are lost until its binding moves.
  mbb  make-before-break: the MN sits on mn-f2 with mn-f1 down; mn-f1 (preferred)
       comes back with its address, the MN registers COA1 while mn-f2 still works;
       0.3 s after the registration mn-f2 goes down. Nothing should be lost.

The runs alternate (bbm leaves the MN on mn-f2, mbb brings it back), one daemon pair
for all of them. Per run: outage (from the last datagram before the interruption to
the first after it), datagrams lost, and how long after the link event `mip6 mn
status` showed the new registration (polled every 50 ms) and the MN's own BU -> BA
time. Then the median of each. Writes everything as JSON (--output).
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
from testbed.harness import (HarnessError, Setup, UdpStream, counter, default_binary,  # noqa: E402
                             move_break_before_make, move_make_before_break)
from testbed.stream import summary  # noqa: E402

PRE_S = 0.5     # stream before the move
POST_S = 0.7    # stream after the registration


def drops(before: dict, after: dict) -> dict:
    return {k: v - before.get(k, 0) for k, v in after.items() if k.startswith("drop") and v - before.get(k, 0)}


def one_run(s: Setup, kind: str, rate: float) -> dict:
    tb, mn = s.tb, s.mn
    st0 = mn.status()
    stream = UdpStream(tb, rate=rate).start()
    try:
        time.sleep(PRE_S)
        if kind == "bbm":
            stream.mark("event")
            move = move_break_before_make(tb, mn, tb.MN_IF1, tb.COA2)
        else:
            stream.mark("event")
            move = move_make_before_break(tb, mn, tb.MN_IF1, tb.COA1, tb.MN_IF2, overlap=0.3)
        time.sleep(POST_S)
        res = stream.stop()
    except BaseException:
        stream.abort()
        raise
    st = mn.status()
    if kind == "mbb":
        tb.set_mn_link(tb.MN_IF2, True)     # back to both links up, the MN stays on mn-f1
    b = s.ha.binding(tb.HOA) or {}
    return {
        "kind": kind,
        "outage_ms": res["outage_ms"] if res["gap_lost"] else 0.0,
        "lost": res["lost"],
        "longest_silence_ms": res["max_gap_ms"],
        "registration_seen_ms": round(move["seconds"] * 1000, 1),
        "bu_to_ba_ms": st["counters"].get("lastRegistrationMs"),
        "retransmissions": counter(st, "counters.retransmissions") - counter(st0, "counters.retransmissions"),
        "mn_dataplane_drops": drops(st0.get("dataplane", {}), st.get("dataplane", {})),
        "ha_care_of": b.get("careOfAddress"),
        "stream": res,
    }


def median(values):
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 3) if values else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="runs of each kind (default 5)")
    ap.add_argument("--rate", type=float, default=1000, help="datagrams per second (default 1000)")
    ap.add_argument("--kind", choices=("both", "bbm", "mbb"), default="both")
    ap.add_argument("--output", default=str(Path(tempfile.gettempdir()) / "mip6-handover.json"))
    ap.add_argument("--tag", default="m6ho")
    ap.add_argument("--bin", default=os.environ.get("MIP6_BIN", str(default_binary())))
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces, XDP, TC)", file=sys.stderr)
        return 1
    kinds = ("bbm", "mbb") if args.kind == "both" else (args.kind,)
    results: list[dict] = []
    try:
        with Setup(args.tag, Path(args.bin), Path(tempfile.gettempdir())) as s:
            print(f"registered from {s.tb.COA1}; {args.runs} run(s) of {', '.join(kinds)} at {args.rate:.0f} datagrams/s")
            for i in range(1, args.runs + 1):
                for kind in ("bbm", "mbb"):
                    if kind not in kinds:
                        # Only the other kind is measured: make this move without measuring it.
                        if kind == "bbm":
                            move_break_before_make(s.tb, s.mn, s.tb.MN_IF1, s.tb.COA2)
                        else:
                            move_make_before_break(s.tb, s.mn, s.tb.MN_IF1, s.tb.COA1, s.tb.MN_IF2, overlap=0)
                            s.tb.set_mn_link(s.tb.MN_IF2, True)
                        continue
                    r = one_run(s, kind, args.rate)
                    r["run"] = i
                    results.append(r)
                    print(f"{kind} run {i}: outage {r['outage_ms']:.1f} ms, lost {r['lost']}, registration seen "
                          f"{r['registration_seen_ms']:.0f} ms after the link event, BU -> BA {r['bu_to_ba_ms']} ms, "
                          f"MN drops {r['mn_dataplane_drops'] or '-'}", flush=True)
                    print(f"    {summary(r['stream'])}")
    except (HarnessError, TestbedError) as e:
        print(f"handover measurement failed: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130

    summary_rows = {}
    print("\nkind  runs  outage ms (median)  lost (median)  registration seen ms  BU->BA ms")
    for kind in kinds:
        rs = [r for r in results if r["kind"] == kind]
        row = {"runs": len(rs),
               "outage_ms_median": median(r["outage_ms"] for r in rs),
               "outage_ms_max": max((r["outage_ms"] for r in rs), default=None),
               "lost_median": median(r["lost"] for r in rs),
               "lost_max": max((r["lost"] for r in rs), default=None),
               "registration_seen_ms_median": median(r["registration_seen_ms"] for r in rs),
               "bu_to_ba_ms_median": median(r["bu_to_ba_ms"] for r in rs)}
        summary_rows[kind] = row
        print(f"{kind:4}  {row['runs']:4}  {row['outage_ms_median']:>19}  {row['lost_median']:>13}  "
              f"{row['registration_seen_ms_median']:>20}  {row['bu_to_ba_ms_median']:>9}")
    doc = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": platform.node(), "kernel": platform.release(),
           "cpus": os.cpu_count(), "rate": args.rate, "runs": args.runs, "summary": summary_rows, "results": results}
    Path(args.output).write_text(json.dumps(doc, indent=1) + "\n")
    print(f"\nwritten to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
