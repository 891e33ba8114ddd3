"""A test mobile access gateway (RFC 5213) built on scapy's layer-2 socket: the far end of
`mip6 lma` in e2e tests, independent of our Swift code.

Runs inside a namespace, from the repository root:

    ip netns exec m6-mn /usr/bin/python3 -m testbed.scapy_mag pbu --iface mn-f1 \\
        --mag 2001:db8:f1::100 --lma 2001:db8:1::a --router-mac 02:00:00:00:f1:01 \\
        --nai mn1@pmip.example --mac 02:00:00:00:0a:01 --seq 1 --lifetime 60

and prints exactly one JSON object on stdout.

Commands
  pbu     send a Proxy Binding Update (A|P, MN-ID, HNP, HI, ATT, MN-LL-ID, Timestamp laid out
          byte by byte with RFC 5213 §8's alignments; any option can be left out) and wait for
          the Proxy Binding Acknowledgement: its fields, options and checksum verdict.
  uplink  send a datagram through the reverse tunnel: IPv6 (MAG -> LMA) / IPv6 (inner
          source in the home network prefix -> destination) / UDP.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import struct
import sys
import time

from scapy.all import AsyncSniffer, Ether, IPv6, Raw, UDP, conf, sendp  # noqa: E402

# The Mobility Header builders and checksum of the scapy mobile node (byte by byte, not
# scapy's MIP6 layers): one implementation for both test peers.
from testbed.scapy_mn import IPPROTO_MH, a2b, align, checksum_ok, mn_id_option, mobility_header, set_checksum

conf.verb = 0


def option(otype: int, data: bytes) -> bytes:
    return bytes([otype, len(data)]) + data


def pad_to(buf: bytearray, multiple: int, offset: int) -> None:
    """RFC 6275 §6.2: Pad1/PadN so the next option lands at offset ≡ `offset` (mod `multiple`)."""
    buf += align(len(buf), multiple, offset)


def pbu_options(nai: str, prefixes: list[str], hi: int, att: int, mac: bytes, timestamp: int, leave_out: set[int]) -> bytes:
    """Options from MH offset 12, each at its RFC 5213 §8 alignment, padded to 8 octets."""
    mh = bytearray(12)  # the fixed part, only for the offsets
    if 8 not in leave_out:
        mh += mn_id_option(nai.encode())                              # RFC 4283: no alignment
    if 22 not in leave_out:
        for p in prefixes:
            net = ipaddress.IPv6Network(p)
            pad_to(mh, 8, 4)                                          # §8.3: 8n+4
            mh += option(22, bytes([0, net.prefixlen]) + net.network_address.packed)
    if 23 not in leave_out:
        mh += option(23, bytes([0, hi]))                              # §8.4: none
    if 24 not in leave_out:
        mh += option(24, bytes([0, att]))                             # §8.5: none
    if 25 not in leave_out:
        pad_to(mh, 8, 6)
        mh += option(25, b"\x00\x00" + mac)                           # §8.6
    if 27 not in leave_out:
        pad_to(mh, 8, 2)                                              # §8.8: 8n+2
        mh += option(27, struct.pack("!Q", timestamp))
    return bytes(mh[12:])  # mobility_header pads the end to 8 octets


def mh_packet(src: str, dst: str, mh_type: int, body: bytes) -> bytes:
    """IPv6 + Mobility Header with the checksum over the pseudo-header (RFC 6275 §6.1.1)."""
    mh = mobility_header(mh_type, body)
    set_checksum(mh, src, dst)
    return bytes(IPv6(src=src, dst=dst, nh=IPPROTO_MH, hlim=64) / Raw(bytes(mh)))


def parse_options(data: bytes) -> dict:
    out: dict = {"types": []}
    i = 0
    while i < len(data):
        t = data[i]
        if t == 0:
            i += 1
            continue
        ln = data[i + 1]
        v = data[i + 2:i + 2 + ln]
        out["types"].append(t)
        if t == 8:
            out["nai"] = v[1:].decode(errors="replace")
        elif t == 22:
            out.setdefault("prefixes", []).append(f"{ipaddress.IPv6Address(v[2:18])}/{v[1]}")
        elif t == 23:
            out["hi"] = v[1]
        elif t == 24:
            out["att"] = v[1]
        elif t == 25:
            out["mn_ll_id"] = v[2:].hex()
        elif t == 27:
            out["timestamp"] = struct.unpack("!Q", v)[0]
        i += 2 + ln
    return out


def cmd_pbu(a) -> dict:
    seen: list = []  # AsyncSniffer.results is only filled at stop()
    sniffer = AsyncSniffer(iface=a.iface, filter=f"ip6 and src {a.lma} and dst {a.mag}", store=False, prn=seen.append)
    sniffer.start()
    time.sleep(0.3)
    # The Timestamp is taken just before sending: the LMA allows 300 ms (RFC 5213 §5.5).
    ts = int(time.time() * 65536) + int(a.timestamp_offset_ms * 65.536)
    mac = bytes.fromhex(a.mac.replace(":", ""))
    body = struct.pack("!HHH", a.seq, 0x8000 | 0x0200, a.lifetime // 4)
    body += pbu_options(a.nai, a.prefix, a.hi, 3, mac, ts, set(a.leave_out))
    pkt = mh_packet(a.mag, a.lma, 5, body)
    sent_at = time.time()
    sendp(Ether(dst=a.router_mac) / IPv6(pkt), iface=a.iface)
    if a.replay:  # the same bytes again at once: a replay within the validity window
        time.sleep(0.05)
        sendp(Ether(dst=a.router_mac) / IPv6(pkt), iface=a.iface)
    wanted = 2 if a.replay else 1
    deadline = time.time() + a.timeout
    answers = []
    while time.time() < deadline and len(answers) < wanted:
        answers = []
        for p in list(seen):
            raw = bytes(p[IPv6])
            if raw[6] != 135 or raw[40 + 2] != 6:
                continue
            mh = raw[40:]
            ok = checksum_ok(a2b(a.lma), a2b(a.mag), IPPROTO_MH, mh)
            answers.append({"status": mh[6], "flags": mh[7], "seq": struct.unpack("!H", mh[8:10])[0],
                            "lifetime": struct.unpack("!H", mh[10:12])[0], "checksum_ok": ok, "sent_timestamp": ts,
                            "ms": round((time.time() - sent_at) * 1000, 1), "options": parse_options(mh[12:]), "hex": raw.hex()})
        time.sleep(0.02)
    sniffer.stop()
    if len(answers) < wanted:
        return {"error": f"{len(answers)} PBA(s) of {wanted} within {a.timeout} s"}
    out = answers[-1]
    if a.replay:
        out["first_status"] = answers[0]["status"]
    return out


def cmd_uplink(a) -> dict:
    inner = IPv6(src=a.inner_src, dst=a.inner_dst, hlim=64) / UDP(sport=40000, dport=a.port) / Raw(a.payload.encode())
    sendp(Ether(dst=a.router_mac) / IPv6(src=a.mag, dst=a.lma, nh=41, hlim=64) / inner, iface=a.iface, count=a.count)
    return {"sent": a.count}


def main() -> None:
    ap = argparse.ArgumentParser(prog="scapy_mag")
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("pbu", "uplink"):
        s = sub.add_parser(name)
        s.add_argument("--iface", required=True)
        s.add_argument("--mag", required=True)
        s.add_argument("--lma", required=True)
        s.add_argument("--router-mac", required=True)
    p = sub.choices["pbu"]
    p.add_argument("--nai", required=True)
    p.add_argument("--mac", required=True)
    p.add_argument("--prefix", action="append", default=[], help="HNP option value (repeat); ::/0 asks for one")
    p.add_argument("--seq", type=int, required=True)
    p.add_argument("--lifetime", type=int, default=60)
    p.add_argument("--hi", type=int, default=4)
    p.add_argument("--leave-out", type=int, action="append", default=[], help="option type to leave out (repeat)")
    p.add_argument("--timestamp-offset-ms", type=float, default=0)
    p.add_argument("--timeout", type=float, default=3)
    p.add_argument("--replay", action="store_true", help="send the PBU twice, 50 ms apart; report the second PBA")
    u = sub.choices["uplink"]
    u.add_argument("--inner-src", required=True)
    u.add_argument("--inner-dst", required=True)
    u.add_argument("--port", type=int, default=9999)
    u.add_argument("--payload", default="uplink")
    u.add_argument("--count", type=int, default=1)
    a = ap.parse_args()
    if a.cmd == "pbu" and not a.prefix:
        a.prefix = ["::/0"]
    try:
        out = cmd_pbu(a) if a.cmd == "pbu" else cmd_uplink(a)
    except Exception as e:  # one JSON line whatever happens
        out = {"error": f"{type(e).__name__}: {e}"}
    print(json.dumps(out))
    sys.exit(0)


if __name__ == "__main__":
    main()
