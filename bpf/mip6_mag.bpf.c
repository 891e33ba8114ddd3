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
#include "lib/ptb.h"
#include "lib/nexthop.h"
#include "lib/ratelimit.h"
#include "lib/tunnel.h"
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

/* ---- ICMPv6 errors to the node ---- */

/* RFC 4443 §2.4(f): one bucket for every ICMPv6 error this program originates; 1 when this one may go. */
static __always_inline int mag_icmp_error_allowed(__u64 now)
{
	__u32 zero = 0;
	struct mip6_token_bucket *tb = bpf_map_lookup_elem(&mip6_mag_icmp, &zero);
	const __u64 cost = 1000000000ULL / MIP6_ICMP_ERRORS_PER_S;
	return tb && m6_bucket_take(tb, now, cost, cost * MIP6_ICMP_ERRORS_BURST);
}

/* The frame is now an ICMPv6 error from the shared link-local address to the node (its
 * Ethernet destination the node's MAC, swapped in by lib/ptb.h): from the shared MAC, back out
 * of the access link it came from. */
static __always_inline int mag_error_to_node(struct __sk_buff *skb, const struct mip6_mag_config *cfg, __u32 cnt)
{
	void *data = m6_data(skb, MAG_HOOK);
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > m6_data_end(skb, MAG_HOOK))
		return M6_DROP(MIP6_MAG_CNT_DROP_ADJUST_FAIL);
	mac_copy(eth->h_source, cfg->mac);
	return M6_OUT(cnt, m6_tx(skb, MAG_HOOK));
}

/* RFC 2473 §7, RFC 4443 §3.2: the node's packet does not fit the tunnel. */
static __always_inline int mag_packet_too_big(struct __sk_buff *skb, const struct mip6_mag_config *cfg, __u32 mtu,
					      __u64 now)
{
	if (!mag_icmp_error_allowed(now))
		return M6_DROP(MIP6_MAG_CNT_DROP_ICMP_RATE_LIMITED);
	int rc = m6_packet_too_big(skb, MAG_HOOK, cfg->link_local, mtu);
	if (rc == M6_PTB_NOT_TOO_BIG) /* shorter than a quote: only a route below 1280 + 40 does that */
		return M6_DROP(MIP6_MAG_CNT_DROP_ENCAP_TUNNEL_MTU);
	if (rc)
		return M6_DROP(MIP6_MAG_CNT_DROP_ADJUST_FAIL);
	return mag_error_to_node(skb, cfg, MIP6_MAG_CNT_ENCAP_TOO_BIG);
}

/* RFC 2473 §5.1: a Tunnel Encapsulation Limit of 0: discarded, Parameter Problem (code 0,
 * pointing at the limit) to the node. */
static __always_inline int mag_encap_limit_spent(struct __sk_buff *skb, const struct mip6_mag_config *cfg,
						 __u32 pointer, __u32 inner_len, __u64 now)
{
	if (!mag_icmp_error_allowed(now))
		return M6_DROP(MIP6_MAG_CNT_DROP_ICMP_RATE_LIMITED);
	if (m6_param_problem(skb, MAG_HOOK, cfg->link_local, pointer, inner_len))
		return M6_DROP(MIP6_MAG_CNT_DROP_ADJUST_FAIL);
	return mag_error_to_node(skb, cfg, MIP6_MAG_CNT_DROP_ENCAP_LIMIT);
}

/* ---- uplink: node -> LMA ---- */

/* RFC 2473 §3.1: the inner packet is forwarded once by the entry (or exit) point; the skb
 * checksum follows. */
static __always_inline void mag_hop_limit_dec(struct __sk_buff *skb, struct ipv6hdr *ip6)
{
	__u32 old_word = ((__u32 *)ip6)[1];
	ip6->hop_limit--;
	__u32 new_word = ((__u32 *)ip6)[1];
	m6_csum_replaced(skb, MAG_HOOK, &old_word, 4, &new_word, 4);
}

/* What goes on the wire after encapsulation must fit the route (the LMA's rule): the packet +
 * `overhead`, or one segment of a GSO skb (TCP segments shrink by the overhead, UDP GSO
 * datagrams keep their size with FIXED_GSO and grow by it); 0 when the tunnel cannot carry it.
 * *flags: open_room's. */
static __always_inline __u32 mag_encap_wire_len(struct __sk_buff *skb, struct ipv6hdr *ip6, __u32 inner_len,
						__u32 overhead, __u64 *flags)
{
	*flags = BPF_F_ADJ_ROOM_ENCAP_L3_IPV6;
	__u32 gso = m6_gso_size(skb, MAG_HOOK);
	if (!gso)
		return inner_len + overhead;
	__u32 seg = m6_seg_len(skb, MAG_HOOK, ETH_HLEN_, ip6->nexthdr, inner_len);
	if (seg == 0)
		return 0;
	if (ip6->nexthdr == IPPROTO_UDP_) {
		*flags |= BPF_F_ADJ_ROOM_FIXED_GSO;
		return seg + overhead;
	}
	if (gso <= overhead + IPV6_HLEN)
		return 0;
	return seg;
}

/* RFC 5213 §6.10.5: tunnel a registered node's packet from the Proxy-CoA to its LMA. */
static __always_inline int mag_uplink(struct __sk_buff *skb, const struct mip6_mag_config *cfg, struct ipv6hdr *ip6,
				      const struct mip6_mag_node *n, __u64 now)
{
	/* payload_len goes into the outer header: it must not claim more than is there (0 would
	 * be a jumbogram, which no tunnel carries). */
	__u32 plen = bpf_ntohs(ip6->payload_len);
	if (plen == 0 || ETH_HLEN_ + IPV6_HLEN + plen > skb->len)
		return M6_DROP(MIP6_MAG_CNT_DROP_MALFORMED);
	if (ip6->hop_limit <= 1) /* no Time Exceeded from here yet */
		return M6_DROP(MIP6_MAG_CNT_DROP_HOP_LIMIT);

	M6_ADDR(lma);
	M6_ADDR(pcoa);
	addr_copy(lma, n->lma);
	addr_copy(pcoa, cfg->proxy_coa);
	__u32 inner_len = plen + IPV6_HLEN;
	__u32 first_word = *(__u32 *)ip6; /* version, traffic class, flow label: copied out (RFC 2473 §6.4) */

	int tel = M6_TEL_NONE;
	if (m6_may_carry_tel(ip6->nexthdr)) {
		__u32 pointer = 0;
		tel = m6_tel_find(skb, MAG_HOOK, ETH_HLEN_, inner_len, ip6->nexthdr, &pointer);
		if (tel == M6_TEL_MALFORMED)
			return M6_DROP(MIP6_MAG_CNT_DROP_MALFORMED);
		if (tel == 0)
			return mag_encap_limit_spent(skb, cfg, pointer, inner_len, now);
		if (tel > 0)
			tel--;
	}
	__u32 overhead = m6_tunnel_overhead(tel);

	__u64 room_flags = 0;
	__u32 wire_len = mag_encap_wire_len(skb, ip6, inner_len, overhead, &room_flags);
	if (wire_len == 0 || wire_len > 0xffff || inner_len + overhead - IPV6_HLEN > 0xffff) /* the outer payload length */
		return M6_DROP(MIP6_MAG_CNT_DROP_ENCAP_GSO);

	/* An input lookup as if the packet came in on the core interface (its forwarding setting and
	 * policy rules apply), or on this access link when the control plane names none. */
	struct bpf_fib_lookup fib;
	int hit;
	__u32 fib_ifindex = cfg->core_ifindex ? cfg->core_ifindex : skb->ifindex;
	m6_fib_init(&fib, fib_ifindex, IPPROTO_IPV6_, wire_len, pcoa, lma);
	int rc = m6_fib_cached(skb, &mip6_mag_nh, cfg->nh_gen, now, &fib, &hit);
	mag_count(hit ? MIP6_MAG_CNT_NH_CACHE_HIT : MIP6_MAG_CNT_NH_CACHE_MISS);
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED) {
		/* RFC 2473 §7.1: the tunnel MTU is the route's less our headers, never below 1280. A
		 * packet of 1280 or less that still does not fit needs a fragmented tunnel packet
		 * (§7.1(b)), which the MAG does not send: dropped, counted. */
		if (fib.mtu_result < 1280 + overhead && inner_len <= 1280)
			return M6_DROP(MIP6_MAG_CNT_DROP_ENCAP_TUNNEL_MTU);
		__u32 mtu = fib.mtu_result > 1280 + overhead ? fib.mtu_result - overhead : 1280;
		return mag_packet_too_big(skb, cfg, mtu, now);
	}
	/* Forwarding off on the lookup's interface: bpf_fib_lookup refuses, the kernel can still
	 * route the tunnel packet out of the core interface (bpf_redirect_neigh, no MTU check). */
	int kernel_routes = rc == BPF_FIB_LKUP_RET_FWD_DISABLED && cfg->core_ifindex;
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH && !kernel_routes)
		return M6_DROP(MIP6_MAG_CNT_DROP_ENCAP_NO_ROUTE);

	mag_hop_limit_dec(skb, ip6);
	int err = m6_open_room(skb, MAG_HOOK, overhead, room_flags);
	if (err == -ENOTSUPP_) /* a GSO type the kernel cannot re-segment behind an outer header */
		return M6_DROP(MIP6_MAG_CNT_DROP_ENCAP_GSO);
	if (err)
		return M6_DROP(MIP6_MAG_CNT_DROP_ADJUST_FAIL);
	/* Every packet pointer is void now: m6_tunnel_header derives and checks its own. */
	struct ethhdr *eth;
	__u8 hop_limit = cfg->tunnel_hop_limit ? cfg->tunnel_hop_limit : MIP6_TUNNEL_HOP_LIMIT;
	if (!m6_tunnel_header(skb, MAG_HOOK, &eth, first_word, inner_len, hop_limit, pcoa, lma, tel))
		return M6_DROP(MIP6_MAG_CNT_DROP_ADJUST_FAIL);
	mag_count(MIP6_MAG_CNT_ENCAP);

	if (kernel_routes)
		return M6_OUT(MIP6_MAG_CNT_ENCAP_REDIRECT_NEIGH, bpf_redirect_neigh(cfg->core_ifindex, NULL, 0, 0));
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		/* The lookup found the next hop (fib.ipv6_dst); the kernel resolves it and queues. */
		struct bpf_redir_neigh nh = { .nh_family = AF_INET6_ };
		nh.ipv6_nh[0] = fib.ipv6_dst[0]; /* ipv6_nh is only 4-byte aligned */
		nh.ipv6_nh[1] = fib.ipv6_dst[1];
		nh.ipv6_nh[2] = fib.ipv6_dst[2];
		nh.ipv6_nh[3] = fib.ipv6_dst[3];
		return M6_OUT(MIP6_MAG_CNT_ENCAP_REDIRECT_NEIGH, bpf_redirect_neigh(fib.ifindex, &nh, sizeof(nh), 0));
	}
	/* fib is on the stack: the head adjustment left it alone. */
	mac_copy(eth->h_dest, fib.dmac);
	mac_copy(eth->h_source, fib.smac);
	return M6_OUT(MIP6_MAG_CNT_ENCAP_REDIRECT, m6_redirect(skb, MAG_HOOK, fib.ifindex, 0));
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
	struct cursor c = { .pos = m6_data(skb, MAG_HOOK), .end = m6_data_end(skb, MAG_HOOK) };
	struct ethhdr *eth = parse_ethhdr(&c);
	if (!eth || eth->h_proto != bpf_htons(ETH_P_IPV6))
		return M6_PASS(MAG_HOOK, MIP6_MAG_CNT_PASS_NOT_IPV6);
	struct ipv6hdr *ip6 = parse_ipv6hdr(&c);
	if (!ip6)
		return M6_DROP(MIP6_MAG_CNT_DROP_MALFORMED);
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
	if ((void *)(inner + 1) > c->end || inner->version != 6)
		return M6_DROP(MIP6_MAG_CNT_DROP_TUNNEL_MALFORMED);
	__u32 outer_len = (void *)inner - (void *)outer;
	__u32 inner_len = bpf_ntohs(inner->payload_len) + IPV6_HLEN;
	if (ETH_HLEN_ + outer_len + inner_len > skb->len)
		return M6_DROP(MIP6_MAG_CNT_DROP_TUNNEL_MALFORMED);

	/* The key is the destination's first 8 bytes, read in place. */
	struct mip6_mag_node *n = bpf_map_lookup_elem(&mip6_mag_hnp, inner->daddr.s6_addr);
	if (!n)
		return M6_DROP(MIP6_MAG_CNT_DROP_TUNNEL_NO_BINDING);
	if (!addr_eq(n->lma, outer->saddr.s6_addr))
		return M6_DROP(MIP6_MAG_CNT_DROP_TUNNEL_SPOOFED);
	if (!mag_node_live(n, m6_now_coarse()))
		return M6_DROP(MIP6_MAG_CNT_DROP_EXPIRED);
	if (inner->hop_limit <= 1) /* no Time Exceeded from here yet */
		return M6_DROP(MIP6_MAG_CNT_DROP_HOP_LIMIT);
	__u8 node_mac[ETH_ALEN];
	mac_copy(node_mac, n->mac);
	__u32 ifindex = n->ifindex;

	if (m6_close_room(skb, MAG_HOOK, outer_len))
		return M6_DROP(MIP6_MAG_CNT_DROP_ADJUST_FAIL);
	/* Every packet pointer is void now: derived and checked again. */
	m6_pull(skb, MAG_HOOK, ETH_HLEN_ + IPV6_HLEN);
	void *data = m6_data(skb, MAG_HOOK);
	struct ethhdr *eth = data;
	struct ipv6hdr *ip6 = data + sizeof(*eth);
	if ((void *)(ip6 + 1) > m6_data_end(skb, MAG_HOOK))
		return M6_DROP(MIP6_MAG_CNT_DROP_ADJUST_FAIL);
	mag_hop_limit_dec(skb, ip6);
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
	int rc = m6_punt(skb, MAG_HOOK, &mip6_mag_punt, MIP6_PUNT_MH, ETH_HLEN_, len, eth->h_source);
	if (rc < 0)
		return M6_DROP(MIP6_MAG_CNT_DROP_RING_FULL);
	if (rc == M6_PUNT_TRUNCATED)
		mag_count(MIP6_MAG_CNT_MH_PUNT_TRUNCATED);
	return M6_DROP(MIP6_MAG_CNT_MH_PUNT);
}

/* Ethernet + IPv6 from the start of the frame; 0, or the outcome for a frame that is not. */
static __always_inline int mag_parse(struct __sk_buff *skb, struct cursor *c, struct ethhdr **eth, struct ipv6hdr **ip6)
{
	c->pos = m6_data(skb, MAG_HOOK);
	c->end = m6_data_end(skb, MAG_HOOK);
	*eth = parse_ethhdr(c);
	if (!*eth || (*eth)->h_proto != bpf_htons(ETH_P_IPV6))
		return M6_PASS(MAG_HOOK, MIP6_MAG_CNT_PASS_NOT_IPV6);
	*ip6 = parse_ipv6hdr(c);
	return *ip6 ? 0 : M6_DROP(MIP6_MAG_CNT_DROP_MALFORMED);
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
