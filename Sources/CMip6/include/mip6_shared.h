/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The one definition of everything the BPF programs and the Swift control
 * plane share: map names, capacities, key/value layouts, counter indexes and
 * punt records. The bpf/ programs include it, and Swift imports it through the
 * CMip6 module, so there is no hand-kept mirror on either side.
 *
 * Rules (see STYLE.md): only fixed-width types, largest fields first,
 * padding written out, a _Static_assert on every size, addresses as 16-byte
 * arrays in network byte order.
 */
#ifndef MIP6_SHARED_H
#define MIP6_SHARED_H

#include <linux/types.h>
#include <linux/bpf.h> /* struct bpf_spin_lock */

/* ---- map names (pinned under --bpffs with these names) ---- */
#define MIP6_MAP_BINDINGS      "mip6_bindings"
#define MIP6_MAP_BINDING_STATS "mip6_bind_stats" /* per-binding traffic, indexed by mip6_binding.slot */
#define MIP6_MAP_SLOT_NEXTHOP  "mip6_slot_nh"    /* next hop of each binding's care-of address, by slot */
#define MIP6_MAP_COUNTERS      "mip6_counters"
#define MIP6_MAP_CONFIG        "mip6_config"
#define MIP6_MAP_IFACES        "mip6_ifaces"
#define MIP6_MAP_LOCAL_ADDRS   "mip6_locals"     /* map names are at most 15 characters */
#define MIP6_MAP_PUNT          "mip6_punt"
#define MIP6_MAP_PUNT_LIMIT    "mip6_punt_tb"    /* signaling token bucket, all sources */
#define MIP6_MAP_SRC_LIMIT     "mip6_src_tb"     /* signaling token buckets per source /64 */
#define MIP6_MAP_NEXTHOP       "mip6_nexthop"    /* next-hop cache (skips bpf_fib_lookup) */
#define MIP6_MAP_ICMP_LIMIT    "mip6_icmp_tb"    /* token bucket of the ICMPv6 errors the data plane sends */
#define MIP6_MAP_FRAG_LIMIT    "mip6_frag_tb"    /* token bucket of the packets punted for a fragmented tunnel */
#define MIP6_MAP_LL_PROXY      "mip6_ll_proxy"   /* link-local address -> home address (BU L flag): proxy ND only */

/* ---- capacities ----
 * Map sizes and BPF-side limits. Each may be overridden for a BPF build (-DNAME=...): the
 * control plane reads a map's size from the map, never from these. */
#ifndef MIP6_MAX_BINDINGS
#define MIP6_MAX_BINDINGS      1048576   /* binding cache entries (one per home address) */
#endif
#ifndef MIP6_MAX_IFACES
#define MIP6_MAX_IFACES        64
#endif
#ifndef MIP6_MAX_LOCAL_ADDRS
#define MIP6_MAX_LOCAL_ADDRS   256
#endif
#ifndef MIP6_MAX_SRC_BUCKETS
#define MIP6_MAX_SRC_BUCKETS   8192      /* per-source-/64 limiters; past it only the global one applies */
#endif
#ifndef MIP6_MAX_NEXTHOPS
#define MIP6_MAX_NEXTHOPS      65536     /* next-hop cache entries (LRU) */
#endif
#ifndef MIP6_PUNT_RING_BYTES
#define MIP6_PUNT_RING_BYTES   (1 << 22) /* signaling ring buffer, bytes (power of two): > the default
                                          * punt burst of small records, so what the limiter lets
                                          * through fits */
#endif
#ifndef MIP6_MAX_EXT_HEADERS
#define MIP6_MAX_EXT_HEADERS   8         /* extension headers (AH included) the parser walks past (bpf/lib/parse.h) */
#endif
/* Punt record layout, not a capacity: fixed. */
#define MIP6_PUNT_SMALL        256       /* records for packets up to this size reserve only this much */
#define MIP6_PUNT_MAX          1280      /* bytes of a punted packet kept (IPv6 minimum MTU) */
#define MIP6_TUNNEL_HOP_LIMIT  64        /* outer hop limit, RFC 2473 §6.3 (default) */
#ifndef MIP6_ICMP_ERRORS_PER_S
#define MIP6_ICMP_ERRORS_PER_S 100       /* ICMPv6 errors the data plane sends per second, all CPUs (RFC 4443 §2.4(f)) */
#endif
#ifndef MIP6_ICMP_ERRORS_BURST
#define MIP6_ICMP_ERRORS_BURST 20
#endif
/* RFC 2473 §7.1(b): inner packets of 1280 bytes or less whose tunnel packet exceeds the path MTU
 * to the care-of address are punted (MIP6_PUNT_FRAGMENT) for the control plane to send as a
 * fragmented tunnel packet. That is data, not signaling: its own bucket (all CPUs) bounds the
 * control plane's work, and it may fill at most MIP6_FRAG_PUNT_RING_SHARE of the ring the
 * signaling punts share (the default burst is 1,000 x 1,320 bytes of records: 1.3 MB), so
 * neither can starve signaling. 10,000/s of 1280-byte packets is about 100 Mbit/s. */
#ifndef MIP6_FRAG_PUNTS_PER_S
#define MIP6_FRAG_PUNTS_PER_S  10000
#endif
#ifndef MIP6_FRAG_PUNTS_BURST
#define MIP6_FRAG_PUNTS_BURST  1000
#endif
#define MIP6_FRAG_PUNT_RING_SHARE (MIP6_PUNT_RING_BYTES / 2) /* bytes not yet consumed in the ring */

/* ---- program names in the embedded objects ---- */
#define MIP6_PROG_HA_XDP       "mip6_ha_xdp"
#define MIP6_PROG_HA_TC        "mip6_ha_tc"

/* ---- counters: index into the per-CPU array mip6_counters ----
 * One X-macro so the enum and the printable names cannot drift apart. */
#define MIP6_COUNTERS(X)                                                        \
	X(RX_TOTAL,            "rx_total")            /* every packet seen */        \
	X(PASS_NOT_IPV6,       "pass_not_ipv6")                                     \
	X(PASS_OTHER,          "pass_other")          /* not ours: to the kernel */  \
	X(PASS_LOCAL,          "pass_local")          /* to a local address, not MH or tunnel */ \
	X(ENCAP,               "encap")               /* HoA -> CoA tunneled */      \
	X(ENCAP_TX,            "encap_tx")            /* ... sent back out the same interface */ \
	X(ENCAP_REDIRECT,      "encap_redirect")      /* ... redirected to another interface */ \
	X(ENCAP_PASS_NO_NEIGH, "encap_pass_no_neigh") /* ... handed to the kernel to resolve the next hop */ \
	X(ENCAP_FIB_FAIL,      "encap_fib_fail")      /* ... no route to the CoA: dropped */ \
	X(NH_CACHE_HIT,        "nexthop_cache_hit")   /* forwarded without bpf_fib_lookup */ \
	X(NH_CACHE_MISS,       "nexthop_cache_miss")  /* absent, stale or too short: looked up and cached */ \
	X(ENCAP_HOPLIMIT,      "encap_pass_hoplimit") /* hop limit <= 1: kernel sends Time Exceeded */ \
	X(ENCAP_TOO_BIG,       "encap_too_big")       /* Packet Too Big returned to the sender */ \
	X(DECAP,               "decap")               /* reverse tunnel, forwarded */ \
	X(DECAP_TX,            "decap_tx")                                           \
	X(DECAP_REDIRECT,      "decap_redirect")                                     \
	X(DECAP_PASS_KERNEL,   "decap_pass_kernel")   /* decapsulated, kernel forwards */ \
	X(DROP_TUNNEL_NO_BINDING, "drop_tunnel_no_binding") /* inner source has no binding */ \
	X(DROP_TUNNEL_SPOOFED, "drop_tunnel_spoofed") /* outer source is not the binding's CoA */ \
	X(DROP_TUNNEL_MALFORMED, "drop_tunnel_malformed")                          \
	X(NA_PROXY,            "na_proxy")            /* NS for a home address answered */ \
	X(NS_BAD,              "drop_ns_invalid")     /* NS for a home address failing RFC 4861 §7.1.1 checks */ \
	X(MH_PUNT,             "mh_punt")             /* Mobility Header handed to the control plane */ \
	X(MH_PUNT_TRUNCATED,   "mh_punt_truncated")   /* punted, longer than MIP6_PUNT_MAX */ \
	X(MH_PUNT_RING_FULL,   "drop_mh_ring_full")   /* control plane not keeping up */ \
	X(PUNT_RATE_LIMITED,   "drop_punt_rate_limited")     /* signaling over the global rate */ \
	X(PUNT_SRC_RATE_LIMITED, "drop_punt_src_rate_limited") /* signaling over one source /64's rate */ \
	X(DROP_MH_FRAGMENT,    "drop_mh_fragment")    /* fragmented signaling is not reassembled */ \
	X(NA_COPY,             "na_copy")             /* NA copied to the control plane (DAD) */ \
	X(DROP_MALFORMED,      "drop_malformed")      /* IPv6 header truncated or not version 6 */ \
	X(DROP_EXT_CHAIN,      "drop_ext_chain")      /* extension-header chain to a local address too long */ \
	X(DROP_ENCAP_GSO,      "drop_encap_gso")      /* TC: a GSO skb the tunnel cannot re-segment (not TCP/UDP, or > 64 KiB) */ \
	X(DROP_ADJUST_FAIL,    "drop_adjust_fail")    /* the kernel refused to grow, shrink or pull the packet */ \
	X(PASS_EXPIRED,        "pass_expired")        /* to or NS for a home address whose binding's lifetime is over (RFC 6275 \
	                                               * §10.3.1): not tunneled, not defended, to the kernel; the daemon, when it \
	                                               * runs, removes such bindings itself */ \
	X(DROP_TUNNEL_EXPIRED, "drop_tunnel_expired") /* reverse tunnel from a binding whose lifetime is over */ \
	X(DROP_ICMP_RATE_LIMITED, "drop_icmp_rate_limited") /* too big or out of encapsulation limit, but the ICMPv6 \
	                                               * error budget (RFC 4443 §2.4(f)) is spent: dropped without \
	                                               * Packet Too Big or Parameter Problem */ \
	X(DROP_ENCAP_TUNNEL_MTU, "drop_encap_tunnel_mtu") /* TC: a GSO skb of 1280 or less that does not fit a route \
	                                               * whose MTU is below 1280 + 40: its bytes are no packet that \
	                                               * could be punted (encap_frag_punt); no Packet Too Big (it \
	                                               * cannot ask for less than 1280: a loop) */ \
	X(ENCAP_FRAG_PUNT,     "encap_frag_punt")     /* a packet of 1280 or less that does not fit a route whose MTU \
	                                               * is below 1280 + 40 (RFC 2473 §7.1(b)): punted for the control \
	                                               * plane to send as a fragmented tunnel packet; dropped here */ \
	X(DROP_FRAG_RATE_LIMITED, "drop_frag_rate_limited") /* ... over MIP6_FRAG_PUNTS_PER_S: dropped */ \
	X(DROP_FRAG_RING_FULL, "drop_frag_ring_full") /* ... the ring holds MIP6_FRAG_PUNT_RING_SHARE bytes (the \
	                                               * rest is signaling's) or is full: dropped */ \
	X(DROP_ENCAP_LIMIT,    "drop_encap_limit")    /* RFC 2473 §5.1: its Tunnel Encapsulation Limit is 0, so it may \
	                                               * not be tunneled again: discarded, its frame turned into an ICMPv6 \
	                                               * Parameter Problem (code 0, pointing at the limit) to its source */ \
	X(FWD_PASS_MH,         "fwd_pass_mh")         /* forwarder-only node (MIP6_CFG_FORWARDER): a Mobility Header \
	                                               * (or a first fragment of one) to the home agent address, \
	                                               * passed to the kernel, which routes it on to the replicas */ \
	X(FWD_PASS_ENCAP_FRAG, "fwd_pass_encap_frag") /* forwarder-only node: a packet that needs a fragmented tunnel \
	                                               * packet (RFC 2473 §7.1(b)) passed on to the replicas, which \
	                                               * have the tunnel socket; a forwarder punts nothing */

#define MIP6_COUNTER_ENUM(name, str) MIP6_CNT_##name,
enum mip6_counter {
	MIP6_COUNTERS(MIP6_COUNTER_ENUM)
	MIP6_CNT_MAX
};
#undef MIP6_COUNTER_ENUM

/* ---- punt record kinds (first field of every ring-buffer record) ---- */
enum mip6_punt_kind {
	MIP6_PUNT_MH = 1, /* a Mobility Header packet to one of our addresses; dropped in XDP */
	MIP6_PUNT_NA = 2, /* a Neighbor Advertisement, copied for DAD; also passed on */
	MIP6_PUNT_FRAGMENT = 3, /* a packet for a home address of 1280 bytes or less whose tunnel packet exceeds the
	                         * path MTU to the care-of address: the control plane sends it as a fragmented
	                         * tunnel packet (RFC 2473 §7.1(b)); dropped in the data plane */
	MIP6_PUNT_ATTACH = 4, /* MAG: a frame from a MAC the control plane does not hold on that access link (the
	                       * first bytes of its IPv6 packet; the header's src_mac and ifindex are what matter) */
	MIP6_PUNT_RS = 5, /* MAG: a Router Solicitation from an access link, whole */
};

/* ---- binding flags (mip6_binding.flags), the BU flags as received ----
 * L (RFC 6275 §10.3.1): the home agent defends the link-local address formed from the home
 * address's interface identifier too (mip6_ll_proxy), with proxy ND only: never tunneled. */
#define MIP6_BU_FLAG_A 0x8000
#define MIP6_BU_FLAG_H 0x4000
#define MIP6_BU_FLAG_L 0x2000
#define MIP6_BU_FLAG_K 0x1000

/* ---- config flags ---- */
#define MIP6_CFG_ENABLED   0x1  /* forwarding on; off means every packet is passed */
#define MIP6_CFG_PUNT_NA   0x2  /* copy NAs to the control plane (DAD in progress) */
#define MIP6_CFG_FORWARDER 0x4  /* forwarder-only node (mip6 forwarder): tunnel and decapsulate only; Mobility
                                 * Headers, ND and packets needing a fragmented tunnel go to the kernel (routed on
                                 * to the replicas), nothing is punted, no proxy ND */

/* mip6_bindings: key = home address. */
struct mip6_binding_key {
	__u8 hoa[16];            /* home address, network order */
};
_Static_assert(sizeof(struct mip6_binding_key) == 16, "mip6_binding_key size");

/* mip6_bindings: value. The control plane owns it; BPF only reads it. */
struct mip6_binding {
	__u64 expires_ns;        /* CLOCK_MONOTONIC (bpf_ktime_get_ns) when the binding expires */
	__u64 registered_ns;     /* CLOCK_MONOTONIC of the last accepted BU */
	__u8  coa[16];           /* care-of address, network order */
	__u32 lifetime_s;        /* granted lifetime, seconds, host order */
	__u32 ifindex;           /* home link interface (proxy ND applies there) */
	__u16 seq;               /* last accepted sequence number, host order */
	__u16 flags;             /* MIP6_BU_FLAG_*, host order */
	__u32 slot;              /* this binding's index in mip6_bind_stats and mip6_slot_nh (the control
	                          * plane hands them out): arrays, looked up inline, no second hash */
};
_Static_assert(sizeof(struct mip6_binding) == 48, "mip6_binding size");

/* mip6_ll_proxy: key = a mobile node's link-local address (struct mip6_addr_key: fe80::/64 +
 * the home address's interface identifier), value = its home address (struct mip6_binding_key).
 * Consulted only by proxy ND, and only while that home address's binding lives and carries
 * MIP6_BU_FLAG_L: the binding is the truth, this is its index. Sized like mip6_bindings. */

/* mip6_bind_stats: array indexed by mip6_binding.slot, atomic adds. Kept apart from the
 * binding so a re-registration does not reset them and BPF never writes the binding. */
struct mip6_binding_stats {
	__u64 to_mn_packets;     /* encapsulated towards the CoA */
	__u64 to_mn_bytes;       /* inner bytes */
	__u64 from_mn_packets;   /* decapsulated from the reverse tunnel */
	__u64 from_mn_bytes;     /* inner bytes */
};
_Static_assert(sizeof(struct mip6_binding_stats) == 32, "mip6_binding_stats size");

/* mip6_config: array of one. */
struct mip6_config {
	/* Signaling rate limits as token buckets in nanoseconds of credit: a punt costs
	 * cost_ns, the bucket holds burst_ns. 0 = no limit. Set from --punt-rate etc. */
	__u64 punt_cost_ns;      /* all sources together */
	__u64 punt_burst_ns;
	__u64 src_cost_ns;       /* per source /64 */
	__u64 src_burst_ns;
	__u8  ha_addr[16];       /* the home agent address: tunnel entry/exit point */
	__u8  home_prefix[16];   /* masked home prefix */
	__u32 flags;             /* MIP6_CFG_* */
	__u8  home_prefix_len;
	__u8  tunnel_hop_limit;  /* outer hop limit */
	__u8  _pad[2];
	__u32 nh_gen;            /* next-hop cache generation: bumped by the control plane on every
	                          * route, neighbour or link change; older cache entries are ignored.
	                          * Only ever increases, across daemon restarts too (a restart
	                          * continues from the pinned value), so no old entry comes back */
	__u32 _pad2;
};
_Static_assert(sizeof(struct mip6_config) == 80, "mip6_config size");

/* mip6_nexthop: key = destination address (a care-of address, or a correspondent for the
 * reverse tunnel). What bpf_fib_lookup said last time, so the fast path skips it. An entry
 * is used only while its generation is mip6_config.nh_gen and it is younger than
 * MIP6_NH_MAX_AGE_NS: the age bounds what the cache can miss while no daemon bumps the
 * generation (it is down) and what the kernel learns without a netlink event (a PMTU
 * exception from a Packet Too Big), both of which bpf_fib_lookup does see. */
struct mip6_nexthop {
	__u64 filled_ns;         /* CLOCK_MONOTONIC (coarse: bpf_ktime_get_coarse_ns) when the FIB answered */
	__u32 ifindex;           /* egress interface */
	__u32 gen;               /* mip6_config.nh_gen when it was filled */
	__u32 max_len;           /* largest IPv6 packet the FIB accepted for this route (MTU check) */
	__u8  smac[6];
	__u8  dmac[6];
};
_Static_assert(sizeof(struct mip6_nexthop) == 32, "mip6_nexthop size");
/* mip6_slot_nh: array indexed by mip6_binding.slot, written by the data plane from the FIB's
 * answer for the care-of address. Valid only for the binding's current sequence number (a
 * move or refresh, and a slot handed to another binding, start from the FIB again). */
struct mip6_slot_nexthop {
	struct mip6_nexthop nh;
	__u16 seq;               /* mip6_binding.seq it was filled for */
	__u16 _pad0;
	__u32 _pad1;
};
_Static_assert(sizeof(struct mip6_slot_nexthop) == 40, "mip6_slot_nexthop size");

#ifndef MIP6_NH_MAX_AGE_NS
#define MIP6_NH_MAX_AGE_NS     1000000000ULL /* 1 s: one FIB lookup per destination per second at most */
#endif

/* mip6_punt_tb (array of one): the global signaling bucket, shared by all CPUs. */
struct mip6_token_bucket {
	__u64 credit_ns;         /* available credit */
	__u64 last_ns;           /* bpf_ktime_get_ns() of the last refill */
	struct bpf_spin_lock lock;
	__u32 _pad;
};
_Static_assert(sizeof(struct mip6_token_bucket) == 24, "mip6_token_bucket size");

/* mip6_src_tb: an LRU per-CPU hash keyed by the source's first 64 bits, so a spray of
 * source prefixes ages out instead of filling the table for good. LRU maps cannot hold a
 * spin lock, hence per CPU: one source may get up to (CPUs x its rate). */
struct mip6_rate_state {
	__u64 credit_ns;
	__u64 last_ns;
};
_Static_assert(sizeof(struct mip6_rate_state) == 16, "mip6_rate_state size");

/* mip6_ifaces: key = ifindex (__u32). The interfaces the program is attached to. */
struct mip6_iface {
	__u32 mtu;               /* link MTU */
	__u8  mac[6];            /* our link-layer address (proxy NA, Packet Too Big) */
	__u8  attach;            /* enum mip6_attach_kind: how the program sits on it (for detach) */
	__u8  _pad;
};
_Static_assert(sizeof(struct mip6_iface) == 12, "mip6_iface size");

/* mip6_locals: key = an address of ours whose Mobility Headers are punted. */
struct mip6_addr_key {
	__u8 addr[16];
};
_Static_assert(sizeof(struct mip6_addr_key) == 16, "mip6_addr_key size");

/* Ring-buffer record header; `len` bytes of the packet (from the IPv6 header on) follow. */
struct mip6_punt_hdr {
	__u64 tstamp_ns;         /* bpf_ktime_get_ns() at punt */
	__u32 kind;              /* enum mip6_punt_kind */
	__u32 ifindex;           /* ingress interface */
	__u32 len;               /* bytes that follow (<= MIP6_PUNT_MAX) */
	__u32 orig_len;          /* the packet's IPv6 length on the wire */
	__u8  src_mac[6];        /* Ethernet source, for the record */
	__u8  _pad[2];
};
_Static_assert(sizeof(struct mip6_punt_hdr) == 32, "mip6_punt_hdr size");

struct mip6_punt_record {
	struct mip6_punt_hdr hdr;
	__u8 data[MIP6_PUNT_MAX];
};
_Static_assert(sizeof(struct mip6_punt_record) == 32 + MIP6_PUNT_MAX, "mip6_punt_record size");

/* ======================================================================
 * Mobile node (bpf/mip6_mn.bpf.c): TC programs on every MN interface.
 * Ingress: decapsulate the home agent's tunnel to the care-of address,
 * punt Mobility Headers from the home agent. Egress: reverse-tunnel
 * packets from the home address (RFC 6275 §11.3.1).
 * ====================================================================== */

/* ---- map names (at most 15 characters) ---- */
#define MIP6_MAP_MN_CONFIG     "mip6_mn_config"
#define MIP6_MAP_MN_COUNTERS   "mip6_mn_counts"
#define MIP6_MAP_MN_PUNT       "mip6_mn_punt"

/* ---- program names in the embedded object ---- */
#define MIP6_PROG_MN_INGRESS   "mip6_mn_ingress"
#define MIP6_PROG_MN_EGRESS    "mip6_mn_egress"

/* ---- the TC slot of the mobile node's filters (ingress and egress), apart from the
 * home agent's and from the `tc filter add ... bpf da` default (handle 1, priority 1) ---- */
#define MIP6_MN_TC_HANDLE      0x6d6eu /* "mn" */
#define MIP6_MN_TC_PRIORITY    0x11u

/* ---- mip6_mn_config.flags ---- */
#define MIP6_MN_TUNNEL_UP      0x1  /* a home registration is accepted: decapsulate and reverse-tunnel */

/* ---- counters: index into the per-CPU array mip6_mn_counts ---- */
#define MIP6_MN_COUNTERS(X)                                                     \
	X(IN_TOTAL,              "in_total")              /* every packet seen on ingress */ \
	X(IN_PASS,               "in_pass")               /* not ours: to the kernel untouched */ \
	X(DECAP,                 "decap")                 /* tunneled by the home agent to the CoA: delivered */ \
	X(DROP_TUNNEL_DOWN,      "drop_tunnel_down")      /* IPv6-in-IPv6 while no registration is up */ \
	X(DROP_TUNNEL_NOT_COA,   "drop_tunnel_not_coa")   /* outer destination is not the care-of address */ \
	X(DROP_TUNNEL_SPOOFED,   "drop_tunnel_spoofed")   /* outer source is not the home agent */ \
	X(DROP_TUNNEL_MALFORMED, "drop_tunnel_malformed") /* inner packet truncated or not IPv6 */ \
	X(DROP_TUNNEL_NOT_HOA,   "drop_tunnel_not_hoa")   /* inner destination neither the HoA nor multicast */ \
	X(DROP_DECAP_FAIL,       "drop_decap_fail")       /* bpf_skb_adjust_room refused */ \
	X(MH_PUNT,               "mh_punt")               /* MH from the home agent (BA, BRR, BE) to the control plane */ \
	X(MH_PUNT_TUNNELED,      "mh_punt_tunneled")      /* an MH inside the tunnel (a BRR); punted as above */ \
	X(MH_PUNT_TRUNCATED,     "mh_punt_truncated")     /* punted, longer than MIP6_PUNT_MAX */ \
	X(MH_PUNT_RING_FULL,     "drop_mh_ring_full")     /* control plane not keeping up */ \
	X(DROP_FRAGMENT,         "drop_fragment")         /* first fragment of an MH from the home agent (also inside the tunnel) */ \
	X(IN_DROP_MALFORMED,     "drop_malformed")        /* IPv6 header or extension header truncated */ \
	X(IN_PASS_EXT_CHAIN,     "pass_ext_chain")        /* more than MIP6_MAX_EXT_HEADERS: left to the kernel */ \
	X(OUT_TOTAL,             "out_total")             /* every packet seen on egress */ \
	X(OUT_PASS,              "out_pass")              /* not from the home address (CoA, tunneled, not IPv6) */ \
	X(OUT_PASS_TUNNEL_DOWN,  "out_pass_tunnel_down")  /* from the home address, no registration (at home) */ \
	X(OUT_PASS_ND,           "out_pass_nd")           /* Neighbor Discovery (ICMPv6 133-137) stays on the link */ \
	X(OUT_PASS_SCOPE,        "out_pass_scope")        /* multicast or link-local destination */ \
	X(ENCAP,                 "encap")                 /* reverse-tunneled to the home agent */ \
	X(ENCAP_TX,              "encap_tx")              /* ... out of this interface, MACs from the FIB */ \
	X(ENCAP_REDIRECT,        "encap_redirect")        /* ... redirected to the care-of interface */ \
	X(ENCAP_REDIRECT_NEIGH,  "encap_redirect_neigh")  /* ... bpf_redirect_neigh: neighbour unresolved or forwarding off */ \
	X(ENCAP_TOO_BIG,         "encap_too_big")         /* Packet Too Big returned to the local stack */ \
	X(DROP_ENCAP_FAIL,       "drop_encap_fail")       /* bpf_skb_adjust_room refused (or > 64 KiB) */ \
	X(DROP_ENCAP_NO_ROUTE,   "drop_encap_no_route")   /* no route to the home agent */ \
	X(PASS_TUNNEL_FRAGMENT,  "pass_tunnel_fragment")  /* a fragment of a tunnel packet from the home agent to the CoA \
	                                                   * (RFC 2473 §7.1(b)): to the kernel, which reassembles it for \
	                                                   * the daemon's tunnel socket */ \
	X(DROP_ENCAP_LIMIT,      "drop_encap_limit")      /* RFC 2473 §5.1: Tunnel Encapsulation Limit 0: Parameter \
	                                                   * Problem to the local stack instead of the tunnel */

#define MIP6_MN_COUNTER_ENUM(name, str) MIP6_MN_CNT_##name,
enum mip6_mn_counter {
	MIP6_MN_COUNTERS(MIP6_MN_COUNTER_ENUM)
	MIP6_MN_CNT_MAX
};
#undef MIP6_MN_COUNTER_ENUM

/* mip6_mn_config: array of one. The punt ring (mip6_mn_punt) carries struct
 * mip6_punt_record with kind MIP6_PUNT_MH; hdr.ifindex is the ingress interface. */
struct mip6_mn_config {
	__u8  hoa[16];           /* home address, network order */
	__u8  ha[16];            /* home agent address, network order */
	__u8  coa[16];           /* current care-of address, network order */
	__u8  pending_coa[16];   /* care-of address of an outstanding BU, or ::. Tunneled packets to it
	                          * are accepted too: the home agent switches when it accepts the BU,
	                          * before our BA arrives (make-before-break without loss) */
	__u32 coa_ifindex;       /* interface the care-of address is on, host order */
	__u32 flags;             /* MIP6_MN_*, host order */
	__u8  coa_gateway[16];   /* next hop to the home agent through coa_ifindex (the control plane's
	                          * route lookup, "from coa oif coa_ifindex"), or :: (on-link, unknown):
	                          * the main table may prefer another link that cannot carry the tunnel */
};
_Static_assert(sizeof(struct mip6_mn_config) == 88, "mip6_mn_config size");


/* ======================================================================
 * Home agent: the pinned state that outlives the daemon (issue 6).
 * Maps and program attachments stay in bpffs while the daemon restarts
 * or is upgraded; the next daemon adopts them only if they were made by
 * a compatible version.
 * ====================================================================== */

/* Made by the control plane itself (bpf_map_create), pinned beside the program's maps. */
#define MIP6_MAP_META          "mip6_meta"
#define MIP6_META_MAGIC        0x4d495036u /* "MIP6" */
/* Bump when a pinned map's layout or meaning changes without its sizes changing
 * (the fingerprint catches size, type and flag changes by itself). */
#define MIP6_STATE_VERSION     3  /* 2: bindings expire in the data plane, next hops carry their age;
                                    * 3: per-binding stats and next hops in arrays by slot, new counters
                                    *    (the counters map grew: libbpf would refuse to reuse the pinned
                                    *    one, the fingerprint leaves sizes out); mip6_ll_proxy,
                                    *    link-local addresses of L bindings */

/* mip6_meta: array of one. */
struct mip6_meta {
	__u32 magic;             /* MIP6_META_MAGIC */
	__u32 version;           /* MIP6_STATE_VERSION of the daemon that made the pins */
	__u64 fingerprint;       /* FNV-1a of every pinned map's name, type, key/value size, flags */
	__u64 created_unix_ns;   /* when the pins were made (CLOCK_REALTIME) */
	char  build[40];         /* version string of the mip6 that made them, NUL-padded */
};
_Static_assert(sizeof(struct mip6_meta) == 64, "mip6_meta size");

/* How the program is attached to an interface: mip6_iface.attach. */
enum mip6_attach_kind {
	MIP6_ATTACH_NONE = 0,
	MIP6_ATTACH_XDP_NATIVE = 1,  /* bpf_link pinned as <bpffs>/link_xdp_<ifindex> */
	MIP6_ATTACH_XDP_GENERIC = 2, /* the same, skb mode */
	MIP6_ATTACH_TC = 3,          /* cls_bpf on clsact ingress, MIP6_HA_TC_HANDLE / _PRIORITY */
};
#define MIP6_HA_TC_HANDLE      0x6d36u /* "m6" */
#define MIP6_HA_TC_PRIORITY    0x10u

/* ======================================================================
 * Local mobility anchor (bpf/mip6_lma.bpf.c, RFC 5213): XDP (and TC)
 * on the LMA's interfaces. Its own maps and pin directory: the home
 * agent's are keyed by home address, the LMA's by home network prefix.
 *  - to an address in a bound /64 (mip6_lma_hnp) while the binding
 *    lives: IPv6-in-IPv6 to the binding's MAG (§5.6.2)
 *  - next header 41 to the LMA address from the MAG the inner source's
 *    /64 is bound to: decapsulated, passed to the kernel to route (§5.6.1)
 *  - Mobility Header to the LMA address: to the control plane's ring
 *    (per-MAG and global token buckets), dropped
 * ====================================================================== */

/* ---- map names (at most 15 characters) ---- */
#define MIP6_MAP_LMA_HNP       "mip6_lma_hnp"    /* home network prefix (/64) -> binding */
#define MIP6_MAP_LMA_CONFIG    "mip6_lma_config"
#define MIP6_MAP_LMA_COUNTERS  "mip6_lma_counts"
#define MIP6_MAP_LMA_PUNT      "mip6_lma_punt"   /* struct mip6_punt_record, kind MIP6_PUNT_MH */
#define MIP6_MAP_LMA_PUNT_LIMIT "mip6_lma_tb"    /* signaling token bucket, all MAGs */
#define MIP6_MAP_LMA_MAG_LIMIT "mip6_lma_mag_tb" /* signaling token buckets per MAG (source address) */
#define MIP6_MAP_LMA_NEXTHOP   "mip6_lma_nh"     /* next-hop cache of the MAG addresses */
#define MIP6_MAP_LMA_ICMP_LIMIT "mip6_lma_icmp"  /* token bucket of the ICMPv6 errors the LMA sends */

/* ---- program names in the embedded object ---- */
#define MIP6_PROG_LMA_XDP      "mip6_lma_xdp"
#define MIP6_PROG_LMA_TC       "mip6_lma_tc"
/* Where mip6 lma attaches mip6_lma_tc: clsact ingress of every --interface. */
#define MIP6_LMA_TC_HANDLE     0x6c6du /* "lm" */
#define MIP6_LMA_TC_PRIORITY   0x12u

/* ---- capacities ---- */
#ifndef MIP6_LMA_MAX_BINDINGS
#define MIP6_LMA_MAX_BINDINGS  1048576   /* home network prefixes (one entry per /64) */
#endif
#ifndef MIP6_LMA_MAX_MAGS
#define MIP6_LMA_MAX_MAGS      4096      /* per-MAG signaling limiters (LRU); past it only the global one applies */
#endif

/* ---- mip6_lma_config.flags ---- */
#define MIP6_LMA_CFG_ENABLED   0x1  /* forwarding on; off means every packet is passed */

/* ---- counters: index into the per-CPU array mip6_lma_counts ---- */
#define MIP6_LMA_COUNTERS(X)                                                    \
	X(RX_TOTAL,              "rx_total")              /* every packet seen */ \
	X(PASS_NOT_IPV6,         "pass_not_ipv6")                                \
	X(PASS_OTHER,            "pass_other")            /* not ours (or disabled): to the kernel */ \
	X(PASS_LOCAL,            "pass_local")            /* to the LMA address, neither MH nor tunnel */ \
	X(PASS_EXPIRED,          "pass_expired")          /* to a bound /64 whose binding's lifetime is over: \
	                                                   * not tunneled, to the kernel */ \
	X(ENCAP,                 "encap")                 /* downlink: tunneled to the MAG (§5.6.2) */ \
	X(ENCAP_TX,              "encap_tx")              /* ... sent back out the same interface */ \
	X(ENCAP_REDIRECT,        "encap_redirect")        /* ... redirected to another interface */ \
	X(ENCAP_PASS_NO_NEIGH,   "encap_pass_no_neigh")   /* ... handed to the kernel to resolve the next hop */ \
	X(ENCAP_PASS_HOPLIMIT,   "encap_pass_hoplimit")   /* hop limit <= 1: the kernel sends Time Exceeded */ \
	X(ENCAP_TOO_BIG,         "encap_too_big")         /* Packet Too Big returned to the sender */ \
	X(NH_CACHE_HIT,          "nexthop_cache_hit")     /* forwarded without bpf_fib_lookup */ \
	X(NH_CACHE_MISS,         "nexthop_cache_miss")                           \
	X(DECAP,                 "decap")                 /* uplink: decapsulated, the kernel routes it (§5.6.1) */ \
	X(MH_PUNT,               "mh_punt")               /* Mobility Header handed to the control plane */ \
	X(MH_PUNT_TRUNCATED,     "mh_punt_truncated")     /* punted, longer than MIP6_PUNT_MAX */ \
	X(MH_PUNT_RING_FULL,     "drop_mh_ring_full")     /* control plane not keeping up */ \
	X(DROP_PUNT_RATE_LIMITED, "drop_punt_rate_limited")         /* signaling over the global rate */ \
	X(DROP_PUNT_MAG_RATE_LIMITED, "drop_punt_mag_rate_limited") /* signaling over one MAG's rate */ \
	X(DROP_MH_FRAGMENT,      "drop_mh_fragment")      /* fragmented signaling is not reassembled */ \
	X(DROP_MALFORMED,        "drop_malformed")        /* IPv6 header or extension header truncated */ \
	X(DROP_EXT_CHAIN,        "drop_ext_chain")        /* extension-header chain to the LMA address too long */ \
	X(DROP_TUNNEL_MALFORMED, "drop_tunnel_malformed") /* inner packet truncated or not IPv6 */ \
	X(DROP_TUNNEL_NO_BINDING, "drop_tunnel_no_binding") /* inner source's /64 is bound to no one */ \
	X(DROP_TUNNEL_SPOOFED,   "drop_tunnel_spoofed")   /* outer source is not the MAG the /64 is bound to */ \
	X(DROP_TUNNEL_EXPIRED,   "drop_tunnel_expired")   /* uplink on a binding whose lifetime is over */ \
	X(DROP_TUNNEL_LINK_LOCAL, "drop_tunnel_link_local") /* inner source is link-local: never forwarded */ \
	X(DROP_ENCAP_NO_ROUTE,   "drop_encap_no_route")   /* no route to the MAG */ \
	X(DROP_ENCAP_GSO,        "drop_encap_gso")        /* TC: a GSO skb the tunnel cannot re-segment */ \
	X(DROP_ENCAP_TUNNEL_MTU, "drop_encap_tunnel_mtu") /* 1280 or less, does not fit a route whose MTU is \
	                                                   * below 1280 + 40: needs a fragmented tunnel packet \
	                                                   * (RFC 2473 §7.1(b)), which the LMA does not send yet */ \
	X(DROP_ENCAP_LIMIT,      "drop_encap_limit")      /* RFC 2473 §5.1: Tunnel Encapsulation Limit 0: \
	                                                   * Parameter Problem to the source */ \
	X(DROP_ICMP_RATE_LIMITED, "drop_icmp_rate_limited") /* too big or out of encapsulation limit, ICMPv6 \
	                                                   * error budget spent: dropped without the error */ \
	X(DROP_ADJUST_FAIL,      "drop_adjust_fail")      /* the kernel refused to grow or shrink the packet */

#define MIP6_LMA_COUNTER_ENUM(name, str) MIP6_LMA_CNT_##name,
enum mip6_lma_counter {
	MIP6_LMA_COUNTERS(MIP6_LMA_COUNTER_ENUM)
	MIP6_LMA_CNT_MAX
};
#undef MIP6_LMA_COUNTER_ENUM


/* mip6_lma_hnp: key = a home network prefix, its first 64 bits (the /64). */
struct mip6_lma_hnp_key {
	__u8 prefix[8];          /* network order */
};
_Static_assert(sizeof(struct mip6_lma_hnp_key) == 8, "mip6_lma_hnp_key size");

/* mip6_lma_hnp: value, one per prefix of a binding cache entry (RFC 5213 §5.1). The control
 * plane owns it; BPF only reads it. */
struct mip6_lma_binding {
	__u64 expires_ns;        /* CLOCK_MONOTONIC (bpf_ktime_get_ns) when the binding expires */
	__u64 registered_ns;     /* CLOCK_MONOTONIC of the last accepted PBU */
	__u8  mag[16];           /* the MAG's Proxy-CoA: tunnel far end, network order */
	__u32 lifetime_s;        /* granted lifetime, seconds, host order */
	__u32 flags;             /* reserved, 0 */
};
_Static_assert(sizeof(struct mip6_lma_binding) == 40, "mip6_lma_binding size");

/* mip6_lma_config: array of one. */
struct mip6_lma_config {
	/* Signaling rate limits as token buckets in nanoseconds of credit (as mip6_config): a
	 * punt costs cost_ns, the bucket holds burst_ns. 0 = no limit. */
	__u64 punt_cost_ns;      /* all MAGs together */
	__u64 punt_burst_ns;
	__u64 mag_cost_ns;       /* per MAG (source address of the signaling) */
	__u64 mag_burst_ns;
	__u8  lma_addr[16];      /* the LMA address: tunnel entry/exit point, PBUs go to it */
	__u32 flags;             /* MIP6_LMA_CFG_*, host order */
	__u32 nh_gen;            /* next-hop cache generation (as mip6_config.nh_gen) */
	__u8  tunnel_hop_limit;  /* outer hop limit; 0 = MIP6_TUNNEL_HOP_LIMIT */
	__u8  _pad[7];
};
_Static_assert(sizeof(struct mip6_lma_config) == 64, "mip6_lma_config size");

/* mip6_lma_mag_tb: an LRU per-CPU hash keyed by the MAG's address (struct mip6_addr_key),
 * value struct mip6_rate_state: a MAG re-registering thousands of mobile nodes has its own
 * budget, not one shared with every other MAG of its /64 (design §3.5 item 6). */

/* ======================================================================
 * Mobile access gateway (bpf/mip6_mag.bpf.c, RFC 5213 §6): TC programs.
 * Its own maps and pin directory.
 * mip6_mag_access, clsact ingress of every access link (node -> network):
 *  - from a registered node (source /64 in mip6_mag_hnp, Ethernet source
 *    and access link the entry's, binding alive): IPv6-in-IPv6 to the
 *    node's LMA from the Proxy-CoA (§6.10.5), hop limit - 1
 *  - a Router Solicitation: to the control plane (MIP6_PUNT_RS), dropped
 *  - a frame from a MAC the control plane does not hold on this link
 *    (mip6_mag_macs): an attach trigger (MIP6_PUNT_ATTACH, at most one
 *    per MAC per attach_punt_ns); ND/MLD go on to the kernel, data is
 *    dropped
 *  - ND, MLD, link-local and multicast destinations: to the kernel,
 *    which owns the shared link-local address and MAC
 * mip6_mag_core, clsact ingress of the core interface (network -> node):
 *  - next header 41 to the Proxy-CoA from the LMA the inner destination's
 *    /64 is bound to: decapsulated, Ethernet to the node's MAC from the
 *    shared MAC, hop limit - 1, redirected out of its access link (§6.10.5)
 *  - Mobility Header to the Proxy-CoA: to the control plane (MIP6_PUNT_MH)
 * ====================================================================== */

/* ---- map names (at most 15 characters) ---- */
#define MIP6_MAP_MAG_HNP       "mip6_mag_hnp"    /* home network prefix (/64) -> registered node */
#define MIP6_MAP_MAG_MACS      "mip6_mag_macs"   /* MAC -> access link of a node the control plane holds */
#define MIP6_MAP_MAG_SEEN      "mip6_mag_seen"   /* LRU, BPF-owned: per-MAC punt limiter */
#define MIP6_MAP_MAG_CONFIG    "mip6_mag_config"
#define MIP6_MAP_MAG_COUNTERS  "mip6_mag_counts"
#define MIP6_MAP_MAG_PUNT      "mip6_mag_punt"   /* struct mip6_punt_record: MH, RS, ATTACH */
#define MIP6_MAP_MAG_NEXTHOP   "mip6_mag_nh"     /* next-hop cache of the LMA addresses */
#define MIP6_MAP_MAG_ICMP_LIMIT "mip6_mag_icmp"  /* token bucket of the ICMPv6 errors the MAG sends */

/* ---- program names in the embedded object ---- */
#define MIP6_PROG_MAG_ACCESS   "mip6_mag_access"
#define MIP6_PROG_MAG_CORE     "mip6_mag_core"
/* Where mip6 mag attaches them: clsact ingress of every --access and --core interface. */
#define MIP6_MAG_TC_HANDLE     0x6d67u /* "mg" */
#define MIP6_MAG_TC_PRIORITY   0x13u

/* ---- capacities ---- */
#ifndef MIP6_MAG_MAX_BINDINGS
#define MIP6_MAG_MAX_BINDINGS  65536     /* home network prefixes of registered nodes (one entry per /64) */
#endif
#ifndef MIP6_MAG_MAX_NODES
#define MIP6_MAG_MAX_NODES     65536     /* MACs the control plane holds */
#endif
#ifndef MIP6_MAG_MAX_SEEN
#define MIP6_MAG_MAX_SEEN      16384     /* per-MAC punt limiters (LRU) */
#endif

/* ---- mip6_mag_config.flags ---- */
#define MIP6_MAG_CFG_ENABLED   0x1  /* forwarding on; off means every packet is passed */

/* mip6_mag_hnp: key = a home network prefix, its first 64 bits (the /64). */
struct mip6_mag_hnp_key {
	__u8 prefix[8];          /* network order */
};
_Static_assert(sizeof(struct mip6_mag_hnp_key) == 8, "mip6_mag_hnp_key size");

/* mip6_mag_hnp: value, one per prefix of a registered node (the MAG's Binding Update List
 * entry, RFC 5213 §6.1). The control plane owns it; BPF only reads it. */
struct mip6_mag_node {
	__u64 expires_ns;        /* CLOCK_MONOTONIC when the LMA's binding expires: no forwarding after */
	__u8  lma[16];           /* the node's LMA: tunnel far end, network order */
	__u8  mac[6];            /* the node's MAC: uplink anti-spoofing, downlink Ethernet destination */
	__u8  _pad[2];
	__u32 ifindex;           /* the node's access link */
	__u32 flags;             /* reserved, 0 */
};
_Static_assert(sizeof(struct mip6_mag_node) == 40, "mip6_mag_node size");

/* mip6_mag_macs: key = a MAC the control plane holds (attached, registering or refused). */
struct mip6_mag_mac_key {
	__u8 mac[6];
	__u8 _pad[2];            /* 0 */
};
_Static_assert(sizeof(struct mip6_mag_mac_key) == 8, "mip6_mag_mac_key size");

struct mip6_mag_mac {
	__u32 ifindex;           /* the access link it is held on: a frame from another one is an attach trigger */
	__u32 flags;             /* reserved, 0 */
};
_Static_assert(sizeof(struct mip6_mag_mac) == 8, "mip6_mag_mac size");

/* mip6_mag_seen: key struct mip6_mag_mac_key, value: when this MAC was last punted. */
struct mip6_mag_seen {
	__u64 attach_ns;         /* last MIP6_PUNT_ATTACH */
	__u64 rs_ns;             /* last MIP6_PUNT_RS */
};
_Static_assert(sizeof(struct mip6_mag_seen) == 16, "mip6_mag_seen size");

/* mip6_mag_config: array of one. */
struct mip6_mag_config {
	__u8  proxy_coa[16];     /* uplink tunnel source, downlink tunnel destination; PBAs come to it */
	__u8  link_local[16];    /* the shared link-local address of every access link (errors to nodes from it) */
	__u8  mac[6];            /* the shared MAC of every access link: downlink frames' source */
	__u8  tunnel_hop_limit;  /* outer hop limit; 0 = MIP6_TUNNEL_HOP_LIMIT */
	__u8  _pad0;
	__u32 flags;             /* MIP6_MAG_CFG_*, host order */
	__u32 nh_gen;            /* next-hop cache generation (as mip6_config.nh_gen) */
	__u32 core_ifindex;      /* where tunnels leave; 0: wherever the FIB says */
	__u32 _pad1;
	__u64 attach_punt_ns;    /* at most one MIP6_PUNT_ATTACH per MAC per this long; 0 = no limit */
	__u64 rs_punt_ns;        /* at most one MIP6_PUNT_RS per MAC per this long; 0 = no limit */
};
_Static_assert(sizeof(struct mip6_mag_config) == 72, "mip6_mag_config size");

/* ---- counters: index into the per-CPU array mip6_mag_counts ---- */
#define MIP6_MAG_COUNTERS(X)                                                    \
	X(RX_ACCESS,             "rx_access")             /* every packet seen on an access link */ \
	X(RX_CORE,               "rx_core")               /* every packet seen on the core interface */ \
	X(PASS_NOT_IPV6,         "pass_not_ipv6")                                \
	X(PASS_OTHER,            "pass_other")            /* not ours (or disabled): to the kernel */ \
	X(PASS_LOCAL,            "pass_local")            /* to the kernel: on an access link ND, MLD, link-local or \
	                                                   * multicast; on the core one to the Proxy-CoA, neither tunnel \
	                                                   * nor MH (echo, TCP to the MAG) */ \
	X(ENCAP,                 "encap")                 /* uplink: tunneled to the LMA */ \
	X(ENCAP_REDIRECT,        "encap_redirect")        /* ... redirected to the core interface */ \
	X(ENCAP_REDIRECT_NEIGH,  "encap_redirect_neigh")  /* ... the kernel resolves the next hop */ \
	X(ENCAP_TOO_BIG,         "encap_too_big")         /* Packet Too Big returned to the node */ \
	X(TIME_EXCEEDED,         "time_exceeded")         /* uplink hop limit <= 1: Time Exceeded returned to the node */ \
	X(NH_CACHE_HIT,          "nexthop_cache_hit")     /* forwarded without bpf_fib_lookup */ \
	X(NH_CACHE_MISS,         "nexthop_cache_miss")                           \
	X(DECAP,                 "decap")                 /* downlink: decapsulated to the node's MAC */ \
	X(MH_PUNT,               "mh_punt")               /* Mobility Header handed to the control plane */ \
	X(MH_PUNT_TRUNCATED,     "mh_punt_truncated")     /* punted, longer than MIP6_PUNT_MAX */ \
	X(RS_PUNT,               "rs_punt")               /* Router Solicitation handed to the control plane */ \
	X(ATTACH_PUNT,           "attach_punt")           /* frame from an unknown MAC: attach trigger */ \
	X(DROP_RING_FULL,        "drop_ring_full")        /* control plane not keeping up */ \
	X(DROP_PUNT_LIMITED,     "drop_punt_limited")     /* RS or attach trigger within the MAC's interval */ \
	X(DROP_UNKNOWN_MAC,      "drop_unknown_mac")      /* data from a MAC the control plane does not hold here */ \
	X(DROP_NOT_REGISTERED,   "drop_not_registered")   /* data from a held MAC whose source /64 is not bound to it */ \
	X(DROP_SPOOFED,          "drop_spoofed")          /* source /64 bound to another MAC or access link */ \
	X(DROP_EXPIRED,          "drop_expired")          /* binding's lifetime is over (no daemon to refresh it) */ \
	X(DROP_HOP_LIMIT,        "drop_hop_limit")        /* hop limit <= 1 with no Time Exceeded: downlink (its \
	                                                   * source is beyond the LMA), or for an ICMPv6 error \
	                                                   * or a source that names no node */ \
	X(DROP_MH_FRAGMENT,      "drop_mh_fragment")      /* fragmented signaling is not reassembled */ \
	X(DROP_MALFORMED,        "drop_malformed")        /* IPv6 header or extension header truncated */ \
	X(DROP_TUNNEL_MALFORMED, "drop_tunnel_malformed") /* inner packet truncated or not IPv6 */ \
	X(DROP_TUNNEL_NO_BINDING, "drop_tunnel_no_binding") /* inner destination's /64 is bound to no node here */ \
	X(DROP_TUNNEL_SPOOFED,   "drop_tunnel_spoofed")   /* outer source is not the node's LMA */ \
	X(DROP_ENCAP_NO_ROUTE,   "drop_encap_no_route")   /* no route to the LMA */ \
	X(DROP_ENCAP_LIMIT,      "drop_encap_limit")      /* RFC 2473 §5.1 limit 0: Parameter Problem to the node */ \
	X(DROP_ICMP_RATE_LIMITED, "drop_icmp_rate_limited") /* ICMPv6 error budget spent: dropped without it */ \
	X(DROP_ADJUST_FAIL,      "drop_adjust_fail")      /* the kernel refused to grow or shrink the packet */ \
	X(DROP_ENCAP_GSO,        "drop_encap_gso")        /* a GSO skb the tunnel cannot re-segment, or a packet the \
	                                                   * outer payload length cannot carry (> 64 KiB) */ \
	X(DROP_ENCAP_TUNNEL_MTU, "drop_encap_tunnel_mtu") /* 1280 or less, does not fit a route whose MTU is below \
	                                                   * 1280 + 40: needs a fragmented tunnel packet (RFC 2473 \
	                                                   * §7.1(b)), which the MAG does not send */ \
	X(DROP_EXT_CHAIN,        "drop_ext_chain")        /* core: extension-header chain to the Proxy-CoA too long */

#define MIP6_MAG_COUNTER_ENUM(name, str) MIP6_MAG_CNT_##name,
enum mip6_mag_counter {
	MIP6_MAG_COUNTERS(MIP6_MAG_COUNTER_ENUM)
	MIP6_MAG_CNT_MAX
};
#undef MIP6_MAG_COUNTER_ENUM


#endif /* MIP6_SHARED_H */
