#!/usr/bin/python3
"""Binding Updates through the shared store (issue 12): `mip6-bench bu-load` against three
`mip6 ha` replicas sharing a real 3-member etcd (testbed/cluster.py).

    sudo /usr/bin/python3 perf/cluster.py [--rates 100,2000,5000,10000,max] [--seconds 2]
    sudo /usr/bin/python3 perf/cluster.py --quick        # a few seconds, for CI's smoke

From the mobile node's namespace the generator sends BUs from COA1 for new home addresses
(every BU a new registration committed to etcd with a create-only compare) at each offered
rate and matches the BAs. All BUs of one care-of address reach one replica (the router's ECMP
hashes the flow); the other two learn every binding through their watch, and report how long
that took (acceptance at the writer -> in their maps: `store.convergence` in `mip6 stats`), as
does, with --forwarder, a `mip6 forwarder` on the router (`convergence` in `mip6 forwarder
status`; it shares the same 2 CPUs).
The first step (100 BU/s) gives the idle single-BU latency. Punt rate limits are off.
Everything runs on this machine's 2 CPUs: 3 replicas, 3 etcd members, BIRD, the generator.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from testbed.cluster import REPLICAS, Forwarder, ForwarderClusterTestbed, Replica  # noqa: E402
from testbed.harness import bench_binary, default_binary, ping  # noqa: E402


CPU_GROUPS = {"etcd": "etcd", "mip6": "replicas", "bird": "bird"}


def cpu_snapshot(each: dict[str, int] | None = None) -> tuple[dict[str, float], float, float]:
    """CPU seconds used so far by each group of processes (by name) and by each process of
    `each` (name -> pid), and the machine's busy and total CPU seconds (/proc/stat)."""
    tick = os.sysconf("SC_CLK_TCK")
    groups = dict.fromkeys(CPU_GROUPS.values(), 0.0)
    for label, pid in (each or {}).items():
        try:
            rest = (stat := Path(f"/proc/{pid}/stat").read_text())[stat.rindex(")") + 2:].split()
            groups[label] = (int(rest[11]) + int(rest[12])) / tick
        except OSError:
            pass
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        name, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
        if name in CPU_GROUPS:
            groups[CPU_GROUPS[name]] += (int(rest[11]) + int(rest[12])) / tick  # utime, stime
    cpu = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = cpu[3] + cpu[4]
    # The generator has exited by the second snapshot: it is counted as our waited-for child.
    t = os.times()
    groups["generator"] = t.children_user + t.children_system
    return groups, (sum(cpu) - idle) / tick, sum(cpu) / tick


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", default="100,2000,5000,10000,15000,max")
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--max-count", type=int, default=60000, help="BUs in a max step")
    ap.add_argument("--burst", type=int, default=32, help="BUs per send burst (1: single BUs, the idle latency)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--tag", default="m6pc")
    ap.add_argument("--bin", default=os.environ.get("MIP6_BIN", str(default_binary())))
    ap.add_argument("--output", default=str(Path(tempfile.gettempdir()) / "mip6-cluster.json"))
    ap.add_argument("--store-api", choices=["grpc", "gateway"], default="grpc", help="how the replicas reach etcd")
    ap.add_argument("--forwarder", action="store_true", help="also run a forwarder on the router and report its convergence")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces, TC, BIRD, etcd)", file=sys.stderr)
        return 1
    if args.quick:
        args.rates, args.seconds, args.max_count = "100,1000", 0.5, 2000
    rates = [0 if r == "max" else int(r) for r in args.rates.split(",")]
    results: dict = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "store_api": args.store_api, "steps": []}
    logs = Path(tempfile.gettempdir())
    with ForwarderClusterTestbed(args.tag) as tb:
        fwd = Forwarder(tb, Path(args.bin), logs, name="fwdpc", extra=["--max-bindings", "262144", "--log-level", "notice",
                                                                       "--store-api", args.store_api])
        reps = [Replica(tb, n, Path(args.bin), logs, extra=["--punt-rate", "0", "--punt-rate-per-source", "0",
                                                            "--max-bindings", "262144", "--log-level", "notice",
                                                            "--store-api", args.store_api])
                for n in REPLICAS]
        try:
            for r in reps:
                r.start()
            if args.forwarder:
                fwd.clear()
                fwd.start()
                fwd.wait_synced(10)
            tb.wait_nexthops(3)
            ping(tb, "mn", tb.HA, count=2, interval=0.1, echo=False)
            rtr_mac = tb.mac("rtr", "r-f1")
            first = 0
            for rate in rates:
                count = args.max_count if rate == 0 else int(rate * args.seconds)
                step_args = ["--interface", tb.MN_IF1, "--destination-mac", rtr_mac, "--care-of", tb.COA1,
                             "--home-agent", tb.HA, "--home-prefix", tb.HOME_PREFIX, "--lifetime", "600",
                             "--rates", "max" if rate == 0 else str(rate), "--seconds", str(args.seconds),
                             "--max-count", str(args.max_count), "--drain", "5", "--burst", str(args.burst),
                             "--first-home-address", f"{0xb000_0000_0000_0000 + first:x}"]
                first += count
                pids = {r.node: r.proc.pid for r in reps if r.proc}
                before = cpu_snapshot(pids)
                out = tb.run("mn", [bench_binary(args.bin), "bu-load", *step_args, "--json"], timeout=300)
                after = cpu_snapshot(pids)
                step = json.loads(out.stdout)["steps"][0]
                # Where the machine's CPUs went during the step (sending, then draining the BAs).
                busy, total = after[1] - before[1], after[2] - before[2]
                per_k = {g: (after[0][g] - before[0][g]) * 1e6 / max(step["accepted"], 1) for g in after[0]}
                step["cpu"] = {"busyPercent": 100 * busy / max(total, 1e-9), "microsecondsPerBU": per_k}
                results["steps"].append(step)
                print(f"offered {'max' if rate == 0 else rate:>6} BU/s: sent {step['sent']}, accepted {step['accepted']}, "
                      f"missing {step['missing']}, accepted/s {step['acceptedPerSecond']:,.0f}, "
                      f"BU->BA p50 {step['p50Microseconds'] / 1000:.1f} ms p99 {step['p99Microseconds'] / 1000:.1f} ms", flush=True)
                per = step["cpu"]["microsecondsPerBU"]
                print("    CPU: machine busy {:.0f}%; per accepted BU {} (replicas: {})".format(
                    step["cpu"]["busyPercent"], ", ".join(f"{g} {v:.0f} µs" for g, v in per.items() if g not in pids),
                    ", ".join(f"{n} {per[n]:.0f}" for n in pids if n in per)), flush=True)
            time.sleep(1)
            results["replicas"] = {r.node: (r.state() or {}).get("store") for r in reps}
            for node, s in results["replicas"].items():
                c = (s or {}).get("convergence") or {}
                k = (s or {}).get("commits") or {}
                print(f"{node}: commits {s['counters']['commits']} (submit -> result p50 {k.get('p50', 0):.1f} ms p99 "
                      f"{k.get('p99', 0):.1f} ms), conflicts {s['counters']['conflicts']}, remote upserts "
                      f"{s['counters']['remoteUpserts']}; convergence p50 {c.get('p50', 0):.1f} ms p99 {c.get('p99', 0):.1f} ms "
                      f"max {c.get('max', 0):.1f} ms over {c.get('samples', 0)}")
            if args.forwarder:
                st = fwd.state() or {}
                results["forwarder"] = st.get("convergence")
                c = st.get("convergence") or {}
                print(f"forwarder: bindings {st.get('bindings')}, synced {st.get('synced')}; convergence p50 {c.get('p50', 0):.1f} ms "
                      f"p99 {c.get('p99', 0):.1f} ms max {c.get('max', 0):.1f} ms over {c.get('samples', 0)}")
        finally:
            if args.forwarder:
                fwd.stop()
                fwd.clear()
            for r in reps:
                r.stop()
    Path(args.output).write_text(json.dumps(results, indent=1) + "\n")
    print(f"JSON: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
