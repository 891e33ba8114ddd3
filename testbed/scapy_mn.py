"""A test mobile node built on scapy's layer-2 socket.

Runs inside the MN namespace, from the repository root:

    ip netns exec m6-mn /usr/bin/python3 -m testbed.scapy_mn register \\
        --iface mn-f1 --coa 2001:db8:f1::100 --ha 2001:db8:1::a --hoa 2001:db8:1::100 \\
        --seq 1 --lifetime 60

and prints exactly one JSON object on stdout (diagnostics go to stderr).

Commands
  register   send a Binding Update (IPv6 / Destination Options with a Home
             Address option / Mobility Header) and wait for the Binding
             Acknowledgement, or, with --mh-type other than 5, a Binding Error.
  responder  the mobile node's end of the tunnel: answer tunneled ICMPv6 echo
             requests for the home address through the reverse tunnel.
  flood      send malformed Mobility Header packets to the home agent.
  send-ba    (from the HA namespace) send a Binding Acknowledgement to a care-of
             address, e.g. one with a sequence number the mobile node never sent.
  send-raw   send IPv6 packets given in hex (e.g. a captured Binding Update, byte
             for byte) and report any Mobility Header answered to --coa.
  bu-flood   send Binding Updates as fast as the AF_PACKET socket takes them, from
             one or many source /64s, with or without RFC 4285 options.

register and bu-flood take --spi/--nai/--key-hex to add the RFC 4285 options (MN-ID,
Replay Protection, MN-HA authentication), laid out exactly as the home agent's own
encoder does (Sources/ControlPlane/Authentication.swift); register then checks the
MN-HA authenticator of the BA it receives.

Why layer 2: this kernel has no Mobile IPv6. It drops any packet carrying a
Home Address option or a Type 2 routing header, and has no ip6tnl. So frames
are built whole and sent with scapy's AF_PACKET socket (the sending kernel never
parses them), and replies are read from the same socket, which sees them before
the receiving kernel drops them.

The Mobility Header is built and parsed here byte by byte (RFC 6275 §6.1) rather
than with scapy's MIP6 layers, so the tests control every field, including
broken ones, and check the home agent's checksums independently of scapy.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import ipaddress
import json
import random
import select
import signal
import socket
import struct
import subprocess
import sys
import time

from scapy.config import conf
from scapy.layers.inet6 import ICMPv6EchoReply, IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw

# --- protocol numbers (RFC 6275; see /work/shared/PROTOCOL.md) ---------------
IPPROTO_HOPOPTS, IPPROTO_ROUTING, IPPROTO_FRAGMENT = 0, 43, 44
IPPROTO_IPV6, IPPROTO_ICMPV6, IPPROTO_NONE, IPPROTO_DSTOPTS, IPPROTO_MH = 41, 58, 59, 60, 135
EXT_HEADERS = (IPPROTO_HOPOPTS, IPPROTO_ROUTING, IPPROTO_DSTOPTS)
ETH_P_IPV6 = 0x86DD

MH_BRR, MH_BU, MH_BA, MH_BE = 0, 5, 6, 7
OPT_PAD1, OPT_PADN, OPT_ALT_COA = 0, 1, 3
OPT_HOME_ADDRESS = 201  # 0xC9, in a Destination Options header
OPT_MN_ID, OPT_AUTH, OPT_REPLAY = 8, 9, 10  # RFC 4283 §3, RFC 4285 §5, §6
MN_ID_NAI, AUTH_MN_HA = 1, 1                # subtypes
AUTHENTICATOR_LEN = 12                      # First(96, HMAC_SHA1(...)), RFC 4285 §5.1
NTP_UNIX_OFFSET = 2_208_988_800             # seconds from 1900-01-01 to 1970-01-01
ICMPV6_ECHO_REQUEST, ICMPV6_ECHO_REPLY = 128, 129

BU_FLAGS = {"A": 0x8000, "H": 0x4000, "L": 0x2000, "K": 0x1000, "M": 0x0800, "R": 0x0400, "P": 0x0200}
BA_FLAGS = {"K": 0x80, "R": 0x40, "P": 0x20}

SO_BINDTODEVICE = 25


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def a2b(addr: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6, addr)


def b2a(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET6, raw)


# --- checksums ---------------------------------------------------------------
def inet_sum(data: bytes) -> int:
    """One's complement sum of 16-bit words, folded (not inverted)."""
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def pseudo_header(src: bytes, dst: bytes, length: int, nh: int) -> bytes:
    return src + dst + struct.pack("!I3xB", length, nh)


def upper_checksum(src: bytes, dst: bytes, nh: int, data: bytes) -> int:
    """Checksum to put in an upper-layer header whose checksum field is zero in `data`."""
    c = ~inet_sum(pseudo_header(src, dst, len(data), nh) + data) & 0xFFFF
    return c


def checksum_ok(src: bytes, dst: bytes, nh: int, data: bytes) -> bool:
    """`data` includes its checksum field: the sum over everything must be 0xFFFF."""
    return inet_sum(pseudo_header(src, dst, len(data), nh) + data) == 0xFFFF


# --- building ----------------------------------------------------------------
def pad_option(n: int) -> bytes:
    """n octets of padding as Pad1 / PadN (same encoding in MH and Destination Options)."""
    if n == 0:
        return b""
    if n == 1:
        return bytes([OPT_PAD1])
    return bytes([OPT_PADN, n - 2]) + bytes(n - 2)


def align(offset: int, n: int, m: int) -> bytes:
    """Padding that brings `offset` to the alignment requirement `n*k + m` (RFC 6275's "xn+y")."""
    return pad_option((m - offset) % n)


def dest_opts_hao(hoa: str, next_header: int = IPPROTO_MH) -> bytes:
    """Destination Options header holding a Home Address option (RFC 6275 §6.3, 8n+6)."""
    body = bytes([next_header, 0]) + align(2, 8, 6) + bytes([OPT_HOME_ADDRESS, 16]) + a2b(hoa)
    assert len(body) % 8 == 0
    return bytes([next_header, len(body) // 8 - 1]) + body[2:]


def mobility_header(mh_type: int, data: bytes, options: bytes = b"") -> bytearray:
    """Mobility Header with checksum 0, padded to a multiple of 8 octets."""
    mh = bytearray([IPPROTO_NONE, 0, mh_type, 0, 0, 0]) + data + options
    mh += pad_option(-len(mh) % 8)
    mh[1] = len(mh) // 8 - 1
    return mh


def bu_data(seq: int, flags: int, lifetime_units: int) -> bytes:
    return struct.pack("!HHH", seq & 0xFFFF, flags & 0xFFFF, lifetime_units & 0xFFFF)


def alt_coa_option(offset: int, addr: str) -> bytes:
    """Alternate Care-of Address option (8n+6) preceded by the padding it needs at `offset`."""
    return align(offset, 8, 6) + bytes([OPT_ALT_COA, 16]) + a2b(addr)


# --- RFC 4285 MN-HA authentication ---------------------------------------------
def ntp_timestamp(unix_time: float | None = None) -> int:
    """A 64-bit NTP timestamp (RFC 1305, 32.32 seconds since 1900) for `unix_time` (default now)."""
    t = time.time() if unix_time is None else unix_time
    sec = int(t // 1)
    frac = min(0xFFFFFFFF, int((t - sec) * (1 << 32)))
    return ((sec + NTP_UNIX_OFFSET) & 0xFFFFFFFF) << 32 | frac


def ntp_to_unix(ts: int) -> float:
    """Inverse of ntp_timestamp (NTP era 0)."""
    return (ts >> 32) - NTP_UNIX_OFFSET + (ts & 0xFFFFFFFF) / (1 << 32)


def mn_id_option(nai: bytes) -> bytes:
    """RFC 4283 §3 Mobile Node Identifier option, subtype NAI (no alignment requirement)."""
    return bytes([OPT_MN_ID, 1 + len(nai), MN_ID_NAI]) + nai


def replay_option(timestamp: int) -> bytes:
    """RFC 4285 §6 Mobility Message Replay Protection option (8n+2)."""
    return bytes([OPT_REPLAY, 8]) + struct.pack("!Q", timestamp & 0xFFFFFFFFFFFFFFFF)


def auth_option(spi: int, authenticator: bytes = bytes(AUTHENTICATOR_LEN), subtype: int = AUTH_MN_HA) -> bytes:
    """RFC 4285 §5 Mobility Message Authentication option (4n+1): subtype, SPI, authenticator."""
    return bytes([OPT_AUTH, 5 + len(authenticator), subtype]) + struct.pack("!I", spi) + authenticator


def mn_ha_authenticator(key: bytes, coa: str, hoa: str, mh_data: bytes) -> bytes:
    """RFC 4285 §5.1: First(96, HMAC_SHA1(key, care-of address | home address | MH data))."""
    return hmac.new(key, a2b(coa) + a2b(hoa) + mh_data, hashlib.sha1).digest()[:AUTHENTICATOR_LEN]


def authenticated_mh(mh_type: int, data: bytes, *, coa: str, hoa: str, spi: int, key: bytes,
                     nai: bytes | None, timestamp: int | None, checksum_src: str, checksum_dst: str,
                     alt_coa: str | None = None) -> bytearray:
    """A Mobility Header laid out as the home agent's encoder lays it out (MobilityOption.encode):
    [Alternate CoA 8n+6] | MN-ID (NAI) | [Replay Protection 8n+2] | MN-HA auth at 8n+5 (4n+1,
    and its 19 octets then end the header on 8n: RFC 4285 §5.1 wants nothing after it, padding
    included), Pad1/PadN before each option as its alignment needs. Header Len set,
    the authenticator computed over `coa | hoa | MH[0 .. end of SPI]` (checksum zero), the
    checksum (`checksum_src` -> `checksum_dst`) last. `nai` None leaves the MN-ID option out."""
    mh = bytearray([IPPROTO_NONE, 0, mh_type, 0, 0, 0]) + data
    if alt_coa:
        mh += alt_coa_option(len(mh), alt_coa)
    if nai is not None:
        mh += mn_id_option(nai)
    if timestamp is not None:
        mh += align(len(mh), 8, 2) + replay_option(timestamp)
    mh += align(len(mh), 8, 5)
    auth_at = len(mh)
    mh += auth_option(spi)
    assert len(mh) % 8 == 0, "the MN-HA option ends the header"
    mh[1] = len(mh) // 8 - 1
    spi_end = auth_at + 7
    mh[4:6] = b"\0\0"
    mh[spi_end:spi_end + AUTHENTICATOR_LEN] = mn_ha_authenticator(key, coa, hoa, bytes(mh[:spi_end]))
    set_checksum(mh, checksum_src, checksum_dst)
    return mh


def verify_mh_authenticator(mh: bytes, key: bytes, coa: str, hoa: str) -> bool | None:
    """Checks the MN-HA option (the last one) of a received Mobility Header; None when it has none."""
    start = {MH_BU: 12, MH_BA: 12}.get(mh[2]) if len(mh) > 2 else None
    if start is None:
        return None
    auth_at, o = None, start
    while o < len(mh):
        t = mh[o]
        if t == OPT_PAD1:
            o += 1
            continue
        if o + 2 > len(mh):
            return False
        if t == OPT_AUTH:
            auth_at = o
        o += 2 + mh[o + 1]
    if auth_at is None:
        return None
    ln = mh[auth_at + 1]
    if mh[auth_at + 2] != AUTH_MN_HA or ln != 5 + AUTHENTICATOR_LEN:
        return False
    spi_end = auth_at + 7
    data = bytearray(mh[:spi_end])
    data[4:6] = b"\0\0"
    return hmac.compare_digest(mn_ha_authenticator(key, coa, hoa, bytes(data)),
                               bytes(mh[spi_end:spi_end + AUTHENTICATOR_LEN]))


def set_checksum(mh: bytearray, src: str, dst: str) -> int:
    mh[4:6] = b"\0\0"
    c = upper_checksum(a2b(src), a2b(dst), IPPROTO_MH, bytes(mh))
    mh[4:6] = struct.pack("!H", c)
    return c


def parse_flags(text: str, table: dict[str, int]) -> int:
    v = 0
    for ch in text.upper():
        if ch not in table:
            raise ValueError(f"unknown flag {ch!r}; known: {''.join(table)}")
        v |= table[ch]
    return v


def flag_letters(value: int, table: dict[str, int]) -> list[str]:
    return [k for k, bit in table.items() if value & bit]


# --- parsing -----------------------------------------------------------------
def parse_ipv6(ip: bytes) -> dict | None:
    """Walk the IPv6 header chain of `ip` (starting at the IPv6 header)."""
    if len(ip) < 40 or ip[0] >> 4 != 6:
        return None
    plen = struct.unpack("!H", ip[4:6])[0]
    end = min(len(ip), 40 + plen)
    info = {"src": b2a(ip[8:24]), "dst": b2a(ip[24:40]), "hlim": ip[7], "rh2": None, "hao": None,
            "end": end}
    nh, off = ip[6], 40
    for _ in range(8):
        if nh in EXT_HEADERS:
            if off + 8 > end:
                return None
            hlen = (ip[off + 1] + 1) * 8
            if off + hlen > end:
                return None
            if nh == IPPROTO_ROUTING and ip[off + 2] == 2 and ip[off + 1] == 2:
                info["rh2"] = b2a(ip[off + 8:off + 24])
            if nh == IPPROTO_DSTOPTS:
                o = off + 2
                while o < off + hlen:
                    t = ip[o]
                    if t == OPT_PAD1:
                        o += 1
                        continue
                    if o + 2 > off + hlen:
                        break
                    ln = ip[o + 1]
                    if t == OPT_HOME_ADDRESS and ln == 16 and o + 18 <= off + hlen:
                        info["hao"] = b2a(ip[o + 2:o + 18])
                    o += 2 + ln
            nh, off = ip[off], off + hlen
        elif nh == IPPROTO_FRAGMENT:
            if off + 8 > end:
                return None
            nh, off = ip[off], off + 8
        else:
            break
    info["nh"], info["off"] = nh, off
    return info


def parse_mh(ip: bytes, info: dict) -> dict | None:
    """The Mobility Header of a parsed packet, or None."""
    if info["nh"] != IPPROTO_MH:
        return None
    off, end = info["off"], info["end"]
    if off + 6 > end:
        return None
    mh_len = (ip[off + 1] + 1) * 8
    mh = ip[off:off + mh_len]
    if len(mh) < mh_len or off + mh_len > end:
        return None
    return {"type": mh[2], "bytes": mh}


def parse_mh_options(mh: bytes, start: int) -> list[dict]:
    opts, o = [], start
    while o < len(mh):
        t = mh[o]
        if t == OPT_PAD1:
            o += 1
            continue
        if o + 2 > len(mh):
            opts.append({"type": t, "error": "truncated"})
            break
        ln = mh[o + 1]
        if t != OPT_PADN:
            entry = {"type": t, "length": ln}
            if t == 2 and ln == 2:  # Binding Refresh Advice, units of 4 s
                entry["refresh_s"] = struct.unpack("!H", mh[o + 2:o + 4])[0] * 4
            elif t == OPT_MN_ID and ln >= 1 and o + 2 + ln <= len(mh):
                entry["subtype"] = mh[o + 2]
                entry["nai"] = bytes(mh[o + 3:o + 2 + ln]).decode(errors="replace")
            elif t == OPT_REPLAY and ln == 8 and o + 10 <= len(mh):
                entry["timestamp"] = struct.unpack("!Q", mh[o + 2:o + 10])[0]
                entry["unix_time"] = round(ntp_to_unix(entry["timestamp"]), 3)
            elif t == OPT_AUTH and ln >= 5 and o + 7 <= len(mh):
                entry["subtype"] = mh[o + 2]
                entry["spi"] = struct.unpack("!I", mh[o + 3:o + 7])[0]
            opts.append(entry)
        o += 2 + ln
    return opts


# --- layer 2 helpers ---------------------------------------------------------
def iface_mac(iface: str) -> str:
    with open(f"/sys/class/net/{iface}/address") as f:
        return f.read().strip()


def neigh_lladdr(iface: str, ip: str) -> str | None:
    out = subprocess.run(["ip", "-j", "-6", "neigh", "show", "to", ip, "dev", iface],
                         capture_output=True, text=True).stdout
    for entry in json.loads(out or "[]"):
        states = entry.get("state", [])
        if entry.get("lladdr") and not ({"FAILED", "INCOMPLETE"} & set(states)):
            return entry["lladdr"]
    return None


def resolve_mac(iface: str, ip: str, timeout: float = 2.0) -> str:
    """The link-layer address of on-link `ip`, letting the kernel do ND if needed."""
    mac = neigh_lladdr(iface, ip)
    if mac:
        return mac
    # Any packet to `ip` makes the kernel resolve it; an echo request draws only an echo reply.
    with socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6) as s:
        s.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, iface.encode())
        s.sendto(struct.pack("!BBHHH", ICMPV6_ECHO_REQUEST, 0, 0, 0x6D36, 0), (ip, 0))  # kernel fills the checksum
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.01)
        mac = neigh_lladdr(iface, ip)
        if mac:
            return mac
    raise RuntimeError(f"cannot resolve the link-layer address of {ip} on {iface}")


def default_gateway(coa: str) -> str:
    """By testbed convention the router is ::1 of the care-of address's /64."""
    net = ipaddress.IPv6Network(f"{coa}/64", strict=False)
    return str(net.network_address + 1)


class Link:
    """scapy's AF_PACKET socket on one interface, plus the addresses to frame with."""

    def __init__(self, iface: str, gw: str | None, dst_mac: str | None, coa: str):
        self.iface = iface
        self.sock = conf.L2socket(iface=iface)   # bound and flushed: from here on nothing is missed
        self.src_mac = iface_mac(iface)
        self.dst_mac = dst_mac or resolve_mac(iface, gw or default_gateway(coa))

    def frame(self, ip_bytes: bytes) -> bytes:
        return bytes(Ether(src=self.src_mac, dst=self.dst_mac, type=ETH_P_IPV6)) + ip_bytes

    def send(self, frame: bytes) -> None:
        self.sock.outs.send(frame)

    def recv(self, timeout: float) -> tuple[bytes, float] | None:
        """One incoming frame (outgoing ones are skipped by scapy) and its arrival time."""
        r, _, _ = select.select([self.sock.ins], [], [], max(0.0, timeout))
        if not r:
            return None
        _cls, data, _ts = self.sock.recv_raw(65535)
        if data is None:
            return b"", time.monotonic()
        return data, time.monotonic()

    def close(self) -> None:
        self.sock.close()


def ipv6_packet(src: str, dst: str, nh: int, payload: bytes, hlim: int = 64) -> bytes:
    return bytes(IPv6(src=src, dst=dst, nh=nh, hlim=hlim) / Raw(payload))


# --- register ----------------------------------------------------------------
def auth_key(args) -> bytes | None:
    """The MN-HA key of --key-hex / --key-file (None without either)."""
    text = getattr(args, "key_hex", None)
    if not text and getattr(args, "key_file", None):
        with open(args.key_file) as f:
            text = next((l.strip() for l in f if l.strip() and not l.startswith("#")), "")
    return bytes.fromhex(text) if text else None


def build_bu(args) -> tuple[bytes, bytearray]:
    lifetime_units = min(0xFFFF, (args.lifetime + 3) // 4)   # round up: 1..3 s must not mean 0
    flags = parse_flags(args.flags, BU_FLAGS)
    data = bu_data(args.seq, flags, lifetime_units)
    if getattr(args, "spi", None) is not None:
        # RFC 4285: over the care-of address the HA registers (Alternate CoA, else the source).
        ts = None if args.no_timestamp else (
            args.timestamp if args.timestamp is not None else ntp_timestamp(time.time() + args.timestamp_offset))
        mh = authenticated_mh(args.mh_type, data, coa=args.alt_coa or args.coa, hoa=args.hoa, spi=args.spi,
                              key=auth_key(args) or b"", nai=None if args.no_nai else args.nai.encode(),
                              timestamp=ts, checksum_src=args.hoa, checksum_dst=args.ha, alt_coa=args.alt_coa)
        args.sent_timestamp = ts
        if args.bad_checksum:
            mh[4:6] = struct.pack("!H", struct.unpack("!H", mh[4:6])[0] ^ 0x5A5A)
        return dest_opts_hao(args.hoa) + bytes(mh), mh
    opts = alt_coa_option(6 + len(data), args.alt_coa) if args.alt_coa else b""
    mh = mobility_header(args.mh_type, data, opts)
    # Pseudo-header source is the home address: the packet carries a Home Address option.
    c = set_checksum(mh, args.hoa, args.ha)
    if args.bad_checksum:
        mh[4:6] = struct.pack("!H", c ^ 0x5A5A)
    return dest_opts_hao(args.hoa) + bytes(mh), mh


def mh_from(frame: bytes, ha: str) -> tuple[bytes, dict | None, dict | None]:
    """(IPv6 packet, its parsed headers, its Mobility Header) of an Ethernet frame from `ha`;
    None for what is not a Mobility Header from the home agent."""
    if len(frame) < 54 or struct.unpack("!H", frame[12:14])[0] != ETH_P_IPV6:
        return b"", None, None
    ip = frame[14:]
    info = parse_ipv6(ip)
    if not info or info["src"] != ha:
        return ip, info, None
    return ip, info, parse_mh(ip, info)


def cmd_register(args) -> dict:
    link = Link(args.iface, args.gw, args.dst_mac, args.coa)
    ext, _mh = build_bu(args)
    sent_ip = ipv6_packet(args.coa, args.ha, IPPROTO_DSTOPTS, ext)
    frame = link.frame(sent_ip)
    want = MH_BA if args.mh_type == MH_BU else MH_BE
    t0 = time.monotonic()
    link.send(frame)
    deadline = t0 + args.timeout
    result: dict = {"ba": None} if want == MH_BA else {"be": None}
    seen_be = None
    while True:
        got = link.recv(deadline - time.monotonic())
        if got is None:
            break
        data, t = got
        ip, info, mh = mh_from(data, args.ha)
        if not mh:
            continue
        m = mh["bytes"]
        final_dst = info["rh2"] or info["dst"]
        ok = checksum_ok(a2b(info["src"]), a2b(final_dst), IPPROTO_MH, m)
        if mh["type"] == MH_BE and len(m) >= 24:
            seen_be = {"status": m[6], "home_address": b2a(m[8:24]), "checksum_ok": ok,
                       "ip_dst": info["dst"], "rtt_ms": round((t - t0) * 1000, 2)}
            if want == MH_BE:
                result = {"be": seen_be}
                break
        elif mh["type"] == MH_BA and want == MH_BA and len(m) >= 12:
            status, flags, seq, lifetime = struct.unpack("!BBHH", m[6:12])
            result = {
                "status": status,
                "sequence": seq,
                "lifetime": lifetime * 4,
                "flags": flag_letters(flags, BA_FLAGS),
                "rh2": info["rh2"],
                "checksum_ok": ok,
                "rtt_ms": round((t - t0) * 1000, 2),
                "ip_src": info["src"],
                "ip_dst": info["dst"],
                "hlim": info["hlim"],
                "options": parse_mh_options(m, 12),
            }
            key = auth_key(args)
            if key is not None:
                # The BA is authenticated over the BU's care-of address and home address.
                result["auth_ok"] = verify_mh_authenticator(m, key, args.alt_coa or args.coa, args.hoa)
            break
    if want == MH_BA and seen_be and "status" not in result:
        result["be"] = seen_be
    if getattr(args, "spi", None) is not None:
        result["sent_timestamp"] = args.sent_timestamp
    if args.show_sent:
        result["sent_hex"] = sent_ip.hex()
    link.close()
    return result


# --- responder ---------------------------------------------------------------
class _Stop(Exception):
    pass


def _raise_stop(signum, frame):
    raise _Stop()


def echo_reply_frame(link: Link, dst_mac: str, args, inner_src: str, ident: int, seq: int,
                     payload: bytes) -> bytes:
    pkt = (Ether(src=link.src_mac, dst=dst_mac)
           / IPv6(src=args.coa, dst=args.ha, hlim=64)          # reverse tunnel, RFC 2473
           / IPv6(src=args.hoa, dst=inner_src, hlim=64)
           / ICMPv6EchoReply(id=ident, seq=seq, data=payload))
    return bytes(pkt)


def cmd_responder(args) -> dict:
    stats = {"tunneled_requests": 0, "replies": 0, "outer_hlim": [], "inner_hlim": [],
             "inner_src": [], "echo_seq": [], "other_tunneled": 0, "outer_src_mac": None}
    link = Link(args.iface, args.gw, args.dst_mac or "00:00:00:00:00:00", args.coa)
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    log("READY")
    deadline = time.monotonic() + args.duration
    try:
        while True:
            got = link.recv(deadline - time.monotonic())
            if got is None:
                break
            data, _t = got
            if len(data) < 14 + 80 or struct.unpack("!H", data[12:14])[0] != ETH_P_IPV6:
                continue
            ip = data[14:]
            outer = parse_ipv6(ip)
            if not outer or outer["nh"] != IPPROTO_IPV6:
                continue
            if outer["src"] != args.ha or outer["dst"] != args.coa:
                continue
            inner_ip = ip[outer["off"]:outer["end"]]
            inner = parse_ipv6(inner_ip)
            if (not inner or inner["dst"] != args.hoa or inner["nh"] != IPPROTO_ICMPV6
                    or inner["off"] + 8 > inner["end"] or inner_ip[inner["off"]] != ICMPV6_ECHO_REQUEST):
                stats["other_tunneled"] += 1
                continue
            icmp = inner_ip[inner["off"]:inner["end"]]
            ident, seq = struct.unpack("!HH", icmp[4:8])
            stats["tunneled_requests"] += 1
            stats["outer_hlim"].append(outer["hlim"])
            stats["inner_hlim"].append(inner["hlim"])
            stats["inner_src"].append(inner["src"])
            stats["echo_seq"].append(seq)
            src_mac = ":".join(f"{b:02x}" for b in data[6:12])
            stats["outer_src_mac"] = src_mac
            link.send(echo_reply_frame(link, src_mac, args, inner["src"], ident, seq, icmp[8:]))
            stats["replies"] += 1
    except _Stop:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        link.close()
    return stats


# --- send-ba -----------------------------------------------------------------
def build_ba(ha: str, coa: str, hoa: str, seq: int, status: int, lifetime: int, flags: int = 0) -> bytes:
    """IPv6 (HA -> CoA) / Type 2 Routing Header (the home address) / Mobility Header BA
    (RFC 6275 §6.1.8, §6.4, §9.5.4); checksum over the final destination, the home address."""
    data = struct.pack("!BBHH", status & 0xFF, flags & 0xFF, seq & 0xFFFF, min(0xFFFF, lifetime // 4))
    mh = mobility_header(MH_BA, data)
    set_checksum(mh, ha, hoa)
    rh2 = bytes([IPPROTO_MH, 2, 2, 1, 0, 0, 0, 0]) + a2b(hoa)   # Segments Left 1
    return ipv6_packet(ha, coa, IPPROTO_ROUTING, rh2 + bytes(mh))


def cmd_send_ba(args) -> dict:
    # Sent from the HA's namespace: --ha is our source, its /64's ::1 the next hop.
    link = Link(args.iface, args.gw, args.dst_mac, args.ha)
    link.send(link.frame(build_ba(args.ha, args.coa, args.hoa, args.seq, args.status, args.lifetime)))
    link.close()
    return {"sent": 1, "src": args.ha, "dst": args.coa, "rh2": args.hoa, "sequence": args.seq & 0xFFFF,
            "status": args.status, "lifetime": (min(0xFFFF, args.lifetime // 4)) * 4}


# --- flood -------------------------------------------------------------------
FLOOD_KINDS = ("bad_checksum", "bad_header_len", "truncated", "garbage_options",
               "random_bytes", "bad_home_address_option", "unknown_type_bad_checksum",
               "short_message")


def flood_packet(kind: str, rng: random.Random, coa: str, ha: str, hoa: str) -> bytes:
    """One IPv6 packet (no Ethernet) with a Mobility Header that is wrong in at least one way."""
    seq, lifetime = rng.randrange(65536), rng.randrange(1, 65536)
    ext = dest_opts_hao(hoa)
    if kind == "bad_checksum":
        mh = mobility_header(MH_BU, bu_data(seq, 0xC000, lifetime))
        c = set_checksum(mh, hoa, ha)
        mh[4:6] = struct.pack("!H", c ^ rng.randrange(1, 0xFFFF))
    elif kind == "bad_header_len":
        # Header Len claims more (or an inconsistent amount) than the packet holds.
        mh = mobility_header(MH_BU, bu_data(seq, 0xC000, lifetime))
        real = mh[1]
        mh[1] = rng.choice([real + 1, real + rng.randrange(2, 40), 0xFF, 0])
        if mh[1] == real:
            mh[1] = real + 1
        set_checksum(mh, hoa, ha)
    elif kind == "truncated":
        # Shorter than the fixed MH header, or cut in the middle of the BU.
        full = mobility_header(MH_BU, bu_data(seq, 0xC000, lifetime), alt_coa_option(12, coa))
        set_checksum(full, hoa, ha)
        mh = full[:rng.randrange(1, len(full) - 1)]
    elif kind == "garbage_options":
        # Options whose lengths run past the end of the header.
        body = bytearray(bu_data(seq, 0xC000, lifetime))
        garbage = bytearray(rng.randbytes(rng.randrange(2, 60)))
        garbage[0] = rng.choice([2, 3, 4, 5, 8, 9, 10, rng.randrange(11, 256)])
        garbage[1] = 0xFF  # longer than any MH can hold after it
        mh = mobility_header(MH_BU, bytes(body), bytes(garbage))
        set_checksum(mh, hoa, ha)
    elif kind == "random_bytes":
        n = rng.randrange(0, 300)
        mh = bytearray(rng.randbytes(n))
        if n >= 3:
            mh[2] = rng.choice([MH_BU, MH_BU, MH_BA, MH_BE, rng.randrange(256)])
        if n >= 6:
            mh[4:6] = b"\0\0"
            c = upper_checksum(a2b(hoa), a2b(ha), IPPROTO_MH, bytes(mh))
            mh[4:6] = struct.pack("!H", c ^ 1)   # never valid
    elif kind == "bad_home_address_option":
        # Home Address option with a wrong length, or a multicast/unspecified home address.
        mh = mobility_header(MH_BU, bu_data(seq, 0xC000, lifetime))
        if rng.random() < 0.5:
            ext = bytes([IPPROTO_MH, 1]) + bytes([OPT_HOME_ADDRESS, 12]) + rng.randbytes(12)
            set_checksum(mh, hoa, ha)
        else:
            bad = rng.choice(["ff02::1", "::", "::1", "fe80::1"])
            ext = dest_opts_hao(bad)
            set_checksum(mh, bad, ha)
    elif kind == "unknown_type_bad_checksum":
        mh = mobility_header(rng.randrange(8, 256), rng.randbytes(rng.choice([2, 10, 18])))
        c = set_checksum(mh, hoa, ha)
        mh[4:6] = struct.pack("!H", c ^ 0xFFFE)
    elif kind == "short_message":
        # Header Len 0: 8 octets, too short for a Binding Update's 6 octets of data + padding rules.
        mh = bytearray([IPPROTO_NONE, 0, MH_BU, 0, 0, 0]) + bu_data(seq, 0xC000, lifetime)[:2]
        set_checksum(mh, hoa, ha)
    else:
        raise ValueError(kind)
    return ipv6_packet(coa, ha, IPPROTO_DSTOPTS, ext + bytes(mh))


def cmd_flood(args) -> dict:
    rng = random.Random(args.seed)
    link = Link(args.iface, args.gw, args.dst_mac, args.coa)
    kinds = {k: 0 for k in FLOOD_KINDS}
    frames = []
    for _ in range(args.count):
        kind = rng.choice(FLOOD_KINDS)
        kinds[kind] += 1
        frames.append(link.frame(flood_packet(kind, rng, args.coa, args.ha, args.hoa)))
    errors = 0
    t0 = time.monotonic()
    for i, f in enumerate(frames):
        try:
            link.send(f)
        except OSError:
            errors += 1
        if args.burst and (i + 1) % args.burst == 0:
            time.sleep(args.pause)
    elapsed = time.monotonic() - t0
    link.close()
    return {"sent": len(frames) - errors, "send_errors": errors, "elapsed_ms": round(elapsed * 1000, 1),
            "pps": round(len(frames) / elapsed) if elapsed > 0 else None, "kinds": kinds}


# --- send-raw ----------------------------------------------------------------
def cmd_send_raw(args) -> dict:
    """Send IPv6 packets as given (hex), framed for --iface, and collect the Mobility Headers the
    home agent sends to --coa within --timeout (a replayed BU whose source is another node's
    address is answered there, if at all: capture on that node's link too)."""
    packets = [bytes.fromhex(h) for h in args.hex]
    link = Link(args.iface, args.gw, args.dst_mac, args.coa)
    t0 = time.monotonic()
    for p in packets:
        link.send(link.frame(p))
    answers = []
    deadline = t0 + args.timeout
    while True:
        got = link.recv(deadline - time.monotonic())
        if got is None:
            break
        data, t = got
        if len(data) < 54 or struct.unpack("!H", data[12:14])[0] != ETH_P_IPV6:
            continue
        ip = data[14:]
        info = parse_ipv6(ip)
        if not info or info["src"] != args.ha:
            continue
        mh = parse_mh(ip, info)
        if mh:
            answers.append({"type": mh["type"], "ip_dst": info["dst"], "rtt_ms": round((t - t0) * 1000, 2),
                            "status": mh["bytes"][6] if len(mh["bytes"]) > 6 else None})
    link.close()
    return {"sent": len(packets), "bytes": [len(p) for p in packets], "answers": answers}


# --- bu-flood ----------------------------------------------------------------
def ipv6_header(src: bytes, dst: bytes, nh: int, payload_len: int, hlim: int = 64) -> bytes:
    return struct.pack("!IHBB", 6 << 28, payload_len, nh, hlim) + src + dst


def cmd_bu_flood(args) -> dict:
    """--count Binding Updates for --hoa, from --sources source /64s (2001:db8:a:N::2 style:
    the --src address with its 4th group replaced by N; 1 = --src alone), each one's source as
    its care-of address, the sequence number counting up. --mode none: no RFC 4285 options;
    wrongkey: the full set, keyed with --key-hex (give a key the home agent does not have)."""
    src_net = ipaddress.IPv6Address(args.coa)
    if args.sources > 1:
        words = list(struct.unpack("!8H", src_net.packed))
        sources = []
        for n in range(args.sources):
            words[3] = (args.first_subnet + n) & 0xFFFF
            sources.append(str(ipaddress.IPv6Address(struct.pack("!8H", *words))))
    else:
        sources = [args.coa]
    key = auth_key(args) or bytes(16)
    link = Link(args.iface, args.gw, args.dst_mac, args.coa)
    ha_b = a2b(args.ha)
    ext = dest_opts_hao(args.hoa)
    lifetime_units = min(0xFFFF, (args.lifetime + 3) // 4)
    ts0 = ntp_timestamp()
    t_build = time.monotonic()
    frames = []
    for i in range(args.count):
        src = sources[i % len(sources)]
        data = bu_data(args.first_seq + i, BU_FLAGS["A"] | BU_FLAGS["H"], lifetime_units)
        if args.mode == "none":
            mh = mobility_header(MH_BU, data)
            set_checksum(mh, args.hoa, args.ha)
        else:
            mh = authenticated_mh(MH_BU, data, coa=src, hoa=args.hoa, spi=args.spi, key=key,
                                  nai=args.nai.encode(), timestamp=ts0 + (i << 12),
                                  checksum_src=args.hoa, checksum_dst=args.ha)
        payload = ext + bytes(mh)
        frames.append(link.frame(ipv6_header(a2b(src), ha_b, IPPROTO_DSTOPTS, len(payload)) + payload))
    build_s = time.monotonic() - t_build
    errors = 0
    send = link.sock.outs.send
    t0 = time.monotonic()
    for f in frames:
        try:
            send(f)
        except OSError:
            errors += 1
    elapsed = time.monotonic() - t0
    link.close()
    return {"sent": len(frames) - errors, "send_errors": errors, "sources": len(sources),
            "first_source": sources[0], "last_source": sources[-1], "mode": args.mode,
            "frame_bytes": len(frames[0]) if frames else 0, "build_ms": round(build_s * 1000, 1),
            "elapsed_ms": round(elapsed * 1000, 1), "pps": round(len(frames) / elapsed) if elapsed > 0 else None}


# --- crowd: many mobile nodes behind one access router ----------------------------
INITIAL_BINDACK_TIMEOUT_FIRST_REG = 1.5   # RFC 6275 §13, seconds
MAX_BINDACK_TIMEOUT = 32.0


def cmd_crowd(args) -> dict:
    """--count mobile nodes behind one foreign /64: node i has care-of address --coa + i and
    home address --hoa + i (the addresses must be configured on --iface so the router's
    Neighbor Solicitations for them are answered). Every node sends its first home
    registration at once and retransmits as RFC 6275 §11.8 says (1.5 s, doubling, each
    retransmission a new Binding Update with the next sequence number, §11.7.1) until its BA
    with status 0 arrives or --timeout runs out. Returns when each node was accepted."""
    base_coa = int(ipaddress.IPv6Address(args.coa))
    base_hoa = int(ipaddress.IPv6Address(args.hoa))
    link = Link(args.iface, args.gw, args.dst_mac, args.coa)
    ha_b = a2b(args.ha)
    lifetime_units = min(0xFFFF, (args.lifetime + 3) // 4)
    def frame(coa: str, hoa: str, seq: int) -> bytes:
        mh = mobility_header(MH_BU, bu_data(seq & 0xFFFF, BU_FLAGS["A"] | BU_FLAGS["H"], lifetime_units))
        set_checksum(mh, hoa, args.ha)
        payload = dest_opts_hao(hoa) + bytes(mh)
        return link.frame(ipv6_header(a2b(coa), ha_b, IPPROTO_DSTOPTS, len(payload)) + payload)

    nodes = []
    for i in range(args.count):
        coa = str(ipaddress.IPv6Address(base_coa + i))
        hoa = str(ipaddress.IPv6Address(base_hoa + i))
        nodes.append({"hoa": hoa, "coa": coa, "frame": frame(coa, hoa, args.seq), "next": 0.0,
                      "timeout": INITIAL_BINDACK_TIMEOUT_FIRST_REG, "sent": 0, "accepted": None, "status": None})
    by_hoa = {n["hoa"]: n for n in nodes}
    t0 = time.monotonic()
    for n in nodes:
        n["next"] = t0
    pending = len(nodes)
    retransmissions = 0
    other_status: dict[int, int] = {}
    while pending and time.monotonic() - t0 < args.timeout:
        now = time.monotonic()
        for n in nodes:
            if n["accepted"] is None and n["next"] <= now:
                if n["sent"]:  # §11.7.1: every Binding Update carries a new sequence number
                    n["frame"] = frame(n["coa"], n["hoa"], args.seq + n["sent"])
                try:
                    link.send(n["frame"])
                except OSError:
                    pass
                if n["sent"]:
                    retransmissions += 1
                n["sent"] += 1
                n["next"] = now + n["timeout"]
                n["timeout"] = min(n["timeout"] * 2, MAX_BINDACK_TIMEOUT)
        wake = min((n["next"] for n in nodes if n["accepted"] is None), default=now + 0.05)
        while True:
            got = link.recv(max(0.0, min(wake - time.monotonic(), 0.05)))
            if got is None:
                break
            data, t = got
            _ip, info, mh = mh_from(data, args.ha)
            if not mh or not info["rh2"] or mh["type"] != MH_BA or len(mh["bytes"]) < 12:
                continue
            n = by_hoa.get(info["rh2"])
            if n is None or n["accepted"] is not None:
                continue
            status = mh["bytes"][6]
            if status == 0:
                n["accepted"], n["status"] = t - t0, 0
                pending -= 1
            else:
                other_status[status] = other_status.get(status, 0) + 1
    link.close()
    accepted = sorted(n["accepted"] for n in nodes if n["accepted"] is not None)
    return {"nodes": len(nodes), "accepted": len(accepted), "retransmissions": retransmissions,
            "other_status": other_status,
            "last_accepted_s": round(accepted[-1], 3) if accepted else None,
            "median_accepted_s": round(accepted[len(accepted) // 2], 3) if accepted else None,
            "not_accepted": [n["hoa"] for n in nodes if n["accepted"] is None][:20]}


# --- command line ------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m testbed.scapy_mn", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)

    def common(p, hoa_default=None):
        p.add_argument("--iface", required=True)
        p.add_argument("--coa", required=True, help="care-of address (source of what we send)")
        p.add_argument("--ha", required=True, help="home agent address")
        p.add_argument("--hoa", required=hoa_default is None, default=hoa_default, help="home address")
        p.add_argument("--gw", help="next hop on --iface (default: ::1 of the care-of /64)")
        p.add_argument("--dst-mac", help="destination MAC (default: resolve --gw)")

    def auth_args(p):
        g = p.add_argument_group("RFC 4285 (MN-ID, Replay Protection, MN-HA authentication options)")
        g.add_argument("--spi", type=int, help="Mobility SPI: with it the BU carries the RFC 4285 options")
        g.add_argument("--nai", default="mn@example.net", help="NAI for the MN-ID option")
        g.add_argument("--key-hex", help="MN-HA key in hex (also checks the BA's authenticator)")
        g.add_argument("--key-file", help="file with the MN-HA key in hex (instead of --key-hex)")
        g.add_argument("--no-nai", action="store_true", help="leave out the MN-ID option")
        g.add_argument("--no-timestamp", action="store_true", help="leave out the Replay Protection option")
        g.add_argument("--timestamp-offset", type=float, default=0.0,
                       help="seconds added to the current time in the Replay Protection option")
        g.add_argument("--timestamp", type=int, help="the Replay Protection option's 64-bit NTP value as given")

    p = sub.add_parser("register", help="send a Binding Update, wait for the BA (or BE)")
    common(p)
    p.add_argument("--seq", type=int, required=True)
    p.add_argument("--lifetime", type=int, required=True, help="seconds (sent in 4 s units); 0 = de-register")
    p.add_argument("--alt-coa", help="add an Alternate Care-of Address option")
    p.add_argument("--flags", default="AH", help="BU flags among AHLKMRP (default: AH)")
    p.add_argument("--bad-checksum", action="store_true", help="corrupt the MH checksum")
    p.add_argument("--mh-type", type=int, default=MH_BU,
                   help="MH type to send (default 5 = BU); otherwise wait for a Binding Error")
    p.add_argument("--timeout", type=float, default=3.0)
    p.add_argument("--show-sent", action="store_true", help="add the sent IPv6 packet (hex) to the output")
    auth_args(p)

    p = sub.add_parser("responder", help="answer tunneled echo requests through the reverse tunnel")
    common(p)
    p.add_argument("--duration", type=float, required=True, help="seconds (SIGTERM ends it early)")

    p = sub.add_parser("send-ba", help="(in the HA namespace) send a Binding Acknowledgement to a care-of address")
    common(p)
    p.add_argument("--seq", type=int, required=True)
    p.add_argument("--status", type=int, default=0)
    p.add_argument("--lifetime", type=int, default=60, help="seconds (sent in 4 s units)")

    p = sub.add_parser("flood", help="send malformed Mobility Header packets to the HA")
    common(p, hoa_default="2001:db8:1::f10d")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--seed", type=int, default=6275)
    p.add_argument("--burst", type=int, default=0, help="pause after every BURST packets (0: never)")
    p.add_argument("--pause", type=float, default=0.001, help="seconds to pause after a burst")

    p = sub.add_parser("send-raw", help="send IPv6 packets given in hex (a captured BU, byte for byte)")
    common(p, hoa_default="::")
    p.add_argument("--hex", action="append", required=True, help="one IPv6 packet in hex (repeat)")
    p.add_argument("--timeout", type=float, default=1.0, help="seconds to collect answers to --coa")

    p = sub.add_parser("bu-flood", help="send Binding Updates as fast as possible")
    common(p)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--sources", type=int, default=1, help="source /64s to spread over (default 1: --coa only)")
    p.add_argument("--first-subnet", type=int, default=1, help="4th address group of the first of --sources")
    p.add_argument("--mode", choices=("none", "wrongkey"), default="wrongkey")
    p.add_argument("--first-seq", type=int, default=1000)
    p.add_argument("--lifetime", type=int, default=600)
    auth_args(p)

    p = sub.add_parser("crowd", help="many mobile nodes behind one /64 register at once, with RFC 6275 retransmissions")
    common(p)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--seq", type=int, default=1)
    p.add_argument("--lifetime", type=int, default=600)
    p.add_argument("--timeout", type=float, default=20.0)

    args = ap.parse_args(argv)
    conf.verb = 0
    try:
        result = {"register": cmd_register, "responder": cmd_responder, "send-ba": cmd_send_ba,
                  "flood": cmd_flood, "send-raw": cmd_send_raw, "bu-flood": cmd_bu_flood,
                  "crowd": cmd_crowd}[args.command](args)
    except (OSError, RuntimeError, ValueError) as e:
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}), flush=True)
        return 2
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
