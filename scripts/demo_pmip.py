"""The third part of scripts/demo (issue 13): Proxy Mobile IPv6 for a host that runs nothing.

`mip6 lma` and two `mip6 mag`s (testbed/pmip.py); a plain Linux host (RA + SLAAC, no mip6)
attaches to MAG1, gets its /64 from the LMA through the MAG, talks to the correspondent
through the tunnel, then moves to MAG2 and back with 1000 datagrams/s each way: it keeps its
address and its router, and the outage is what the MAGs and the LMA take to notice and
re-route.
"""

from __future__ import annotations

import time
from pathlib import Path

from testbed.harness import UdpStream, ping, wait_for
from testbed.pmip import LMA, MAG, PmipTestbed
from testbed.stream import summary


def run(tag: str, binary: Path, logdir: Path, step) -> None:
    tb = PmipTestbed(tag)
    procs = []
    try:
        tb.__enter__()
        tb.policy_path = logdir / f"mip6-demo-{tag}-pmip.policy"
        tb.policy_path.write_text(tb.policy())
        step("Proxy Mobile IPv6: correspondent, router, LMA, MAG1, MAG2, and a plain Linux host on a bridge "
             "whose MAG ports act as the radio")
        print(tb.policy_path.read_text().rstrip())
        procs.append(tb.start_lma(binary, logdir / f"mip6-demo-{tag}-lma.log"))

        def status(n: int) -> dict:
            return tb.mag_status(binary, n)

        def registered(n: int) -> bool:
            return any(e["state"] == "registered" and e["installed"] for e in status(n)["status"]["entries"])

        for n in (1, 2):
            procs.append(tb.start_mag(binary, n, logdir / f"mip6-demo-{tag}-mag{n}.log"))
        print(f"mip6 lma at {LMA}; mip6 mag at {MAG[1]} and {MAG[2]}, both access links fe80::1 / 02:00:5e:00:53:01")

        step("the host's port on MAG1 comes up: MAG1 pings all-nodes, registers the host's MAC, then sends the RA")
        t0 = time.monotonic()
        tb.move_to(1)
        wait_for(lambda: registered(1), 10)
        t_reg = time.monotonic() - t0
        address = tb.wait_mn_address()
        print(f"registered {t_reg * 1000:.0f} ms after carrier up (MAG1: first PBU -> PBA "
              f"{status(1)['status']['counters'].get('lastRegistrationMs')} ms); the host's address {address} usable "
              f"{time.monotonic() - t0:.2f} s after carrier up (its own DAD takes about a second)")
        print(tb.run("mn", ["ip", "-6", "route", "show", "default"]).stdout.rstrip())
        received, _ = ping(tb, "mn", tb.CN, count=3, echo=False)
        print(f"host -> CN through MAG1 and the LMA: {received}/3 replies")

        for to in (2, 1):
            step(f"1000 datagrams/s each way; the host moves to MAG{to}")
            down = UdpStream(tb, dst=address, rate=1000, src_node="cn", dst_node="mn", port=5801).start()
            up = UdpStream(tb, dst=tb.CN, rate=1000, src_node="mn", dst_node="cn", port=5802, src=address).start()
            time.sleep(0.5)
            tb.move_to(to)
            wait_for(lambda: registered(to), 5)
            time.sleep(0.7)
            rd, ru = down.stop(), up.stop()
            print(f"  CN -> host: {summary(rd)}\n  host -> CN: {summary(ru)}")
            print(f"  MAG{to}: first PBU -> PBA {status(to)['status']['counters'].get('lastRegistrationMs')} ms; "
                  f"the host kept {tb.wait_mn_address()}")
        step("mip6 mag status (MAG1) and mip6 lma bindings")
        print(tb.run("mag1", tb.mag_cli(binary, 1, "status")).stdout.rstrip())
        print(tb.run("lma", tb.lma_cli(binary, "bindings")).stdout.rstrip())
    finally:
        for p in procs:
            PmipTestbed.stop(p)
        tb.__exit__(None, None, None)
