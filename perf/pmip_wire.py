#!/usr/bin/python3
"""Proxy Binding Updates per second over the wire: `mip6-bench pbu-load` against `mip6 lma` (issue 13).

    sudo /usr/bin/python3 perf/pmip_wire.py [--rates 10000,20000,40000,60000,80000,max] [--seconds 2]
    sudo /usr/bin/python3 perf/pmip_wire.py --refresh        # register every node first, then refreshes
    sudo /usr/bin/python3 perf/pmip_wire.py --quick          # a few seconds, for CI's smoke

The testbed (testbed/topology.py) with `mip6 lma` on ha0 with the home agent's address
(--punt-rate 0 --punt-rate-per-mag 0, log level notice), pinned to one CPU with taskset; its
policy (written by `mip6-bench pbu-policy`) lists COA1 as the MAG and one mobile node per PBU
of the run. In the mobile node's namespace, pinned to the other CPU, `mip6-bench pbu-load`
sends PBUs as a MAG at COA1 does (out of mn-f1, through the router and the home-link bridge),
for distinct mobile nodes at each offered rate, each with the Timestamp of the moment it is
sent, and matches the PBAs that come back on mn-f1 by NAI and sequence number. One generator
run per rate, so the LMA's CPU time (utime + stime from /proc/<pid>/stat) and each CPU's busy
time (/proc/stat) are read around each step; the LMA's own counters (`mip6 lma status`)
after the run. Every PBU is a new registration unless --refresh.

Reported: accepted PBU/s at saturation (the most accepted per second of completion over the
steps, as perf/signaling_wire.py), and the latency of the highest offered rate the LMA kept
up with (p50/p99, PBU handed to the kernel -> PBA received). --perf-rate R records the LMA
with `perf record -g` during the step at R PBU/s and prints where its CPU time went.

Before the LMA starts, the same generator sends into a veth pair of its own whose peer drops
the frames (send only): the generator's own ceiling.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from testbed import Testbed  # noqa: E402
from testbed.harness import PYTHON, LocalMobilityAnchor, bench_binary, default_binary, ping  # noqa: E402

from signaling_wire import cpu_delta, cpu_times, proc_cpu_seconds  # noqa: E402

LISTEN = "[::1]:9465"   # the LMA's /metrics, in its namespace: its own latency histogram per step


def generator(tb: Testbed, binary: str, cpu: int, args: list[str], timeout: float, nice: int = 0, rt: int = 0) -> dict:
    prio = ["chrt", "-f", str(rt)] if rt else ["nice", "-n", str(nice)]
    out = tb.run("mn", [*prio, "taskset", "-c", str(cpu), bench_binary(binary), "pbu-load", *args, "--json"], timeout=timeout)
    return json.loads(out.stdout)


def run_delay_seconds(pid: int) -> tuple[float, int]:
    """Time the LMA's threads spent runnable but waiting for their CPU (schedstat run_delay,
    precise, unlike /proc/stat's per-CPU ticks), and how many times they were scheduled in."""
    delay, runs = 0, 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            _, d, n = (task / "schedstat").read_text().split()
        except (FileNotFoundError, ValueError):
            continue
        delay, runs = delay + int(d), runs + int(n)
    return delay / 1e9, runs


def prioritise(pid: int, nice: int, rt: int) -> None:
    """Every thread of `pid` (setpriority and sched_setscheduler work per thread on Linux)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        if rt:
            os.sched_setscheduler(int(task.name), os.SCHED_FIFO, os.sched_param(rt))
        else:
            os.setpriority(os.PRIO_PROCESS, int(task.name), nice)


FETCH = r"""
import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())
"""


def latency_buckets(tb: Testbed) -> dict[float, float]:
    """The LMA's own PBU -> PBA histogram (punted by the data plane -> handed to sendmmsg):
    cumulative count per upper bound, seconds."""
    text = tb.run("ha", [PYTHON, "-c", FETCH, f"http://{LISTEN}/metrics"], timeout=15).stdout
    out = {}
    for m in re.finditer(r'^mip6_lma_pba_latency_seconds_bucket\{le="([^"]+)"\} (\S+)$', text, re.M):
        out[float("inf") if m.group(1) == "+Inf" else float(m.group(1))] = float(m.group(2))
    return out


def bucket_quantiles(before: dict, after: dict, qs=(0.5, 0.99)) -> dict[str, float | None]:
    """Upper bounds (µs) of the buckets holding each quantile of the step's observations."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0) for b in bounds]
    total = counts[-1] if counts else 0
    out = {}
    for q in qs:
        hit = next((b for b, c in zip(bounds, counts) if total and c >= q * total), None)
        out[f"p{q * 100:g}"] = None if hit is None or hit == float("inf") else round(hit * 1e6)
    out["count"] = total
    return out


def perf_report(data: Path, top: int = 25) -> str:
    """The LMA's samples by symbol, children folded in (where its CPU time went)."""
    def rows(children: bool, limit: str) -> list[str]:
        cp = subprocess.run(["perf", "report", "-i", str(data), "--children" if children else "--no-children",
                             "--sort", "symbol", "--stdio", "--percent-limit", limit, "-g", "none"],
                            capture_output=True, text=True, timeout=300)
        return [re.sub(r"\s+-\s+-\s*$", "", l).rstrip() for l in cp.stdout.splitlines() if l.strip() and not l.startswith("#")]
    flat = rows(False, "1")[:top]
    # With children: our code and the system calls it makes, not the thread's stack roots.
    ours = re.compile(r"Mip6Daemon|ControlPlane|DataPlane|JSON|sendmmsg|sendto|sys_bpf|ring_buffer|poll|"
                      r"rawv6|ip6_|dev_queue_xmit|do_softirq|map_update|htab")
    nested = [l for l in rows(True, "2") if ours.search(l)][:top]
    return "self:\n" + "\n".join(flat) + "\n\nwith children (our code, the system calls it makes):\n" + "\n".join(nested)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", default="10000,20000,40000,60000,80000,max", help="offered PBU/s per step; max = as fast as possible")
    ap.add_argument("--seconds", type=float, default=2.0, help="length of a paced step")
    ap.add_argument("--max-count", type=int, default=200_000, help="PBUs of the max step")
    ap.add_argument("--burst", type=int, default=4, help="PBUs per sendmmsg (bursts of independent mobile nodes)")
    ap.add_argument("--refresh", action="store_true",
                    help="register the nodes of the largest step first, then every step refreshes them")
    ap.add_argument("--lma-cpu", type=int, default=0)
    ap.add_argument("--gen-cpu", type=int, default=1)
    ap.add_argument("--nice", type=int, default=0,
                    help="nice value of the LMA's threads and the generator (e.g. -20: ahead of other work on the machine)")
    ap.add_argument("--rt", type=int, default=0,
                    help="SCHED_FIFO priority of the LMA's threads and the generator (e.g. 10: the CPU to themselves "
                         "whenever they are runnable, as on a dedicated core; 0: normal scheduling)")
    ap.add_argument("--perf-rate", default=None, help="perf record -g the LMA during the step at this rate (or max)")
    ap.add_argument("--quick", action="store_true", help="tiny run for CI: 2000 and 10000 PBU/s for 0.3 s, max of 5000")
    ap.add_argument("--tag", default="m6pmw")
    ap.add_argument("--bin", default=os.environ.get("MIP6_BIN", str(default_binary())))
    ap.add_argument("--output", default=str(Path(tempfile.gettempdir()) / "mip6-pmip-wire.json"))
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces, BPF, AF_PACKET)", file=sys.stderr)
        return 1
    if args.quick:
        args.rates, args.seconds, args.max_count = "2000,10000,max", 0.3, 5000
    rates = [0.0 if r.strip().lower() == "max" else float(r) for r in args.rates.split(",")]
    counts = [args.max_count if r == 0 else max(1, round(r * args.seconds)) for r in rates]
    perf_rate = None if args.perf_rate is None else (0.0 if args.perf_rate == "max" else float(args.perf_rate))
    if perf_rate is not None and not shutil.which("perf"):
        print("--perf-rate needs perf (apt-get install linux-perf)", file=sys.stderr)
        return 1
    nodes = max(counts) if args.refresh else sum(counts)
    results: dict = {"rates": rates, "seconds": args.seconds, "burst": args.burst, "nodes": nodes, "refresh": args.refresh,
                     "lma_cpu": args.lma_cpu, "gen_cpu": args.gen_cpu, "nice": args.nice, "rt": args.rt, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                     "steps": []}
    work = Path(tempfile.mkdtemp(prefix="mip6-pmip-wire-"))
    policy = work / "pmip.policy"

    with Testbed(args.tag) as tb:
        rtr_mac = tb.mac("rtr", "r-f1")
        # As perf/signaling_wire.py: no br_netfilter work on the home link's bridge.
        tb.run("rtr", ["sysctl", "-q", "-w", "net.bridge.bridge-nf-call-ip6tables=0",
                       "net.bridge.bridge-nf-call-iptables=0"], check=False)
        common = ["--interface", tb.MN_IF1, "--destination-mac", rtr_mac, "--mag", tb.COA1, "--lma", tb.HA,
                  "--burst", str(args.burst), "--lifetime", "600"]

        # The generator's own ceiling: send only, into a veth pair whose peer drops the frames.
        tb.run("mn", "ip link add pbusink type veth peer name pbusink-p && ip link set dev pbusink-p up "
                     "&& ip link set dev pbusink up")
        ceiling = generator(tb, args.bin, args.gen_cpu,
                            ["--interface", "pbusink", "--destination-mac", rtr_mac, "--mag", tb.COA1, "--lma", tb.HA,
                             "--burst", str(args.burst), "--rates", "max", "--max-count", str(args.max_count), "--no-receive"],
                            timeout=120)
        results["generator_ceiling"] = ceiling["steps"][0]
        results["frame_bytes"] = ceiling["frameBytes"]
        tb.run("mn", "ip link del pbusink")

        t0 = time.monotonic()
        subprocess.run([bench_binary(args.bin), "pbu-policy", "--nodes", str(nodes), "--mag", tb.COA1, "--output", str(policy)],
                       check=True)
        results["policy_write_seconds"] = round(time.monotonic() - t0, 2)
        log = Path(tempfile.gettempdir()) / f"mip6-pmip-wire-{args.tag}.log"
        lma = LocalMobilityAnchor(tb, Path(args.bin), log, policy, log_level="notice",
                                  extra_args=["--punt-rate", "0", "--punt-rate-per-mag", "0", "--http-listen", LISTEN])
        t0 = time.monotonic()
        lma.start(timeout=120)
        results["lma_start_seconds"] = round(time.monotonic() - t0, 2)
        try:
            pid = lma.proc.pid      # popen exec's the daemon itself
            subprocess.run(["taskset", "-a", "-p", "-c", str(args.lma_cpu), str(pid)], check=True, capture_output=True)
            if args.nice or args.rt:
                prioritise(pid, args.nice, args.rt)
            # Neighbours resolved both ways before timing (router <-> MAG, LMA <-> router).
            ping(tb, "mn", tb.HA, count=2, interval=0.1, echo=False)

            if args.refresh:
                # Register every node first, at a rate the LMA keeps up with.
                generator(tb, args.bin, args.gen_cpu, [*common, "--rates", "20000", "--seconds", str(nodes / 20000),
                                                       "--nodes", str(nodes)], timeout=600, nice=args.nice, rt=args.rt)
                seq = 2
            first = 0
            for rate, count in zip(rates, counts):
                step_args = [*common, "--rates", "max" if rate == 0 else str(rate), "--seconds", str(args.seconds),
                             "--max-count", str(args.max_count)]
                if args.refresh:
                    step_args += ["--nodes", str(nodes), "--first-sequence", str(seq)]
                    seq += 1
                else:   # fresh nodes for every step
                    step_args += ["--first-node", str(first)]
                first += count
                recorder = None
                if perf_rate is not None and rate == perf_rate:
                    data = work / f"perf-{'max' if rate == 0 else int(rate)}.data"
                    recorder = subprocess.Popen(["perf", "record", "-g", "-F", "4999", "-p", str(pid), "-o", str(data)],
                                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    time.sleep(0.5)
                h0 = latency_buckets(tb)
                load0 = os.getloadavg()[0]
                c0, s0, r0 = proc_cpu_seconds(pid), cpu_times(), run_delay_seconds(pid)
                res = generator(tb, args.bin, args.gen_cpu, step_args, timeout=600, nice=args.nice, rt=args.rt)
                c1, s1, r1 = proc_cpu_seconds(pid), cpu_times(), run_delay_seconds(pid)
                h1 = latency_buckets(tb)
                if recorder is not None:
                    recorder.send_signal(2)
                    recorder.wait(60)
                    results["perf_report"] = perf_report(data)
                if not lma.alive():
                    raise RuntimeError(f"mip6 lma exited: {lma.log_text()[-2000:]}")
                step = res["steps"][0]
                cpu = c1 - c0
                step["lma_cpu_seconds"] = round(cpu, 3)
                step["lma_internal_latency_us"] = bucket_quantiles(h0, h1)
                step["lma_runqueue_wait_seconds"] = round(r1[0] - r0[0], 4)
                step["lma_scheduled_in"] = r1[1] - r0[1]
                step["loadavg_1min_before"] = load0
                step["cpu"] = cpu_delta(s0, s1)
                step["lma_us_per_accepted_pbu"] = cpu / step["accepted"] * 1e6 if step["accepted"] and cpu > 0 else None
                step["accepted_per_lma_cpu_second"] = step["accepted"] / cpu if cpu > 0 else None
                results["steps"].append(step)
            time.sleep(0.5)  # the state file is written 200 ms after the last change
            results["lma_status"] = lma.status()
            for s in results["steps"]:
                s["acceptedPerCompletionSecond"] = s["accepted"] / s["completionSeconds"] if s["completionSeconds"] else 0
            results["max_accepted_per_second"] = max((s["acceptedPerCompletionSecond"] for s in results["steps"]), default=0)
            below = [s for s in results["steps"] if s["offeredRate"] > 0 and s["missing"] == 0
                     and s["accepted"] == s["sent"] and s["acceptedPerSecond"] >= 0.98 * s["offeredRate"]]
            results["below_saturation"] = max(below, key=lambda s: s["offeredRate"]) if below else None
            at10k = [s for s in results["steps"] if s["offeredRate"] == 10000]
            results["at_10000"] = at10k[0] if at10k else None
        finally:
            lma.stop()
            lma.clear_state()
            shutil.rmtree(work, ignore_errors=True)

    c = results["generator_ceiling"]
    print(f"generator alone (own veth, peer drops, send only): {c['sent']} PBUs of {results['frame_bytes']} B "
          f"in {c['sendSeconds']:.3f} s = {c['sendRate']:,.0f} PBU/s")
    print(f"LMA on CPU {args.lma_cpu} (TC), generator on CPU {args.gen_cpu}, {f'SCHED_FIFO {args.rt}' if args.rt else f'nice {args.nice}'}, "
          f"{'refreshes of' if args.refresh else 'new registrations,'} {nodes} mobile nodes in the policy "
          f"(policy written in {results['policy_write_seconds']} s, LMA ready {results['lma_start_seconds']} s after start)\n")
    hdr = ["offered", "sent", "send/s", "PBAs", "accepted", "other", "missing", "accepted/s", "PBA arr/s",
           "p50 us", "p99 us", "p99.9 us", "max us", "LMA p50/p99 us", "LMA cpu s", "LMA runq ms", "LMA us/PBU",
           "PBU/LMA-cpu-s", "load"]
    rows = []
    for s in results["steps"]:
        other = {k: v for k, v in s["bindingAcksByStatus"].items() if k != "0"}
        rows.append(["max" if s["offeredRate"] == 0 else f"{s['offeredRate']:.0f}", str(s["sent"]), f"{s['sendRate']:.0f}",
                     str(s["bindingAcks"]), str(s["accepted"]),
                     " ".join(f"{k}:{v}" for k, v in sorted(other.items())) or "-", str(s["missing"]),
                     f"{s['acceptedPerSecond']:.0f}", f"{s['baArrivalRate']:.0f}", f"{s['p50Microseconds']:.0f}",
                     f"{s['p99Microseconds']:.0f}", f"{s['p999Microseconds']:.0f}", f"{s['maxMicroseconds']:.0f}",
                     "<={}/<={}".format(s["lma_internal_latency_us"]["p50"], s["lma_internal_latency_us"]["p99"]),
                     f"{s['lma_cpu_seconds']:.2f}", f"{s['lma_runqueue_wait_seconds'] * 1000:.1f}",
                     f"{s['lma_us_per_accepted_pbu']:.2f}" if s["lma_us_per_accepted_pbu"] else "-",
                     f"{s['accepted_per_lma_cpu_second']:.0f}" if s["accepted_per_lma_cpu_second"] else "-",
                     f"{s['loadavg_1min_before']:.1f}"])
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(hdr)]
    print("  ".join(h.rjust(w) for h, w in zip(hdr, widths)))
    for r in rows:
        print("  ".join(v.rjust(w) for v, w in zip(r, widths)))
    st = results["lma_status"]
    dp = st.get("dataplane", {})
    print(f"\nLMA counters: PBUs {st['proxyBindingUpdates']}, PBAs {st['acksByStatus']}, bindings {st['bindings']}, "
          f"dropped {st['dropped'] or '-'}, send failures {st['events'].get('send_failures')}, "
          f"punt ring full {dp.get('drop_mh_ring_full', 0)}, rate-limited {dp.get('drop_punt_rate_limited', 0)}"
          f"+{dp.get('drop_punt_mag_rate_limited', 0)}")
    print("(LMA p50/p99: the daemon's own histogram, punt -> PBA handed to the kernel, as bucket bounds; LMA runq: "
          "time its threads were runnable but waiting for the CPU (schedstat); load: 1-minute load average before the "
          "step, of a 2-CPU machine others build on)")
    print(f"accepted PBU/s at saturation: {results['max_accepted_per_second']:,.0f} (target >= 50,000)")
    t = results["at_10000"]
    if t:
        print(f"at 10,000 PBU/s offered: {t['accepted']}/{t['sent']} accepted, p50 {t['p50Microseconds']:.0f} us, "
              f"p99 {t['p99Microseconds']:.0f} us (target p99 < 1,000 us)")
    if "perf_report" in results:
        print(f"\nperf record of the LMA at {args.perf_rate} PBU/s:\n{results['perf_report']}")
    Path(args.output).write_text(json.dumps(results, indent=2))
    print(f"\nwritten to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
