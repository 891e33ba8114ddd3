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
#include "lib/forward.h"
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

/* The LMA to the shared forwarding steps (lib/forward.h): its maps, the counters that name their
 * outcomes. */
static __always_inline struct m6_fwd lma_fwd(const enum m6_hook hook)
{
	return (struct m6_fwd){
		.counters = &mip6_lma_counts,
		.icmp_tb = &mip6_lma_icmp,
		.nh_cache = &mip6_lma_nh,
		.reply_smac = NULL,
		/* a "too big" packet shorter than a quote: no genuine one is; let the kernel judge */
		.ptb_short = M6_PASS(hook, MIP6_LMA_CNT_PASS_OTHER),
		.drop_encap_gso = MIP6_LMA_CNT_DROP_ENCAP_GSO,
		.drop_adjust_fail = MIP6_LMA_CNT_DROP_ADJUST_FAIL,
		.drop_icmp_rate_limited = MIP6_LMA_CNT_DROP_ICMP_RATE_LIMITED,
		.encap_limit = MIP6_LMA_CNT_DROP_ENCAP_LIMIT,
		.encap_too_big = MIP6_LMA_CNT_ENCAP_TOO_BIG,
		.encap = MIP6_LMA_CNT_ENCAP,
		.nh_cache_hit = MIP6_LMA_CNT_NH_CACHE_HIT,
		.nh_cache_miss = MIP6_LMA_CNT_NH_CACHE_MISS,
	};
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
		if (!m6_keyed_take(&mip6_lma_mag_tb, &mag, now, cfg->mag_cost_ns, cfg->mag_burst_ns))
			return MIP6_LMA_CNT_DROP_PUNT_MAG_RATE_LIMITED;
	}
	if (cfg->punt_cost_ns && !m6_global_take(&mip6_lma_tb, now, cfg->punt_cost_ns, cfg->punt_burst_ns))
		return MIP6_LMA_CNT_DROP_PUNT_RATE_LIMITED;
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
	return m6_punt_mh(ctx, hook, &mip6_lma_punt, ETH_HLEN_, pkt_len - ETH_HLEN_, eth->h_source, &mip6_lma_counts,
			  MIP6_LMA_CNT_MH_PUNT, MIP6_LMA_CNT_MH_PUNT_RING_FULL, MIP6_LMA_CNT_MH_PUNT_TRUNCATED);
}

/* RFC 5213 §5.6.2: tunnel a packet for a bound home network prefix to the binding's MAG. */
static __always_inline int lma_encapsulate(void *ctx, const enum m6_hook hook, const struct mip6_lma_config *cfg,
					   struct ipv6hdr *ip6, const struct mip6_lma_binding *b, __u64 now)
{
	if (ip6->hop_limit <= 1) /* the kernel sends Time Exceeded */
		return M6_PASS(hook, MIP6_LMA_CNT_ENCAP_PASS_HOPLIMIT);

	const struct m6_fwd fwd = lma_fwd(hook);
	M6_ADDR(mag);
	M6_ADDR(lma);
	addr_copy(mag, b->mag);
	addr_copy(lma, cfg->lma_addr);
	__u32 inner_len = bpf_ntohs(ip6->payload_len) + IPV6_HLEN;
	__u32 pointer = 0;
	int tel = m6_tel_next(ctx, hook, ETH_HLEN_, inner_len, ip6->nexthdr, &pointer);
	if (tel == M6_TEL_MALFORMED)
		return M6_DROP(MIP6_LMA_CNT_DROP_MALFORMED);
	if (tel == M6_TEL_SPENT)
		return m6_fwd_encap_limit_spent(ctx, hook, &fwd, lma, ip6, pointer, inner_len, now);
	struct m6_encap enc;
	if (!m6_encap_fit(ctx, hook, ip6, inner_len, tel, &enc))
		return M6_DROP(MIP6_LMA_CNT_DROP_ENCAP_GSO);

	struct bpf_fib_lookup fib;
	m6_fib_init(&fib, m6_ifindex(ctx, hook), IPPROTO_IPV6_, enc.wire_len, lma, mag);
	int rc = m6_fwd_route(ctx, &fwd, cfg->nh_gen, now, &fib);
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED) {
		/* RFC 2473 §7.1(b): no tunnel socket sends fragmented tunnel packets for the LMA yet:
		 * dropped, counted. */
		if (m6_encap_needs_fragments(&enc, fib.mtu_result))
			return M6_DROP(MIP6_LMA_CNT_DROP_ENCAP_TUNNEL_MTU);
		return m6_fwd_packet_too_big(ctx, hook, &fwd, lma, m6_tunnel_mtu(fib.mtu_result, enc.overhead), now);
	}
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
		return M6_DROP(MIP6_LMA_CNT_DROP_ENCAP_NO_ROUTE);

	struct ethhdr *eth;
	int ret = m6_encap_push(ctx, hook, &fwd, ip6, &enc, cfg->tunnel_hop_limit, lma, mag, &eth);
	if (ret)
		return ret;
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) /* the kernel resolves the next hop and forwards */
		return M6_PASS(hook, MIP6_LMA_CNT_ENCAP_PASS_NO_NEIGH);
	/* fib is on the stack: the head adjustment left it alone. */
	return m6_forward(ctx, hook, eth, fib.ifindex, fib.smac, fib.dmac, MIP6_LMA_CNT_ENCAP_TX,
			  MIP6_LMA_CNT_ENCAP_REDIRECT);
}

/* A packet for a bound prefix: to its MAG while the binding lives, else to the kernel. */
static __always_inline int lma_downlink(void *ctx, const enum m6_hook hook, const struct mip6_lma_config *cfg,
					struct ipv6hdr *ip6, const struct mip6_lma_binding *b)
{
	if (!m6_encap_len_ok(ctx, hook, ip6))
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
	if (!m6_decap_inner_len(ctx, hook, inner, outer_len, data_end))
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
	return m6_parse_frame(ctx, hook, c, eth, ip6, MIP6_LMA_CNT_PASS_NOT_IPV6, MIP6_LMA_CNT_DROP_MALFORMED);
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
