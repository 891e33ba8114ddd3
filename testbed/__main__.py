"""Manual control of the testbed.

    /usr/bin/python3 -m testbed up     [--tag m6] [-v]   build it (replacing leftovers of the tag)
    /usr/bin/python3 -m testbed down   [--tag m6]        remove it
    /usr/bin/python3 -m testbed status [--tag m6]        addresses, routes, XDP per namespace
    /usr/bin/python3 -m testbed exec NODE [--tag m6] -- CMD...
                      run CMD in node cn|rtr|ha|mn, seeing the testbed's bpffs at /sys/fs/bpf
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from .topology import Testbed, TestbedError


def _exit_on_signal(signum, _frame):
    raise SystemExit(128 + signum)   # up() cleans up on any exception


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m testbed", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=("up", "down", "status", "exec"))
    ap.add_argument("node", nargs="?", choices=Testbed.NODES, help="for exec")
    ap.add_argument("--tag", default="m6", help="namespace name prefix (default: m6)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every command")
    argv = list(sys.argv[1:] if argv is None else argv)
    cmd = argv[argv.index("--") + 1:] if "--" in argv else []
    args = ap.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    tb = Testbed(args.tag, verbose=args.verbose)

    try:
        if args.action == "up":
            # A signal in the middle of up() must not leave half a topology.
            for s in (signal.SIGTERM, signal.SIGHUP):
                signal.signal(s, _exit_on_signal)
            tb.up()
            print(f"testbed {args.tag!r} up in {tb.up_seconds:.2f} s: {' '.join(tb.namespaces)}")
            for note in tb.notes:
                print(f"note: {note}")
            print(f"home agent: python3 -m testbed exec ha --tag {args.tag} -- .build/release/mip6 ha "
                  f"--interface {tb.HA_IF} --address {tb.HA} --home-prefix {tb.HOME_PREFIX} "
                  f"--bpffs /sys/fs/bpf/mip6-{args.tag} --state-dir /run/mip6-{args.tag}")
            print(f"its pins from the host: .build/release/mip6 bindings list --bpffs {tb.BPFFS}/mip6-{args.tag}")
            print(f"mobile node: python3 -m testbed exec mn --tag {args.tag} -- .build/release/mip6 mn "
                  f"--home-address {tb.HOA} --home-agent {tb.HA} --interface {tb.MN_IF1} --interface {tb.MN_IF2} "
                  f"--bpffs /sys/fs/bpf/mip6-mn-{args.tag} --state-dir /run/mip6-mn-{args.tag}")
            print(f"anything else: ip netns exec {tb.ns('cn')} ping -6 {tb.COA1}")
        elif args.action == "exec":
            if not args.node or not cmd:
                ap.error("usage: exec NODE [--tag T] -- CMD...")
            os.execvp(tb.argv(args.node, cmd)[0], tb.argv(args.node, cmd))
        elif args.action == "down":
            tb.down()
            print(f"testbed {args.tag!r} down")
        else:
            have = tb.exists()
            if not have:
                print(f"testbed {args.tag!r} is not up")
                return 1
            for node in tb.NODES:
                if tb.ns(node) not in have:
                    print(f"== {tb.ns(node)}: missing")
                    continue
                print(f"== {tb.ns(node)}")
                print(tb.run(node, "ip -br link; ip -br -6 addr; ip -6 route", check=False).stdout.rstrip())
                if node == "rtr":
                    print("xdp on h-ha:", tb.xdp_info("rtr", tb.HA_PEER_IF))
                if node == "ha":
                    print("xdp on ha0:", tb.xdp_info("ha", tb.HA_IF))
    except TestbedError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if args.action == "up":
            tb.down()
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
