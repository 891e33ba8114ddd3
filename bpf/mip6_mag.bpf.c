// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Mobile access gateway data plane (Proxy Mobile IPv6, RFC 5213 §6.10.5), TC (cls_bpf, direct
 * action) on clsact ingress, through the context layer (lib/ctx.h) for the TC hook only, sharing
 * every map (mag_maps.h). The kernel has neither PMIPv6 nor the tunnel: both are here.
 *
 * mip6_mag_access, on every access link (node -> network):
 *  - a Router Solicitation (hop limit 255): to the control plane (MIP6_PUNT_RS), at most one
 *    per MAC per rs_punt_ns, dropped (the daemon answers it, RFC 5213 §6.9.1.1)
 *  - from a registered node (source /64 in mip6_mag_hnp, Ethernet source and access link the
 *    entry's, alive), not ND and not to a link-local or multicast address: IPv6-in-IPv6
 *    (RFC 2473) from the Proxy-CoA to the node's LMA, the inner hop limit less one (the MAG is a
 *    router hop), its Tunnel Encapsulation Limit less one (Parameter Problem when it is 0,
 *    §5.1); too big for the tunnel: Packet Too Big to the node (§7); out through the next-hop
 *    cache, redirected to the egress interface
 *  - a source /64 bound to another MAC or access link: dropped (anti-spoofing); expired: dropped
 *  - a frame from a MAC the control plane does not hold on this link (mip6_mag_macs): an attach
 *    trigger (MIP6_PUNT_ATTACH, its first bytes, at most one per MAC per attach_punt_ns); ND,
 *    MLD, link-local and multicast destinations go on to the kernel, data is dropped
 *  - ND, MLD, link-local and multicast destinations from a held MAC: to the kernel, which owns
 *    the shared link-local address and MAC
 *
 * mip6_mag_core, on the core interface (network -> node):
 *  - next header 41 to the Proxy-CoA from the LMA the inner destination's /64 is bound to,
 *    alive: decapsulated, the inner hop limit less one, Ethernet to the node's MAC from the
 *    shared MAC, redirected out of its access link (§6.10.5)
 *  - a Mobility Header to the Proxy-CoA (a PBA): copied to the control plane's ring, dropped
 *  - everything else: TC_ACT_UNSPEC untouched (next filter, then the stack)
 *
 * Each function returns an outcome (lib/verdict.h) named by the counters of mip6_shared.h
 * (MIP6_MAG_COUNTERS); each program counts it once, in m6_exit. Punt triggers that do not
 * decide a frame's fate (attach, limited, ring full) are counted on the way.
 */
#include "lib/ctx.h"
#include "lib/verdict.h"
#include "lib/punt.h"
#include "lib/forward.h"
#include "mag_maps.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* TC only: every call into the context layer names it. */
#define MAG_HOOK M6_TC

/* Bytes made directly readable: on every access frame Ethernet + IPv6 + 8 (the ICMPv6 type);
 * to the Proxy-CoA enough for an outer header, extension headers and the inner header. */
#ifndef MAG_PULL_FAST
#define MAG_PULL_FAST (ETH_HLEN_ + IPV6_HLEN + 8)
#endif
#ifndef MAG_PULL_CORE
#define MAG_PULL_CORE 256
#endif

#define ND_RS_       133
#define ND_REDIRECT_ 137

static __always_inline void mag_count(__u32 idx)
{
	m6_count(&mip6_mag_counts, idx);
}

/* The MAG to the shared forwarding steps (lib/forward.h): its maps, the counters that name their
 * outcomes. Its ICMPv6 errors go to the node from the shared link-local address and MAC (the
 * node's MAC swapped in by lib/ptb.h), back out of the access link they came from. */
static __always_inline struct m6_fwd mag_fwd(const struct mip6_mag_config *cfg)
{
	return (struct m6_fwd){
		.counters = &mip6_mag_counts,
		.icmp_tb = &mip6_mag_icmp,
		.nh_cache = &mip6_mag_nh,
		.reply_smac = cfg->mac,
		/* shorter than a quote: only a route below 1280 + 40 does that */
		.ptb_short = M6_DROP(MIP6_MAG_CNT_DROP_ENCAP_TUNNEL_MTU),
		.drop_encap_gso = MIP6_MAG_CNT_DROP_ENCAP_GSO,
		.drop_adjust_fail = MIP6_MAG_CNT_DROP_ADJUST_FAIL,
		.drop_icmp_rate_limited = MIP6_MAG_CNT_DROP_ICMP_RATE_LIMITED,
		.encap_limit = MIP6_MAG_CNT_DROP_ENCAP_LIMIT,
		.encap_too_big = MIP6_MAG_CNT_ENCAP_TOO_BIG,
		.encap = MIP6_MAG_CNT_ENCAP,
		.nh_cache_hit = MIP6_MAG_CNT_NH_CACHE_HIT,
		.nh_cache_miss = MIP6_MAG_CNT_NH_CACHE_MISS,
	};
}

/* Ethernet + IPv6 from the start of the frame; 0, or the outcome for a frame that is not. */
static __always_inline int mag_parse(struct __sk_buff *skb, struct cursor *c, struct ethhdr **eth, struct ipv6hdr **ip6)
{
	return m6_parse_frame(skb, MAG_HOOK, c, eth, ip6, MIP6_MAG_CNT_PASS_NOT_IPV6, MIP6_MAG_CNT_DROP_MALFORMED);
}

/* RFC 5213 §6.1: an entry forwards while the LMA's binding lives. The control plane removes
 * it on time when it runs; this keeps that true while it does not. `now` is the coarse clock
 * (CLOCK_MONOTONIC, as expires_ns): an entry may outlive its lifetime by one tick. */
static __always_inline int mag_node_live(const struct mip6_mag_node *n, __u64 now)
{
	return now < n->expires_ns;
}

static __always_inline int mac_eq(const __u8 *a, const __u8 *b)
{
	return ((a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3]) | (a[4] ^ b[4]) | (a[5] ^ b[5])) == 0;
}

/* Hash keys compare their padding: zeroed first. */
static __always_inline void mag_mac_key(struct mip6_mag_mac_key *k, const __u8 *mac)
{
	__builtin_memset(k, 0, sizeof(*k));
	mac_copy(k->mac, mac);
}

/* ---- punts to the control plane ---- */

/* 1 when `key`'s last punt of this kind (rs or attach) is at least `interval` old, or it has
 * none; 0 = no limit. */
static __always_inline int mag_may_punt(const struct mip6_mag_mac_key *key, __u64 interval, int rs, __u64 now)
{
	if (!interval)
		return 1;
	struct mip6_mag_seen *s = bpf_map_lookup_elem(&mip6_mag_seen, key);
	if (!s)
		return 1;
	__u64 last = rs ? s->rs_ns : s->attach_ns;
	return !last || now - last >= interval;
}

/* Remember the punt (only when limited: with no interval nothing reads it). Racing CPUs may
 * both punt once; the daemon takes a trigger twice as once. */
static __always_inline void mag_punted(const struct mip6_mag_mac_key *key, __u64 interval, int rs, __u64 now)
{
	if (!interval)
		return;
	struct mip6_mag_seen *s = bpf_map_lookup_elem(&mip6_mag_seen, key);
	if (s) {
		if (rs)
			s->rs_ns = now;
		else
			s->attach_ns = now;
		return;
	}
	struct mip6_mag_seen fresh = { .attach_ns = rs ? 0 : now, .rs_ns = rs ? now : 0 };
	bpf_map_update_elem(&mip6_mag_seen, key, &fresh, BPF_ANY); /* a new MAC evicts the least recently seen */
}

/* RFC 5213 §6.9.1.1 / §6.9.2: a Router Solicitation goes to the daemon, whole (it starts an
 * attachment, or gets a unicast RA); the kernel never sees it, so no RA from it contradicts ours. */
static __always_inline int mag_punt_rs(struct __sk_buff *skb, const struct mip6_mag_config *cfg, struct ethhdr *eth,
				       struct ipv6hdr *ip6, __u64 now)
{
	struct mip6_mag_mac_key key;
	mag_mac_key(&key, eth->h_source);
	if (!mag_may_punt(&key, cfg->rs_punt_ns, 1, now))
		return M6_DROP(MIP6_MAG_CNT_DROP_PUNT_LIMITED);
	__u32 len = bpf_ntohs(ip6->payload_len) + IPV6_HLEN;
	if (len > skb->len - ETH_HLEN_) /* Ethernet padding may follow a packet, never truncation */
		return M6_DROP(MIP6_MAG_CNT_DROP_MALFORMED);
	if (m6_punt(skb, MAG_HOOK, &mip6_mag_punt, MIP6_PUNT_RS, ETH_HLEN_, len, key.mac) < 0)
		return M6_DROP(MIP6_MAG_CNT_DROP_RING_FULL);
	mag_punted(&key, cfg->rs_punt_ns, 1, now);
	return M6_DROP(MIP6_MAG_CNT_RS_PUNT);
}

/* A frame from a MAC the control plane does not hold on this link: the daemon learns of the
 * node from it (design §2.2). Counted here; the frame's own fate is the caller's. A trigger lost
 * to a full ring is not remembered: the MAC's next frame tries again. */
static __always_inline void mag_attach_trigger(struct __sk_buff *skb, const struct mip6_mag_config *cfg,
					       const struct mip6_mag_mac_key *key, __u64 now)
{
	if (!mag_may_punt(key, cfg->attach_punt_ns, 0, now)) {
		mag_count(MIP6_MAG_CNT_DROP_PUNT_LIMITED);
		return;
	}
	if (m6_punt_head(skb, MAG_HOOK, &mip6_mag_punt, MIP6_PUNT_ATTACH, ETH_HLEN_, skb->len - ETH_HLEN_, key->mac) < 0) {
		mag_count(MIP6_MAG_CNT_DROP_RING_FULL);
		return;
	}
	mag_punted(key, cfg->attach_punt_ns, 0, now);
	mag_count(MIP6_MAG_CNT_ATTACH_PUNT);
}

/* ---- uplink: node -> LMA ---- */

/* RFC 5213 §6.10.5: tunnel a registered node's packet from the Proxy-CoA to its LMA. */
static __always_inline int mag_uplink(struct __sk_buff *skb, const struct mip6_mag_config *cfg, struct ipv6hdr *ip6,
				      const struct mip6_mag_node *n, __u64 now)
{
	if (!m6_encap_len_ok(skb, MAG_HOOK, ip6))
		return M6_DROP(MIP6_MAG_CNT_DROP_MALFORMED);

	const struct m6_fwd fwd = mag_fwd(cfg);
	__u32 inner_len = bpf_ntohs(ip6->payload_len) + IPV6_HLEN;
	/* The MAG is the node's first-hop router (RFC 5213 §6.9.3): the hop a traceroute shows
	 * first, answering from the shared link-local address. */
	if (ip6->hop_limit <= 1)
		return m6_fwd_time_exceeded(skb, MAG_HOOK, &fwd, cfg->link_local, ip6, inner_len, now,
					    MIP6_MAG_CNT_TIME_EXCEEDED, MIP6_MAG_CNT_DROP_HOP_LIMIT);
	M6_ADDR(lma);
	M6_ADDR(pcoa);
	addr_copy(lma, n->lma);
	addr_copy(pcoa, cfg->proxy_coa);
	__u32 pointer = 0;
	int tel = m6_tel_next(skb, MAG_HOOK, ETH_HLEN_, inner_len, ip6->nexthdr, &pointer);
	if (tel == M6_TEL_MALFORMED)
		return M6_DROP(MIP6_MAG_CNT_DROP_MALFORMED);
	if (tel == M6_TEL_SPENT)
		return m6_fwd_encap_limit_spent(skb, MAG_HOOK, &fwd, cfg->link_local, ip6, pointer, inner_len, now);
	struct m6_encap enc;
	if (!m6_encap_fit(skb, MAG_HOOK, ip6, inner_len, tel, &enc))
		return M6_DROP(MIP6_MAG_CNT_DROP_ENCAP_GSO);

	/* An input lookup as if the packet came in on the core interface (its forwarding setting and
	 * policy rules apply), or on this access link when the control plane names none. */
	struct bpf_fib_lookup fib;
	__u32 fib_ifindex = cfg->core_ifindex ? cfg->core_ifindex : skb->ifindex;
	m6_fib_init(&fib, fib_ifindex, IPPROTO_IPV6_, enc.wire_len, pcoa, lma);
	int rc = m6_fwd_route(skb, &fwd, cfg->nh_gen, now, &fib);
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED) {
		/* RFC 2473 §7.1(b): the MAG does not send fragmented tunnel packets: dropped, counted. */
		if (m6_encap_needs_fragments(&enc, fib.mtu_result))
			return M6_DROP(MIP6_MAG_CNT_DROP_ENCAP_TUNNEL_MTU);
		__u32 mtu = m6_tunnel_mtu(fib.mtu_result, enc.overhead);
		return m6_fwd_packet_too_big(skb, MAG_HOOK, &fwd, cfg->link_local, mtu, now);
	}
	/* Forwarding off on the lookup's interface: bpf_fib_lookup refuses, the kernel can still
	 * route the tunnel packet out of the core interface (bpf_redirect_neigh, no MTU check). */
	int kernel_routes = rc == BPF_FIB_LKUP_RET_FWD_DISABLED && cfg->core_ifindex;
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH && !kernel_routes)
		return M6_DROP(MIP6_MAG_CNT_DROP_ENCAP_NO_ROUTE);

	struct ethhdr *eth;
	int ret = m6_encap_push(skb, MAG_HOOK, &fwd, ip6, &enc, cfg->tunnel_hop_limit, pcoa, lma, &eth);
	if (ret)
		return ret;
	if (kernel_routes)
		return m6_redirect_neigh(cfg->core_ifindex, NULL, MIP6_MAG_CNT_ENCAP_REDIRECT_NEIGH);
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) /* the lookup found the next hop (fib.ipv6_dst) */
		return m6_redirect_neigh(fib.ifindex, fib.ipv6_dst, MIP6_MAG_CNT_ENCAP_REDIRECT_NEIGH);
	/* fib is on the stack: the head adjustment left it alone. Out of this link or another, a
	 * redirect in TC either way: counted alike. */
	return m6_forward(skb, MAG_HOOK, eth, fib.ifindex, fib.smac, fib.dmac, MIP6_MAG_CNT_ENCAP_REDIRECT,
			  MIP6_MAG_CNT_ENCAP_REDIRECT);
}

/*
 * Everything the fast path does not forward: the frame's source MAC decides. Not held on this
 * link (new, or moved here from another one): an attach trigger. Then ND, MLD, link-local and
 * multicast go to the kernel; data is dropped, as `spoofed` (its /64 is another's), from an
 * unknown MAC, or from a held one whose source /64 is not (yet) bound to it.
 */
static __always_inline int mag_not_forwarded(struct __sk_buff *skb, const struct mip6_mag_config *cfg,
					     struct ethhdr *eth, int local, int spoofed, __u64 now)
{
	struct mip6_mag_mac_key key;
	mag_mac_key(&key, eth->h_source);
	struct mip6_mag_mac *m = bpf_map_lookup_elem(&mip6_mag_macs, &key);
	int held = m && m->ifindex == skb->ifindex;
	if (!held)
		mag_attach_trigger(skb, cfg, &key, now);
	if (spoofed)
		return M6_DROP(MIP6_MAG_CNT_DROP_SPOOFED);
	if (local)
		return M6_PASS(MAG_HOOK, MIP6_MAG_CNT_PASS_LOCAL);
	return M6_DROP(held ? MIP6_MAG_CNT_DROP_NOT_REGISTERED : MIP6_MAG_CNT_DROP_UNKNOWN_MAC);
}

static __always_inline int mag_access(struct __sk_buff *skb)
{
	__u32 zero = 0;

	if (skb->protocol != bpf_htons(ETH_P_IPV6))
		return M6_PASS(MAG_HOOK, MIP6_MAG_CNT_PASS_NOT_IPV6);
	struct mip6_mag_config *cfg = bpf_map_lookup_elem(&mip6_mag_config, &zero);
	if (!cfg || !(cfg->flags & MIP6_MAG_CFG_ENABLED))
		return M6_PASS(MAG_HOOK, MIP6_MAG_CNT_PASS_OTHER);

	m6_pull(skb, MAG_HOOK, MAG_PULL_FAST);
	struct cursor c;
	struct ethhdr *eth;
	struct ipv6hdr *ip6;
	int ret = mag_parse(skb, &c, &eth, &ip6);
	if (ret)
		return ret;
	__u64 now = m6_now_coarse();

	/* ND is ICMPv6 right after the IPv6 header (RFC 4861 §6.1, §7.1: hop limit 255). */
	int nd = 0;
	__u8 *icmp_type = c.pos;
	if (ip6->nexthdr == IPPROTO_ICMPV6_ && (void *)(icmp_type + 1) <= c.end) {
		if (*icmp_type == ND_RS_ && ip6->hop_limit == 255)
			return mag_punt_rs(skb, cfg, eth, ip6, now);
		nd = *icmp_type >= ND_RS_ && *icmp_type <= ND_REDIRECT_;
	}
	/* What stays on the link: ND, and link-local or multicast destinations (MLD, DAD, RS to
	 * all-routers...). Never tunneled; the kernel answers for the shared link-local address. */
	int local = nd || addr_is_multicast(ip6->daddr.s6_addr) || addr_is_link_local(ip6->daddr.s6_addr);

	/* The fast path: one hash lookup on the source's /64, read in place. Link-local and
	 * unspecified sources (DAD, MLD from ::) are never in a home network prefix. */
	if (local || addr_is_link_local(ip6->saddr.s6_addr) || addr_is_unspecified(ip6->saddr.s6_addr))
		return mag_not_forwarded(skb, cfg, eth, local, 0, now);
	struct mip6_mag_node *n = bpf_map_lookup_elem(&mip6_mag_hnp, ip6->saddr.s6_addr);
	if (!n)
		return mag_not_forwarded(skb, cfg, eth, 0, 0, now);
	/* RFC 5213 §6.10.5 / §6.9.1.1: only the node the prefix was assigned to, on its link. */
	if (!mac_eq(n->mac, eth->h_source) || n->ifindex != skb->ifindex)
		return mag_not_forwarded(skb, cfg, eth, 0, 1, now);
	if (!mag_node_live(n, now))
		return M6_DROP(MIP6_MAG_CNT_DROP_EXPIRED);
	return mag_uplink(skb, cfg, ip6, n, now);
}

SEC("tc")
int mip6_mag_access(struct __sk_buff *skb)
{
	mag_count(MIP6_MAG_CNT_RX_ACCESS);
	return m6_exit(MAG_HOOK, mag_access(skb), &mip6_mag_counts);
}

/* ---- downlink: LMA -> node ---- */

/* RFC 5213 §6.10.5: a tunnel packet from a node's LMA. `inner` follows the outer IPv6 header
 * and its extension headers. Anti-spoofing: the inner destination's /64 must be bound, alive, to
 * a node whose LMA sent the tunnel packet. The inner packet goes straight to the node. */
static __always_inline int mag_decapsulate(struct __sk_buff *skb, const struct mip6_mag_config *cfg,
					   struct ipv6hdr *outer, struct cursor *c)
{
	struct ipv6hdr *inner = c->pos;
	__u32 outer_len = (void *)inner - (void *)outer;
	if (!m6_decap_inner_len(skb, MAG_HOOK, inner, outer_len, c->end))
		return M6_DROP(MIP6_MAG_CNT_DROP_TUNNEL_MALFORMED);

	/* The key is the destination's first 8 bytes, read in place. */
	struct mip6_mag_node *n = bpf_map_lookup_elem(&mip6_mag_hnp, inner->daddr.s6_addr);
	if (!n)
		return M6_DROP(MIP6_MAG_CNT_DROP_TUNNEL_NO_BINDING);
	if (!addr_eq(n->lma, outer->saddr.s6_addr))
		return M6_DROP(MIP6_MAG_CNT_DROP_TUNNEL_SPOOFED);
	if (!mag_node_live(n, m6_now_coarse()))
		return M6_DROP(MIP6_MAG_CNT_DROP_EXPIRED);
	if (inner->hop_limit <= 1) /* its source is beyond the LMA: no Time Exceeded from here */
		return M6_DROP(MIP6_MAG_CNT_DROP_HOP_LIMIT);
	__u8 node_mac[ETH_ALEN];
	mac_copy(node_mac, n->mac);
	__u32 ifindex = n->ifindex;

	const struct m6_fwd fwd = mag_fwd(cfg);
	struct ethhdr *eth;
	struct ipv6hdr *ip6;
	int ret = m6_decap_pop(skb, MAG_HOOK, &fwd, outer_len, &eth, &ip6);
	if (ret)
		return ret;
	m6_hop_limit_dec(skb, MAG_HOOK, ip6);
	/* RFC 5213 §6.9.3: from the MAC every MAG shares, to the node's. */
	mac_copy(eth->h_dest, node_mac);
	mac_copy(eth->h_source, cfg->mac);
	return M6_OUT(MIP6_MAG_CNT_DECAP, m6_redirect(skb, MAG_HOOK, ifindex, 0));
}

/* A Mobility Header to the Proxy-CoA (a PBA): to the ring, dropped (the kernel has no PMIPv6). */
static __always_inline int mag_punt_mh(struct __sk_buff *skb, struct ethhdr *eth, struct ipv6hdr *ip6)
{
	__u32 len = bpf_ntohs(ip6->payload_len) + IPV6_HLEN;
	if (len > skb->len - ETH_HLEN_) /* Ethernet padding may follow a packet, never truncation */
		return M6_DROP(MIP6_MAG_CNT_DROP_MALFORMED);
	return m6_punt_mh(skb, MAG_HOOK, &mip6_mag_punt, ETH_HLEN_, len, eth->h_source, &mip6_mag_counts,
			  MIP6_MAG_CNT_MH_PUNT, MIP6_MAG_CNT_DROP_RING_FULL, MIP6_MAG_CNT_MH_PUNT_TRUNCATED);
}

static __always_inline int mag_core(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct cursor c;
	struct ethhdr *eth;
	struct ipv6hdr *ip6;

	if (skb->protocol != bpf_htons(ETH_P_IPV6))
		return M6_PASS(MAG_HOOK, MIP6_MAG_CNT_PASS_NOT_IPV6);
	struct mip6_mag_config *cfg = bpf_map_lookup_elem(&mip6_mag_config, &zero);
	if (!cfg || !(cfg->flags & MIP6_MAG_CFG_ENABLED))
		return M6_PASS(MAG_HOOK, MIP6_MAG_CNT_PASS_OTHER);

	m6_pull(skb, MAG_HOOK, ETH_HLEN_ + IPV6_HLEN);
	int ret = mag_parse(skb, &c, &eth, &ip6);
	if (ret)
		return ret;
	if (!addr_eq(ip6->daddr.s6_addr, cfg->proxy_coa))
		return M6_PASS(MAG_HOOK, MIP6_MAG_CNT_PASS_OTHER);
	/* Tunnels and signaling are parsed deeper. */
	if (m6_pull(skb, MAG_HOOK, MAG_PULL_CORE) > 0 && mag_parse(skb, &c, &eth, &ip6))
		return M6_DROP(MIP6_MAG_CNT_DROP_MALFORMED);

	int frag_next;
	int nh = m6_walk_ext(&c, ip6->nexthdr, &frag_next);
	if (nh == M6_WALK_TRUNCATED)
		return M6_DROP(MIP6_MAG_CNT_DROP_MALFORMED);
	if (nh == M6_WALK_TOO_LONG)
		return M6_DROP(MIP6_MAG_CNT_DROP_EXT_CHAIN);
	if (nh == IPPROTO_IPV6_)
		return mag_decapsulate(skb, cfg, ip6, &c);
	if (nh == IPPROTO_MH_)
		return mag_punt_mh(skb, eth, ip6);
	/* Signaling is never reassembled: a first fragment of an MH is dropped here, later
	 * fragments die in the kernel's reassembly queue. */
	if (nh == IPPROTO_FRAGMENT_ && frag_next == IPPROTO_MH_)
		return M6_DROP(MIP6_MAG_CNT_DROP_MH_FRAGMENT);
	return M6_PASS(MAG_HOOK, MIP6_MAG_CNT_PASS_LOCAL);
}

SEC("tc")
int mip6_mag_core(struct __sk_buff *skb)
{
	mag_count(MIP6_MAG_CNT_RX_CORE);
	return m6_exit(MAG_HOOK, mag_core(skb), &mip6_mag_counts);
}
