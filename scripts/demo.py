#!/usr/bin/python3
"""Mobile IPv6 home agent demo, in network namespaces (run as root from anywhere):

    sudo scripts/demo [--tag m6] [--keep]     (installs, builds, then runs this file)

Builds the testbed (testbed/topology.py), starts `mip6 ha` in the home agent's
namespace, then plays the mobile node with scapy (testbed/scapy_mn.py): register
from foreign link 1, ping the home address from the correspondent, move to
foreign link 2, ping again, de-register. --keep leaves the topology and the
daemon running for poking around; `python3 -m testbed down --tag m6` clears it.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from testbed import Testbed, TestbedError  # noqa: E402
from testbed.harness import HarnessError, HomeAgent, MobileNode, default_binary, ping  # noqa: E402


def step(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tag", default="m6", help="namespace prefix (default m6)")
    ap.add_argument("--keep", action="store_true", help="leave the testbed and the daemon running")
    ap.add_argument("--bin", default=os.environ.get("MIP6_BIN", str(default_binary())))
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("the demo needs root (network namespaces, XDP)", file=sys.stderr)
        return 1

    tb = Testbed(args.tag)
    log = Path(tempfile.gettempdir()) / f"mip6-demo-{args.tag}.log"
    ha = HomeAgent(tb, Path(args.bin), log, log_level="info")
    mn = MobileNode(tb, echo=False)
    try:
        tb.__enter__()   # up, and down on SIGTERM/SIGINT
        step(f"testbed up in {tb.up_seconds:.2f} s: {', '.join(tb.namespaces)}")
        print(f"CN {tb.CN} -- router -- home link {tb.HOME_PREFIX} (HA {tb.HA}); "
              f"MN home address {tb.HOA}, care-of {tb.COA1} / {tb.COA2}")

        step("start the home agent")
        ha.start()
        print(f"ready in {ha.ready_seconds:.2f} s; log: {log}")

        step(f"mobile node registers from foreign link 1 ({tb.COA1})")
        ba = mn.register(seq=1, lifetime=120)
        print(f"Binding Acknowledgement: status {ba.get('status')}, lifetime {ba.get('lifetime')} s, "
              f"after {ba.get('rtt_ms')} ms (includes DAD for the home address)")
        print(ha.cli("bindings", "list", "--bpffs", ha.bpffs).stdout.rstrip())

        step(f"correspondent pings the home address {tb.HOA}; the HA tunnels to {tb.COA1}")
        r = mn.responder(tb.MN_IF1, duration=30)
        ping(tb, "cn", tb.HOA, count=3)
        seen = r.finish()
        print(f"MN saw {seen['tunneled_requests']} tunneled requests on mn-f1 "
              f"(outer hop limits {seen['outer_hlim']}, inner {seen['inner_hlim']})")

        step(f"mobile node moves to foreign link 2 ({tb.COA2})")
        ba = mn.register(seq=2, lifetime=120, iface=tb.MN_IF2)
        print(f"Binding Acknowledgement: status {ba.get('status')} after {ba.get('rtt_ms')} ms")
        r = mn.responder(tb.MN_IF2, duration=30)
        ping(tb, "cn", tb.HOA, count=3)
        seen = r.finish()
        print(f"MN saw {seen['tunneled_requests']} tunneled requests on mn-f2")
        print(ha.cli("bindings", "list", "--bpffs", ha.bpffs).stdout.rstrip())

        step("counters")
        print(ha.cli("stats", "--bpffs", ha.bpffs, "--state-dir", ha.state_dir).stdout.rstrip())

        if args.keep:
            step("kept running")
            print(f"daemon pid {ha.proc.pid}; try: ip netns exec {tb.ns('cn')} ping -6 {tb.HOA}\n"
                  f"stop with: kill {ha.proc.pid}; /usr/bin/python3 -m testbed down --tag {args.tag}")
            return 0

        step("mobile node de-registers (lifetime 0)")
        ba = mn.register(seq=3, lifetime=0, iface=tb.MN_IF2)
        print(f"Binding Acknowledgement: status {ba.get('status')}")
        received, _ = ping(tb, "cn", tb.HOA, count=2, echo=False)
        print(f"pings answered now: {received} of 2")
        print(ha.cli("bindings", "list", "--bpffs", ha.bpffs).stdout.rstrip())
    except (HarnessError, TestbedError) as e:
        print(f"\ndemo failed: {e}", file=sys.stderr)
        return 1
    finally:
        if not args.keep:
            code = ha.stop()
            if tb.exists():
                ha.clear_state()
            tb.__exit__(None, None, None)
            if code is not None:
                print(f"\nhome agent exited {code}; testbed down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
