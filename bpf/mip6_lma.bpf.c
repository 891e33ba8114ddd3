// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Local mobility anchor data plane (Proxy Mobile IPv6, RFC 5213 §5.6) on the LMA's
 * interfaces: one body for both hooks through the context layer (lib/ctx.h), as the home
 * agent's, sharing every map (lma_maps.h):
 *
 *  mip6_lma_xdp  SEC("xdp")
 *  mip6_lma_tc   SEC("tc"), cls_bpf direct action on clsact ingress (GSO skbs stay GSO)
 *
 *  - downlink (§5.6.2): to an address whose /64 is a bound home network prefix
 *    (mip6_lma_hnp) while the binding lives: IPv6-in-IPv6 (RFC 2473) from the LMA address to
 *    the binding's MAG, the inner hop limit less one, its Tunnel Encapsulation Limit less one
 *    (Parameter Problem when it is 0, §5.1); too big for the tunnel: Packet Too Big (§7);
 *    out through the next-hop cache. A binding whose lifetime is over: to the kernel, never
 *    tunneled (the data plane stays right while no daemon runs)
 *  - uplink (§5.6.1): next header 41 to the LMA address, the inner source's /64 bound, the
 *    binding alive and its MAG the outer source, the inner source not link-local:
 *    decapsulated and passed to the kernel, which routes the inner packet
 *  - Mobility Header to the LMA address (PBU): copied to the control plane's ring through a
 *    per-MAG and a global token bucket, dropped
 *  - everything else: XDP_PASS / TC_ACT_UNSPEC (next filter, then the stack) untouched
 *
 * No proxy ND, no DAD, no home link: the home network prefixes are routed to the LMA.
 * Each function returns an outcome (lib/verdict.h) named by the counters of mip6_shared.h
 * (MIP6_LMA_COUNTERS); lma_process counts it once.
 */
#include "lib/ctx.h"
#include "lib/verdict.h"
#include "lib/punt.h"
#include "lib/ptb.h"
#include "lib/nexthop.h"
#include "lib/ratelimit.h"
#include "lib/tunnel.h"
#include "lma_maps.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Bytes made directly readable (TC): on every packet Ethernet + IPv6 + 8; to the LMA address
 * (tunnels, signaling) enough for an outer header, extension headers and the inner header. */
#ifndef LMA_PULL_FAST
#define LMA_PULL_FAST  (ETH_HLEN_ + IPV6_HLEN + 8)
#endif
#ifndef LMA_PULL_LOCAL
#define LMA_PULL_LOCAL 256
#endif

static __always_inline void lma_count(__u32 idx)
{
	m6_count(&mip6_lma_counts, idx);
}

/* RFC 5213 §5.3.1: an entry forwards for its lifetime only. The control plane removes it on
 * time when it runs; this keeps that true while it does not. `now` is the coarse clock
 * (CLOCK_MONOTONIC, as expires_ns): a binding may outlive its lifetime by one tick. */
static __always_inline int lma_binding_live(const struct mip6_lma_binding *b, __u64 now)
{
	return now < b->expires_ns;
}

/*
 * Signaling flood protection: every punt passes the bucket of its MAG (its source address)
 * and the global one, so a flood cannot starve the control plane and one MAG cannot take
 * the whole budget, while a MAG re-registering many mobile nodes is not throttled by the
 * others of its /64. 0 when allowed, else the counter of the limiter that refused.
 */
static __always_inline __u32 lma_punt_limited(const struct mip6_lma_config *cfg, const struct ipv6hdr *ip6)
{
	__u64 now = bpf_ktime_get_ns();
	if (cfg->mag_cost_ns) {
		struct mip6_addr_key mag __attribute__((aligned(8)));
		addr_copy(mag.addr, ip6->saddr.s6_addr);
		struct mip6_rate_state *b = bpf_map_lookup_elem(&mip6_lma_mag_tb, &mag);
		if (!b) { /* a new MAG evicts the least recently seen one */
			struct mip6_rate_state fresh = { .credit_ns = cfg->mag_burst_ns, .last_ns = now };
			bpf_map_update_elem(&mip6_lma_mag_tb, &mag, &fresh, BPF_NOEXIST);
			b = bpf_map_lookup_elem(&mip6_lma_mag_tb, &mag);
		}
		if (b && !m6_rate_take(&b->credit_ns, &b->last_ns, now, cfg->mag_cost_ns, cfg->mag_burst_ns))
			return MIP6_LMA_CNT_DROP_PUNT_MAG_RATE_LIMITED;
	}
	if (cfg->punt_cost_ns) {
		__u32 zero = 0;
		struct mip6_token_bucket *g = bpf_map_lookup_elem(&mip6_lma_tb, &zero);
		if (g && !m6_bucket_take(g, now, cfg->punt_cost_ns, cfg->punt_burst_ns))
			return MIP6_LMA_CNT_DROP_PUNT_RATE_LIMITED;
	}
	return 0;
}

/* A Mobility Header to the LMA address: to the ring, dropped (the kernel has no PMIPv6). */
static __always_inline int lma_punt_mh(void *ctx, const enum m6_hook hook, const struct mip6_lma_config *cfg,
				       struct ethhdr *eth, struct ipv6hdr *ip6)
{
	__u32 limited = lma_punt_limited(cfg, ip6);
	if (limited)
		return M6_DROP(limited);
	__u32 pkt_len = m6_len(ctx, hook);
	if (pkt_len <= ETH_HLEN_)
		return M6_DROP(MIP6_LMA_CNT_DROP_MALFORMED);
	int rc = m6_punt(ctx, hook, &mip6_lma_punt, MIP6_PUNT_MH, ETH_HLEN_, pkt_len - ETH_HLEN_, eth->h_source);
	if (rc < 0)
		return M6_DROP(MIP6_LMA_CNT_MH_PUNT_RING_FULL);
	if (rc == M6_PUNT_TRUNCATED)
		lma_count(MIP6_LMA_CNT_MH_PUNT_TRUNCATED);
	return M6_DROP(MIP6_LMA_CNT_MH_PUNT);
}

/* RFC 4443 §2.4(f): one bucket for every ICMPv6 error this program originates; 1 when this one may go. */
static __always_inline int lma_icmp_error_allowed(__u64 now)
{
	__u32 zero = 0;
	struct mip6_token_bucket *tb = bpf_map_lookup_elem(&mip6_lma_icmp, &zero);
	const __u64 cost = 1000000000ULL / MIP6_ICMP_ERRORS_PER_S;
	return tb && m6_bucket_take(tb, now, cost, cost * MIP6_ICMP_ERRORS_BURST);
}

/* RFC 2473 §7, RFC 4443 §3.2: the sender's packet does not fit the tunnel; Packet Too Big back
 * out of the arrival interface. */
static __always_inline int lma_packet_too_big(void *ctx, const enum m6_hook hook, const __u8 *lma, __u32 mtu, __u64 now)
{
	if (!lma_icmp_error_allowed(now))
		return M6_DROP(MIP6_LMA_CNT_DROP_ICMP_RATE_LIMITED);
	int rc = m6_packet_too_big(ctx, hook, lma, mtu);
	if (rc == M6_PTB_NOT_TOO_BIG) /* cannot happen for a genuine too-big packet; let the kernel judge */
		return M6_PASS(hook, MIP6_LMA_CNT_PASS_OTHER);
	if (rc)
		return M6_DROP(MIP6_LMA_CNT_DROP_ADJUST_FAIL);
	return M6_OUT(MIP6_LMA_CNT_ENCAP_TOO_BIG, m6_tx(ctx, hook));
}

/* RFC 2473 §5.1: a Tunnel Encapsulation Limit of 0: discarded, Parameter Problem (code 0,
 * pointing at the limit) to its source; none to a source that names no node. */
static __always_inline int lma_encap_limit_spent(void *ctx, const enum m6_hook hook, const __u8 *lma,
						 struct ipv6hdr *ip6, __u32 pointer, __u32 inner_len, __u64 now)
{
	if (addr_is_multicast(ip6->saddr.s6_addr) || addr_is_unspecified(ip6->saddr.s6_addr))
		return M6_DROP(MIP6_LMA_CNT_DROP_ENCAP_LIMIT);
	if (!lma_icmp_error_allowed(now))
		return M6_DROP(MIP6_LMA_CNT_DROP_ICMP_RATE_LIMITED);
	if (m6_param_problem(ctx, hook, lma, pointer, inner_len))
		return M6_DROP(MIP6_LMA_CNT_DROP_ADJUST_FAIL);
	return M6_OUT(MIP6_LMA_CNT_DROP_ENCAP_LIMIT, m6_tx(ctx, hook));
}

/* What goes on the wire after encapsulation must fit the route (the home agent's rule, ha.h
 * ha_encap_wire_len): the packet + `overhead`, or one segment of a GSO skb (TC: TCP segments
 * shrink by the overhead, UDP GSO datagrams grow by it with FIXED_GSO); 0 when the tunnel
 * cannot carry it. *flags: open_room's. */
static __always_inline __u32 lma_encap_wire_len(void *ctx, const enum m6_hook hook, struct ipv6hdr *ip6,
						__u32 inner_len, __u32 overhead, __u64 *flags)
{
	if (hook == M6_XDP)
		return inner_len + overhead;
	*flags = BPF_F_ADJ_ROOM_ENCAP_L3_IPV6;
	__u32 gso = m6_gso_size(ctx, hook);
	if (!gso)
		return inner_len + overhead;
	__u32 seg = m6_seg_len(ctx, hook, ETH_HLEN_, ip6->nexthdr, inner_len);
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

/* RFC 2473 §3.1: the inner packet is forwarded once by the entry point; the skb checksum follows (TC). */
static __always_inline void lma_hop_limit_dec(void *ctx, const enum m6_hook hook, struct ipv6hdr *ip6)
{
	__u32 old_word = ((__u32 *)ip6)[1];
	ip6->hop_limit--;
	__u32 new_word = ((__u32 *)ip6)[1];
	m6_csum_replaced(ctx, hook, &old_word, 4, &new_word, 4);
}

/* RFC 5213 §5.6.2: tunnel a packet for a bound home network prefix to the binding's MAG. */
static __always_inline int lma_encapsulate(void *ctx, const enum m6_hook hook, const struct mip6_lma_config *cfg,
					   struct ipv6hdr *ip6, const struct mip6_lma_binding *b, __u64 now)
{
	if (ip6->hop_limit <= 1) /* the kernel sends Time Exceeded */
		return M6_PASS(hook, MIP6_LMA_CNT_ENCAP_PASS_HOPLIMIT);

	M6_ADDR(mag);
	M6_ADDR(lma);
	addr_copy(mag, b->mag);
	addr_copy(lma, cfg->lma_addr);
	__u32 inner_len = bpf_ntohs(ip6->payload_len) + IPV6_HLEN;
	__u32 first_word = *(__u32 *)ip6; /* version, traffic class, flow label: copied out (RFC 2473 §6.4) */

	int tel = M6_TEL_NONE;
	if (m6_may_carry_tel(ip6->nexthdr)) {
		__u32 pointer = 0;
		tel = m6_tel_find(ctx, hook, ETH_HLEN_, inner_len, ip6->nexthdr, &pointer);
		if (tel == M6_TEL_MALFORMED)
			return M6_DROP(MIP6_LMA_CNT_DROP_MALFORMED);
		if (tel == 0)
			return lma_encap_limit_spent(ctx, hook, lma, ip6, pointer, inner_len, now);
		if (tel > 0)
			tel--;
	}
	__u32 overhead = m6_tunnel_overhead(tel);

	__u64 room_flags = 0;
	__u32 wire_len = lma_encap_wire_len(ctx, hook, ip6, inner_len, overhead, &room_flags);
	if (wire_len == 0 || wire_len > 0xffff || inner_len + overhead - IPV6_HLEN > 0xffff) /* the outer payload length */
		return M6_DROP(MIP6_LMA_CNT_DROP_ENCAP_GSO);

	struct bpf_fib_lookup fib;
	int hit;
	m6_fib_init(&fib, m6_ifindex(ctx, hook), IPPROTO_IPV6_, wire_len, lma, mag);
	int rc = m6_fib_cached(ctx, &mip6_lma_nh, cfg->nh_gen, now, &fib, &hit);
	lma_count(hit ? MIP6_LMA_CNT_NH_CACHE_HIT : MIP6_LMA_CNT_NH_CACHE_MISS);
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED) {
		/* RFC 2473 §7.1: the tunnel MTU is the route's less our headers, never below 1280. A
		 * packet of 1280 or less that still does not fit needs a fragmented tunnel packet
		 * (§7.1(b)): no tunnel socket sends those for the LMA yet, so it is dropped, counted. */
		if (fib.mtu_result < 1280 + overhead && inner_len <= 1280)
			return M6_DROP(MIP6_LMA_CNT_DROP_ENCAP_TUNNEL_MTU);
		__u32 mtu = fib.mtu_result > 1280 + overhead ? fib.mtu_result - overhead : 1280;
		return lma_packet_too_big(ctx, hook, lma, mtu, now);
	}
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
		return M6_DROP(MIP6_LMA_CNT_DROP_ENCAP_NO_ROUTE);

	lma_hop_limit_dec(ctx, hook, ip6);
	int err = m6_open_room(ctx, hook, overhead, room_flags);
	if (err == -ENOTSUPP_) /* a GSO type the kernel cannot re-segment behind an outer header */
		return M6_DROP(MIP6_LMA_CNT_DROP_ENCAP_GSO);
	if (err)
		return M6_DROP(MIP6_LMA_CNT_DROP_ADJUST_FAIL);
	/* Every packet pointer is void now: m6_tunnel_header derives and checks its own. */
	struct ethhdr *eth;
	__u8 hop_limit = cfg->tunnel_hop_limit ? cfg->tunnel_hop_limit : MIP6_TUNNEL_HOP_LIMIT;
	if (!m6_tunnel_header(ctx, hook, &eth, first_word, inner_len, hop_limit, lma, mag, tel))
		return M6_DROP(MIP6_LMA_CNT_DROP_ADJUST_FAIL);
	lma_count(MIP6_LMA_CNT_ENCAP);

	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) /* the kernel resolves the next hop and forwards */
		return M6_PASS(hook, MIP6_LMA_CNT_ENCAP_PASS_NO_NEIGH);
	/* fib is on the stack: the head adjustment left it alone. */
	mac_copy(eth->h_dest, fib.dmac);
	mac_copy(eth->h_source, fib.smac);
	if (fib.ifindex == m6_ifindex(ctx, hook))
		return M6_OUT(MIP6_LMA_CNT_ENCAP_TX, m6_tx(ctx, hook));
	return M6_OUT(MIP6_LMA_CNT_ENCAP_REDIRECT, m6_redirect(ctx, hook, fib.ifindex, 0));
}

/* A packet for a bound prefix: to its MAG while the binding lives, else to the kernel. */
static __always_inline int lma_downlink(void *ctx, const enum m6_hook hook, const struct mip6_lma_config *cfg,
					struct ipv6hdr *ip6, const struct mip6_lma_binding *b)
{
	/* payload_len goes into the outer header: it must not claim more than is there (0 would
	 * be a jumbogram, which no tunnel carries). */
	__u32 plen = bpf_ntohs(ip6->payload_len);
	if (plen == 0 || ETH_HLEN_ + IPV6_HLEN + plen > m6_len(ctx, hook))
		return M6_DROP(MIP6_LMA_CNT_DROP_MALFORMED);
	__u64 now = m6_now_coarse();
	if (!lma_binding_live(b, now))
		return M6_PASS(hook, MIP6_LMA_CNT_PASS_EXPIRED);
	return lma_encapsulate(ctx, hook, cfg, ip6, b, now);
}

/* RFC 5213 §5.6.1: a tunnel packet from a MAG. `inner` follows `outer_len` bytes of outer
 * IPv6 header (and extension headers). Anti-spoofing: the inner source's /64 must be bound,
 * alive, to the MAG that sent the tunnel packet. The inner packet goes to the kernel, which
 * routes it (hop limit, ICMPv6 errors, firewall included). */
static __always_inline int lma_decapsulate(void *ctx, const enum m6_hook hook, struct ipv6hdr *outer,
					   struct ipv6hdr *inner, __u32 outer_len, void *data_end)
{
	if ((void *)(inner + 1) > data_end || inner->version != 6)
		return M6_DROP(MIP6_LMA_CNT_DROP_TUNNEL_MALFORMED);
	__u32 inner_len = bpf_ntohs(inner->payload_len) + IPV6_HLEN;
	if (ETH_HLEN_ + outer_len + inner_len > m6_len(ctx, hook))
		return M6_DROP(MIP6_LMA_CNT_DROP_TUNNEL_MALFORMED);
	if (addr_is_link_local(inner->saddr.s6_addr)) /* RFC 4291 §2.5.6: never forwarded */
		return M6_DROP(MIP6_LMA_CNT_DROP_TUNNEL_LINK_LOCAL);

	/* The key is the source's first 8 bytes, read in place. */
	struct mip6_lma_binding *b = bpf_map_lookup_elem(&mip6_lma_hnp, inner->saddr.s6_addr);
	if (!b)
		return M6_DROP(MIP6_LMA_CNT_DROP_TUNNEL_NO_BINDING);
	if (!addr_eq(b->mag, outer->saddr.s6_addr))
		return M6_DROP(MIP6_LMA_CNT_DROP_TUNNEL_SPOOFED);
	if (!lma_binding_live(b, m6_now_coarse()))
		return M6_DROP(MIP6_LMA_CNT_DROP_TUNNEL_EXPIRED);

	if (m6_close_room(ctx, hook, outer_len))
		return M6_DROP(MIP6_LMA_CNT_DROP_ADJUST_FAIL);
	/* Every packet pointer is void now; nothing more is read from the frame. */
	return M6_PASS(hook, MIP6_LMA_CNT_DECAP);
}

/* Packets to the LMA address: MH to the control plane, IPv6-in-IPv6 to decapsulation. */
static __always_inline int lma_to_local(void *ctx, const enum m6_hook hook, const struct mip6_lma_config *cfg,
					struct ethhdr *eth, struct ipv6hdr *ip6, struct cursor *c)
{
	int frag_next;
	int nh = m6_walk_ext(c, ip6->nexthdr, &frag_next);
	if (nh == M6_WALK_TRUNCATED)
		return M6_DROP(MIP6_LMA_CNT_DROP_MALFORMED);
	if (nh == M6_WALK_TOO_LONG)
		return M6_DROP(MIP6_LMA_CNT_DROP_EXT_CHAIN);
	if (nh == IPPROTO_IPV6_)
		return lma_decapsulate(ctx, hook, ip6, c->pos, c->pos - (void *)ip6, c->end);
	if (nh == IPPROTO_MH_)
		return lma_punt_mh(ctx, hook, cfg, eth, ip6);
	/* Signaling is never reassembled: a first fragment of an MH is dropped here, later
	 * fragments die in the kernel's reassembly queue. */
	if (nh == IPPROTO_FRAGMENT_ && frag_next == IPPROTO_MH_)
		return M6_DROP(MIP6_LMA_CNT_DROP_MH_FRAGMENT);
	return M6_PASS(hook, MIP6_LMA_CNT_PASS_LOCAL);
}

/* Ethernet + IPv6 from the start of the frame; 0, or the outcome for a frame that is not. */
static __always_inline int lma_parse(void *ctx, const enum m6_hook hook, struct cursor *c, struct ethhdr **eth,
				     struct ipv6hdr **ip6)
{
	c->pos = m6_data(ctx, hook);
	c->end = m6_data_end(ctx, hook);
	*eth = parse_ethhdr(c);
	if (!*eth || (*eth)->h_proto != bpf_htons(ETH_P_IPV6))
		return M6_PASS(hook, MIP6_LMA_CNT_PASS_NOT_IPV6);
	*ip6 = parse_ipv6hdr(c);
	return *ip6 ? 0 : M6_DROP(MIP6_LMA_CNT_DROP_MALFORMED);
}

static __always_inline int lma_handle(void *ctx, const enum m6_hook hook)
{
	__u32 zero = 0;
	struct cursor c;
	struct ethhdr *eth;
	struct ipv6hdr *ip6;

	m6_pull(ctx, hook, LMA_PULL_FAST);
	int ret = lma_parse(ctx, hook, &c, &eth, &ip6);
	if (ret)
		return ret;

	struct mip6_lma_config *cfg = bpf_map_lookup_elem(&mip6_lma_config, &zero);
	if (!cfg || !(cfg->flags & MIP6_LMA_CFG_ENABLED))
		return M6_PASS(hook, MIP6_LMA_CNT_PASS_OTHER);

	if (addr_eq(ip6->daddr.s6_addr, cfg->lma_addr)) {
		/* Tunnels and signaling are parsed deeper than LMA_PULL_FAST (a no-op in XDP). */
		if (m6_pull(ctx, hook, LMA_PULL_LOCAL) > 0 && lma_parse(ctx, hook, &c, &eth, &ip6))
			return M6_DROP(MIP6_LMA_CNT_DROP_MALFORMED);
		return lma_to_local(ctx, hook, cfg, eth, ip6, &c);
	}

	/* The fast path: one hash lookup on the destination's /64 (read in place). Multicast and
	 * link-local destinations are never in a home network prefix and cost no lookup. */
	if (addr_is_multicast(ip6->daddr.s6_addr) || addr_is_link_local(ip6->daddr.s6_addr))
		return M6_PASS(hook, MIP6_LMA_CNT_PASS_OTHER);
	struct mip6_lma_binding *b = bpf_map_lookup_elem(&mip6_lma_hnp, ip6->daddr.s6_addr);
	if (!b)
		return M6_PASS(hook, MIP6_LMA_CNT_PASS_OTHER);
	return lma_downlink(ctx, hook, cfg, ip6, b);
}

/* The whole program: count every packet, handle it, count its outcome, return the verdict. */
static __always_inline int lma_process(void *ctx, const enum m6_hook hook)
{
	lma_count(MIP6_LMA_CNT_RX_TOTAL);
	return m6_exit(hook, lma_handle(ctx, hook), &mip6_lma_counts);
}

SEC("xdp")
int mip6_lma_xdp(struct xdp_md *ctx)
{
	return lma_process(ctx, M6_XDP);
}

SEC("tc")
int mip6_lma_tc(struct __sk_buff *skb)
{
	return lma_process(skb, M6_TC);
}
