#!/usr/bin/python3
"""Mobile IPv6 demo in network namespaces (run as root from anywhere):

    sudo scripts/demo [--tag m6] [--keep]     (installs, builds, then runs this file)

Builds the testbed (testbed/topology.py), starts the home agent `mip6 ha` in its
namespace and the mobile node `mip6 mn` in the MN's (both foreign links up,
mn-f1 preferred), then: registration, ping both ways through the tunnel, TCP
throughput through the home agent (iperf3), a 1000 datagrams/s UDP stream to the
home address while mn-f1 goes down (the MN moves to mn-f2: outage and loss),
the binding cache and the MN's status. Then, unless --no-cluster (or --keep), the
second part (scripts/demo_cluster.py): three replicas sharing bindings through etcd behind
an anycast BGP/BFD router, one dying silently and one stopping gracefully under traffic;
then, unless --no-pmip, the third (scripts/demo_pmip.py): Proxy Mobile IPv6, an LMA and two
MAGs serving a plain Linux host that moves between them under traffic. Takes about 50 s. --keep leaves the
topology and both daemons running for poking around; `python3 -m testbed down
--tag m6` clears it. Ctrl-C cleans up too.
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

from testbed import Testbed, TestbedError  # noqa: E402
from testbed.harness import (HarnessError, HomeAgent, MobileNodeDaemon, UdpStream, default_binary,  # noqa: E402
                             iperf3, move_break_before_make, ping)
from testbed.stream import summary  # noqa: E402


def step(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tag", default="m6", help="namespace prefix (default m6)")
    ap.add_argument("--keep", action="store_true", help="leave the testbed and the daemons running")
    ap.add_argument("--bin", default=os.environ.get("MIP6_BIN", str(default_binary())))
    ap.add_argument("--no-cluster", action="store_true", help="skip the second part (replicas, etcd, BGP + BFD)")
    ap.add_argument("--no-pmip", action="store_true", help="skip the third part (Proxy Mobile IPv6: LMA, two MAGs, a plain host)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("the demo needs root (network namespaces, XDP, TC)", file=sys.stderr)
        return 1

    t_start = time.monotonic()
    tb = Testbed(args.tag)
    logdir = Path(tempfile.gettempdir())
    ha = HomeAgent(tb, Path(args.bin), logdir / f"mip6-demo-{args.tag}-ha.log", log_level="info")
    mn = MobileNodeDaemon(tb, Path(args.bin), logdir / f"mip6-demo-{args.tag}-mn.log", log_level="info",
                          interfaces=(tb.MN_IF1, tb.MN_IF2))
    stream: UdpStream | None = None
    ok = False
    try:
        tb.__enter__()   # up, and down on SIGTERM/SIGHUP
        step(f"testbed up in {tb.up_seconds:.2f} s: {', '.join(tb.namespaces)}")
        print(f"CN {tb.CN} -- router -- home link {tb.HOME_PREFIX} (home agent {tb.HA})\n"
              f"mobile node: home address {tb.HOA}; care-of {tb.COA1} on mn-f1 (preferred), {tb.COA2} on mn-f2")

        step("start the home agent")
        ha.start()
        print(f"ready in {ha.ready_seconds:.2f} s (XDP on {tb.HA_IF}); log: {ha.log_path}")

        step("start the mobile node: it registers from mn-f1")
        mn.start()
        st = mn.wait_registered(tb.COA1, timeout=10)
        t_reg = time.monotonic() - mn.started_at
        print(f"ready in {mn.ready_seconds:.2f} s (TC on {', '.join(mn.interfaces)}; {tb.HOA}/128 on lo); "
              f"log: {mn.log_path}")
        print(f"registered from {st['careOfAddress']} {t_reg:.2f} s after start: first BU -> BA "
              f"{st['counters'].get('lastRegistrationMs')} ms, of which about 1000 ms is the home agent's "
              f"DAD for the new home address; lifetime {st['grantedLifetime']} s, refresh in "
              f"{st['secondsToRefresh']} s")
        print(ha.cli("bindings", "list", "--bpffs", ha.bpffs).stdout.rstrip())

        step("ping both ways through the tunnel")
        received, _ = ping(tb, "cn", tb.HOA, count=3, echo=False)
        print(f"CN -> {tb.HOA}: {received}/3 replies")
        received, _ = ping(tb, "mn", tb.CN, count=3, echo=False, source=tb.HOA)
        print(f"MN (from {tb.HOA}) -> CN: {received}/3 replies")

        step("TCP CN -> home address through the home agent (iperf3, 3 s)")
        iperf3(tb, "mn", tb.HOA, "cn", seconds=3)

        step("1000 datagrams/s CN -> home address; mn-f1 goes down (break-before-make)")
        stream = UdpStream(tb, rate=1000).start()
        time.sleep(1.0)
        stream.mark("link_down")
        move = move_break_before_make(tb, mn, tb.MN_IF1, tb.COA2)
        time.sleep(1.0)
        res, stream = stream.stop(), None
        st = mn.status()
        print(f"re-registered from {tb.COA2}: BU -> BA {st['counters'].get('lastRegistrationMs')} ms "
              f"(seen in `mip6 mn status` {move['seconds'] * 1000:.0f} ms after the link went down)")
        lb, fa = res["last_before"], res["first_after"]
        print(f"outage: {res['outage_ms']:.1f} ms between the last datagram before (#{lb['seq']}, "
              f"{-res['last_before_to_link_down_ms']:+.1f} ms) and the first after (#{fa['seq']}, "
              f"{res['link_down_to_first_after_ms']:+.1f} ms), times from `ip link set mn-f1 down`; "
              f"{res['lost']} of {res['sent']} datagrams lost")
        print(f"stream: {summary(res)}")

        step("binding cache and mobile-node status")
        print(ha.cli("bindings", "list", "--bpffs", ha.bpffs).stdout.rstrip())
        print()
        print(mn.status_text() or json.dumps(mn.status(), indent=1))

        if args.keep:
            step("kept running")
            print(f"home agent pid {ha.proc.pid}, mobile node pid {mn.proc.pid}; try:\n"
                  f"  ip netns exec {tb.ns('cn')} ping -6 {tb.HOA}\n"
                  f"  /usr/bin/python3 -m testbed exec mn --tag {args.tag} -- {args.bin} mn status "
                  f"--state-dir {mn.state_dir} --bpffs {mn.bpffs}\n"
                  f"stop with: kill {mn.proc.pid} {ha.proc.pid}; /usr/bin/python3 -m testbed down --tag {args.tag}")
        ok = True
    except (HarnessError, TestbedError) as e:
        print(f"\ndemo failed: {e}", file=sys.stderr)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
    finally:
        if not (args.keep and ok):
            if stream is not None:
                stream.abort()
            mn_code = mn.stop()
            ha_code = ha.stop()
            if tb.exists():
                mn.clear_state()
                ha.clear_state()
            tb.__exit__(None, None, None)
            print(f"\nmobile node exited {mn_code}, home agent exited {ha_code}; testbed down "
                  f"({time.monotonic() - t_start:.1f} s so far)")
    if ok and not args.keep and not args.no_cluster:
        import demo_cluster
        try:
            demo_cluster.run((args.tag[:10] + "c"), Path(args.bin), logdir, step)
        except (HarnessError, TestbedError) as e:
            print(f"\ncluster demo failed: {e}", file=sys.stderr)
            return 1
        print(f"\ncluster testbed down ({time.monotonic() - t_start:.1f} s in all)")
    if ok and not args.keep and not args.no_pmip:
        import demo_pmip
        try:
            demo_pmip.run((args.tag[:10] + "p"), Path(args.bin), logdir, step)
        except (HarnessError, TestbedError) as e:
            print(f"\nPMIPv6 demo failed: {e}", file=sys.stderr)
            return 1
        print(f"\nPMIPv6 testbed down ({time.monotonic() - t_start:.1f} s in all)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
