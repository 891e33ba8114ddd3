#!/usr/bin/python3
"""Binding Updates per second over the wire: `mip6-bench bu-load` against `mip6 ha` in the testbed.

    sudo /usr/bin/python3 perf/signaling_wire.py [--rates 10000,20000,40000,60000,100000,150000,max] [--seconds 2]
    sudo /usr/bin/python3 perf/signaling_wire.py --quick          # a few seconds, for CI's smoke

The testbed (testbed/topology.py) with `mip6 ha` on ha0 (unauthenticated, --no-dad, punt rate
limits off, --max-bindings as large as the run), pinned to one CPU; in the mobile node's
namespace, pinned to the other CPU, `mip6-bench bu-load` sends BUs from the care-of address of
mn-f1 (through the router, as a mobile node away from home does) for distinct home addresses
of 2001:db8:1::/64 at each offered rate, and matches the BAs that come back on mn-f1. One
generator run per rate, so the home agent's CPU time (utime + stime from /proc/<pid>/stat)
and each CPU's busy time (/proc/stat) are read around each step. Every BU of the whole run is
for a new home address (a new registration) unless --refresh.

Before the home agent starts, the same generator sends into a veth pair of its own whose peer
drops the frames (send only): the generator's own ceiling.
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
from testbed.harness import HomeAgent, bench_binary, default_binary, ping  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process, all its threads (the kernel's own accounting)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def cpu_times() -> dict[int, dict[str, float]]:
    """Per CPU: busy (user+nice+system+irq+softirq+steal), softirq, idle, seconds."""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu") and line[3].isdigit():
            name, *v = line.split()
            v = [int(x) / TICK for x in v]
            user, nice, system, idle, iowait, irq, softirq, steal = v[:8]
            out[int(name[3:])] = {"busy": user + nice + system + irq + softirq + steal, "softirq": softirq,
                                  "system": system, "idle": idle + iowait}
    return out


def cpu_delta(a: dict, b: dict) -> dict:
    return {cpu: {k: round(b[cpu][k] - a[cpu][k], 3) for k in a[cpu]} for cpu in a}


def generator(tb: Testbed, binary: str, cpu: int, args: list[str], timeout: float) -> dict:
    out = tb.run("mn", ["taskset", "-c", str(cpu), bench_binary(binary), "bu-load", *args, "--json"], timeout=timeout)
    return json.loads(out.stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", default="10000,20000,40000,60000,100000,150000,max", help="offered BU/s per step; max = as fast as possible")
    ap.add_argument("--seconds", type=float, default=2.0, help="length of a paced step")
    ap.add_argument("--max-count", type=int, default=400_000, help="BUs of the max step")
    ap.add_argument("--burst", type=int, default=4, help="BUs per sendmmsg (bursts of independent mobile nodes)")
    ap.add_argument("--refresh", action="store_true",
                    help="register the home addresses of the largest step first, then every step refreshes them")
    ap.add_argument("--attach-mode", default="auto", help="mip6 ha --attach-mode (auto: TC on veth)")
    ap.add_argument("--ha-cpu", type=int, default=0)
    ap.add_argument("--gen-cpu", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="tiny run for CI: 2000 and 10000 BU/s for 0.3 s, max of 5000")
    ap.add_argument("--tag", default="m6bul")
    ap.add_argument("--bin", default=os.environ.get("MIP6_BIN", str(default_binary())))
    ap.add_argument("--output", default=str(Path(tempfile.gettempdir()) / "mip6-signaling-wire.json"))
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces, BPF, AF_PACKET)", file=sys.stderr)
        return 1
    if args.quick:
        args.rates, args.seconds, args.max_count = "2000,10000,max", 0.3, 5000
    rates = [0.0 if r.strip().lower() == "max" else float(r) for r in args.rates.split(",")]
    counts = [args.max_count if r == 0 else max(1, round(r * args.seconds)) for r in rates]
    total = sum(counts)
    pool = max(counts) if args.refresh else total
    results: dict = {"rates": rates, "seconds": args.seconds, "burst": args.burst, "home_addresses": pool,
                     "refresh": args.refresh, "attach_mode": args.attach_mode, "ha_cpu": args.ha_cpu,
                     "gen_cpu": args.gen_cpu, "steps": []}

    with Testbed(args.tag) as tb:
        rtr_mac = tb.mac("rtr", "r-f1")
        # br_netfilter (loaded on this host by other users) would run every frame the home link's
        # bridge passes through ip6tables hooks; a router does not, and here that work lands in the
        # home agent's context (it sends the BAs): off in the router's namespace.
        tb.run("rtr", ["sysctl", "-q", "-w", "net.bridge.bridge-nf-call-ip6tables=0",
                       "net.bridge.bridge-nf-call-iptables=0"], check=False)
        common = ["--interface", tb.MN_IF1, "--destination-mac", rtr_mac, "--care-of", tb.COA1, "--home-agent", tb.HA,
                  "--home-prefix", tb.HOME_PREFIX, "--burst", str(args.burst), "--lifetime", "600"]

        # The generator's own ceiling: send only, into a veth pair of its own whose peer drops the
        # frames at once (addressed to another host's MAC), so nothing is forwarded.
        tb.run("mn", "ip link add bulsink type veth peer name bulsink-p && ip link set dev bulsink-p up "
                     "&& ip link set dev bulsink up")
        ceiling = generator(tb, args.bin, args.gen_cpu,
                            ["--interface", "bulsink", "--destination-mac", rtr_mac, "--care-of", tb.COA1,
                             "--home-agent", tb.HA, "--home-prefix", tb.HOME_PREFIX, "--burst", str(args.burst),
                             "--rates", "max", "--max-count", str(args.max_count), "--no-receive"], timeout=120)
        results["generator_ceiling"] = ceiling["steps"][0]
        tb.run("mn", "ip link del bulsink")

        log = Path(tempfile.gettempdir()) / f"mip6-signaling-wire-{args.tag}.log"
        ha = HomeAgent(tb, Path(args.bin), log, attach_mode=args.attach_mode, log_level="notice",
                       extra_args=["--no-dad", "--punt-rate", "0", "--punt-rate-per-source", "0",
                                   "--max-bindings", str(max(pool + 1000, 65536))]).start()
        try:
            pid = ha.proc.pid      # popen exec's the daemon itself
            subprocess.run(["taskset", "-a", "-p", "-c", str(args.ha_cpu), str(pid)], check=True, capture_output=True)
            results["attached"] = ha.attached_program()
            # Neighbours resolved both ways before timing (router <-> MN, HA <-> router).
            ping(tb, "mn", tb.HA, count=2, interval=0.1, echo=False)

            first_bu = 0
            if args.refresh:
                # Register every home address first, at a rate the home agent keeps up with.
                generator(tb, args.bin, args.gen_cpu, [*common, "--rates", "50000", "--seconds", str(pool / 50000),
                                                       "--home-addresses", str(pool)], timeout=300)
                seq = 2
            for rate, count in zip(rates, counts):
                step_args = [*common, "--rates", "max" if rate == 0 else str(rate), "--seconds", str(args.seconds),
                             "--max-count", str(args.max_count)]
                if args.refresh:
                    step_args += ["--home-addresses", str(pool), "--first-sequence", str(seq)]
                    seq += 1
                else:   # fresh home addresses for every step
                    step_args += ["--first-home-address", f"{0xb000_0000_0000_0000 + first_bu:x}"]
                first_bu += count
                c0, s0 = proc_cpu_seconds(pid), cpu_times()
                res = generator(tb, args.bin, args.gen_cpu, step_args, timeout=300)
                c1, s1 = proc_cpu_seconds(pid), cpu_times()
                if not ha.alive():
                    raise RuntimeError(f"mip6 ha exited: {ha.log_text()[-2000:]}")
                step = res["steps"][0]
                step["ha_cpu_seconds"] = round(c1 - c0, 3)
                step["cpu"] = cpu_delta(s0, s1)
                cpu = c1 - c0
                step["ha_us_per_accepted_bu"] = cpu / step["accepted"] * 1e6 if step["accepted"] and cpu > 0 else None
                step["accepted_per_ha_cpu_second"] = step["accepted"] / cpu if cpu > 0 else None
                results["steps"].append(step)
            results["ha_stats"] = ha.stats()
            # Saturation: the most accepted per second over any step (see below); "below saturation": the
            # highest offered rate whose BUs were all accepted and accepted/s kept up with it.
            # Accepted over first BU sent -> last BA received: a step short enough for the punt ring
            # to hold it looks infinitely fast per send window, not over its completion.
            for s in results["steps"]:
                s["acceptedPerCompletionSecond"] = s["accepted"] / s["completionSeconds"] if s["completionSeconds"] else 0
            results["max_accepted_per_second"] = max((s["acceptedPerCompletionSecond"] for s in results["steps"]), default=0)
            below = [s for s in results["steps"] if s["offeredRate"] > 0 and s["missing"] == 0
                     and s["accepted"] == s["sent"] and s["acceptedPerSecond"] >= 0.98 * s["offeredRate"]]
            results["below_saturation"] = max(below, key=lambda s: s["offeredRate"]) if below else None
        finally:
            ha.stop()
            ha.clear_state()

    c = results["generator_ceiling"]
    print(f"generator alone (own veth, peer drops, send only): {c['sent']} BUs of {ceiling['frameBytes']} B "
          f"in {c['sendSeconds']:.3f} s = {c['sendRate']:,.0f} BU/s")
    print(f"home agent on CPU {args.ha_cpu} ({(results.get('attached') or {}).get('kind', '?')}), generator on CPU "
          f"{args.gen_cpu}, {'refreshes of' if args.refresh else 'new registrations,'} {pool} home addresses\n")
    hdr = ["offered", "sent", "send/s", "BAs", "accepted", "other", "missing", "accepted/s", "BA arr/s",
           "p50 us", "p99 us", "p99.9 us", "max us", "HA cpu s", "HA us/BU", "BU/HA-cpu-s"]
    rows = []
    for s in results["steps"]:
        other = sum(v for k, v in s["bindingAcksByStatus"].items() if k != "0") + s["bindingErrors"]
        rows.append(["max" if s["offeredRate"] == 0 else f"{s['offeredRate']:.0f}", str(s["sent"]), f"{s['sendRate']:.0f}",
                     str(s["bindingAcks"]), str(s["accepted"]), str(other), str(s["missing"]),
                     f"{s['acceptedPerSecond']:.0f}", f"{s['baArrivalRate']:.0f}", f"{s['p50Microseconds']:.0f}",
                     f"{s['p99Microseconds']:.0f}", f"{s['p999Microseconds']:.0f}", f"{s['maxMicroseconds']:.0f}",
                     f"{s['ha_cpu_seconds']:.2f}",
                     f"{s['ha_us_per_accepted_bu']:.2f}" if s["ha_us_per_accepted_bu"] else "-",
                     f"{s['accepted_per_ha_cpu_second']:.0f}" if s["accepted_per_ha_cpu_second"] else "-"])
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(hdr)]
    print("  ".join(h.rjust(w) for h, w in zip(hdr, widths)))
    for r in rows:
        print("  ".join(v.rjust(w) for v, w in zip(r, widths)))
    Path(args.output).write_text(json.dumps(results, indent=2))
    print(f"\nwritten to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
