"""A scapy stand-in for the home agent, used only to test the test tools.

It lets test_testbed.py check testbed.scapy_mn without the real daemon, and
it builds and parses Mobility Headers with scapy's own MIP6 layers, so
scapy_mn's hand-written codec is checked against an independent one.

    ip netns exec <tag>-ha /usr/bin/python3 Tests/e2e/fake_ha.py answer --count 1 [--status 0]
    ip netns exec <tag>-ha /usr/bin/python3 Tests/e2e/fake_ha.py tunnel --coa C --hoa A --cn X

Prints "READY" on stderr once listening, one JSON object on stdout at the end.
"""

from __future__ import annotations

import argparse
import json
import select
import sys
import time

from scapy.config import conf
from scapy.layers.inet6 import (HAO, ICMPv6EchoReply, ICMPv6EchoRequest, IPv6, IPv6ExtHdrDestOpt,
                                IPv6ExtHdrRouting, MIP6MH_BA, MIP6MH_BE, MIP6MH_BU, MIP6MH_Generic,
                                in6_chksum)
from scapy.layers.l2 import Ether

HA = "2001:db8:1::a"
ROUTER_MAC = "02:00:00:00:01:01"   # br-home in testbed.topology


def frames(sock, timeout):
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([sock.ins], [], [], left)[0]:
            return
        _cls, data, _ts = sock.recv_raw(65535)
        if data:
            yield Ether(data)


def find_hao(pkt) -> str | None:
    d = pkt.getlayer(IPv6ExtHdrDestOpt)
    for opt in (d.options if d else []):
        if isinstance(opt, HAO):
            return opt.hoa
    return None


def cmd_answer(args, sock, mac) -> dict:
    """Answer Binding Updates with a BA carrying a Type 2 routing header (and other MH types with a BE)."""
    seen = []
    print("READY", file=sys.stderr, flush=True)
    for eth in frames(sock, args.timeout):
        ip = eth.getlayer(IPv6)
        if ip is None or ip.dst != HA or ip.getlayer(MIP6MH_BU) is None and ip.getlayer(MIP6MH_Generic) is None:
            continue
        mh = ip.getlayer(MIP6MH_BU) or ip.getlayer(MIP6MH_Generic)
        hoa = find_hao(ip)
        # Verify the checksum with scapy: rebuild with the HAO as the only option
        # (scapy only substitutes the home address in that case).
        raw_mh = bytes(mh)
        zeroed = raw_mh[:4] + b"\0\0" + raw_mh[6:]
        u = IPv6(src=ip.src, dst=ip.dst) / IPv6ExtHdrDestOpt(options=[HAO(hoa=hoa)]) / MIP6MH_Generic()
        expect = in6_chksum(135, u[MIP6MH_Generic], zeroed)
        rec = {"src": ip.src, "hoa": hoa, "mh_type": raw_mh[2], "checksum": mh.cksum,
               "checksum_expected": expect, "hlim": ip.hlim}
        if isinstance(mh, MIP6MH_BU):
            rec.update(seq=mh.seq, lifetime_units=mh.mhtime, flags=int(mh.flags))
            ba = MIP6MH_BA(status=args.status, seq=mh.seq, mhtime=min(mh.mhtime, args.max_units))
            reply = (Ether(src=mac, dst=ROUTER_MAC) / IPv6(src=HA, dst=ip.src)
                     / IPv6ExtHdrRouting(type=2, segleft=1, addresses=[hoa]) / ba)
        else:
            reply = (Ether(src=mac, dst=ROUTER_MAC) / IPv6(src=HA, dst=ip.src)
                     / MIP6MH_BE(status=2, ha=hoa or "::"))
        if args.corrupt_reply:
            b = bytearray(bytes(reply))
            b[-1] ^= 0xFF
            sock.outs.send(bytes(b))
        else:
            sock.outs.send(bytes(reply))
        seen.append(rec)
        if len(seen) >= args.count:
            break
    return {"received": seen}


def cmd_tunnel(args, sock, mac) -> dict:
    """Send one tunneled echo request to the care-of address and wait for the reverse-tunneled reply."""
    req = (Ether(src=mac, dst=ROUTER_MAC) / IPv6(src=HA, dst=args.coa, hlim=64)
           / IPv6(src=args.cn, dst=args.hoa, hlim=args.inner_hlim)
           / ICMPv6EchoRequest(id=0x4D36, seq=args.seq, data=b"mip6-testbed"))
    sock.outs.send(bytes(req))
    for eth in frames(sock, args.timeout):
        ip = eth.getlayer(IPv6)
        if ip is None or ip.src != args.coa or ip.dst != HA or ip.nh != 41:
            continue
        inner = ip.payload
        rep = inner.getlayer(ICMPv6EchoReply)
        if not isinstance(inner, IPv6) or rep is None:
            continue
        # scapy recomputes the ICMPv6 checksum over the inner header's pseudo-header.
        rebuilt = IPv6(bytes(inner))
        got = rebuilt[ICMPv6EchoReply].cksum
        del rebuilt[ICMPv6EchoReply].cksum
        expect = IPv6(bytes(rebuilt))[ICMPv6EchoReply].cksum
        return {"reply": {"outer_src": ip.src, "outer_dst": ip.dst, "outer_hlim": ip.hlim,
                          "inner_src": inner.src, "inner_dst": inner.dst, "inner_hlim": inner.hlim,
                          "id": rep.id, "seq": rep.seq, "data": bytes(rep.data).decode(errors="replace"),
                          "checksum_ok": got == expect}}
    return {"reply": None}


def main() -> int:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("answer")
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--status", type=int, default=0)
    p.add_argument("--max-units", type=int, default=0xFFFF)
    p.add_argument("--corrupt-reply", action="store_true")
    p.add_argument("--timeout", type=float, default=5)
    p = sub.add_parser("tunnel")
    p.add_argument("--coa", required=True)
    p.add_argument("--hoa", required=True)
    p.add_argument("--cn", required=True)
    p.add_argument("--seq", type=int, default=1)
    p.add_argument("--inner-hlim", type=int, default=63)
    p.add_argument("--timeout", type=float, default=3)
    args = ap.parse_args()
    conf.verb = 0
    sock = conf.L2socket(iface="ha0")
    with open("/sys/class/net/ha0/address") as f:
        mac = f.read().strip()
    out = cmd_answer(args, sock, mac) if args.cmd == "answer" else cmd_tunnel(args, sock, mac)
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
