"""The second part of scripts/demo (issue 12): no single point of failure.

Three `mip6 ha` replicas share their bindings through a 3-member etcd and announce the
anycast home prefix over BGP with BFD (BIRD2) to an ECMP router (testbed/cluster.py); a
real `mip6 mn` registers through one of them and every replica has the binding. Then,
with 1000 datagrams/s each way, the replica carrying the stream dies without a word, and
another stops gracefully: the outages, and the mobile node never registers again.
"""

from __future__ import annotations

import time
from pathlib import Path

from testbed.cluster import REPLICAS, ClusterTestbed, Replica
from testbed.harness import MobileNodeDaemon, UdpStream, counter
from testbed.stream import summary


def run(tag: str, binary: Path, logdir: Path, step) -> None:
    tb = ClusterTestbed(tag)
    replicas = {n: Replica(tb, n, binary, logdir) for n in REPLICAS}
    mn = MobileNodeDaemon(tb, binary, logdir / f"mip6-demo-{tag}-mn.log", interfaces=(tb.MN_IF1, tb.MN_IF2), log_level="info")
    try:
        tb.__enter__()
        step(f"cluster testbed up: 3 replicas, each with BIRD2; a router with ECMP + BFD 100 ms x 3; etcd "
             f"{', '.join(tb.ETCD.values())}")
        for r in replicas.values():
            r.start()
        print(f"router's routes to {tb.HOME_PREFIX}: next hops {', '.join(tb.wait_nexthops(3))} (anycast, one per replica)")
        mn.start()
        st = mn.wait_registered(tb.COA1, 10)
        print(f"mobile node registered from {tb.COA1}: BU -> BA {st['counters'].get('lastRegistrationMs')} ms "
              "(committed to etcd before the BA left)")
        time.sleep(0.2)
        for n, r in replicas.items():
            b = r.binding(tb.HOA) or {}
            print(f"  ha{n}: {tb.HOA} -> {b.get('careOfAddress')} seq {b.get('sequence')} "
                  f"(store: {(r.state() or {}).get('store', {}).get('counters', {})})")

        def under_streams(what: str, action) -> None:
            bus0 = counter(mn.status(), "counters.busSent")
            down = UdpStream(tb, rate=1000).start()
            up = UdpStream(tb, dst=tb.CN, src=tb.HOA, src_node="mn", dst_node="cn", port=5556, rate=1000).start()
            time.sleep(0.5)
            grew = {n: (r.binding(tb.HOA) or {}).get("packetsToMN", 0) for n, r in replicas.items()}
            action(grew)
            time.sleep(1.5)
            rd, ru = down.stop(), up.stop()
            print(f"{what}\n  CN -> HoA: {summary(rd)}\n  HoA -> CN: {summary(ru)}\n"
                  f"  BUs the mobile node sent meanwhile: {counter(mn.status(), 'counters.busSent') - bus0}")

        step("1000 datagrams/s each way; the replica carrying CN -> HoA dies silently (SIGKILL + all its packets dropped)")

        def die(before):
            after = {n: (r.binding(tb.HOA) or {}).get("packetsToMN", 0) for n, r in replicas.items()}
            victim = max(after, key=lambda n: after[n] - before[n])
            tb.run(f"ha{victim}", "nft -f - <<'X'\ntable inet freeze {\n chain i { type filter hook input priority -500; policy drop; }\n"
                                  " chain o { type filter hook output priority -500; policy drop; }\n"
                                  " chain f { type filter hook forward priority -500; policy drop; }\n}\nX")
            tb.run(f"ha{victim}", ["tc", "filter", "del", "dev", tb.HA_IF, "ingress"], check=False)
            replicas[victim].kill()
            tb.stop(tb.bird.pop(f"ha{victim}"), sig=9)
            die.victim = victim
        under_streams("the router's BFD took it out of the ECMP set; the others already had the binding:", die)

        step("another replica stops gracefully (SIGTERM: withdraw, keep forwarding 300 ms, exit)")
        other = next(n for n in REPLICAS if n != die.victim)
        under_streams(f"ha{other} withdrew first:", lambda _: replicas[other].stop())
        print(f"router's next hops now: {', '.join(tb.router_nexthops()) or 'none'}")
    finally:
        mn.stop()
        for r in replicas.values():
            r.stop()
        tb.__exit__(None, None, None)
