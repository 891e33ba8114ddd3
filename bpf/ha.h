/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The home agent's packet logic (RFC 6275 §10.4), one body for both hooks:
 * ha_process(ctx, hook) is inlined into mip6_ha.bpf.c's SEC("xdp") and SEC("tc") entries
 * with a constant hook, and into perf/'s wrappers (mip6_bench.bpf.c).
 *
 *  - to a registered home address: IPv6-in-IPv6 to the care-of address (RFC 2473), with the
 *    packet's Tunnel Encapsulation Limit less one, or Parameter Problem when it is 0 (§5.1); a
 *    packet of 1280 bytes or less whose tunnel packet would need fragments: to the control
 *    plane (§7.1(b))
 *  - to our address, next header 41 from a registered CoA: reverse tunnel, decapsulate (§10.4.5)
 *  - NS for a registered home address: answer with our link-layer address (proxy ND, §10.4.1),
 *    and for the link-local address of a binding with the L flag (§10.3.1; never tunneled)
 *  - Mobility Header to one of our addresses: copy to the control plane's ring, drop
 *    (this kernel would discard a BU for its Home Address option and answer Parameter Problem)
 *  - everything else: XDP_PASS / TC_ACT_UNSPEC (next filter, then the stack)
 *  - MIP6_CFG_FORWARDER (mip6 forwarder, a data-plane-only node fed from the shared store):
 *    only the two tunnels above; Mobility Headers, ND and what would be punted go to the kernel
 *
 * Each function returns an outcome (lib/verdict.h): a drop reason or a counter and a
 * verdict, both named by the counters of mip6_shared.h; ha_process counts it once.
 */
#ifndef M6_HA_H
#define M6_HA_H

#include "lib/ctx.h"
#include "lib/verdict.h"
#include "lib/punt.h"
#include "lib/forward.h"
#include "ha_maps.h"

/* Bytes made directly readable (TC: a driver may leave headers in page fragments): on every
 * packet Ethernet + IPv6 + the first 8 bytes of the next header; to our own addresses
 * (tunnels, signaling) enough for an outer header, a few extension headers and the inner
 * header; for an NS, the whole message with its options. */
#ifndef HA_PULL_FAST
#define HA_PULL_FAST  (ETH_HLEN_ + IPV6_HLEN + 8)
#endif
#ifndef HA_PULL_LOCAL
#define HA_PULL_LOCAL 256
#endif
#ifndef HA_PULL_ND
#define HA_PULL_ND    MIP6_PUNT_MAX
#endif

static __always_inline void ha_count(__u32 idx)
{
	m6_count(&mip6_counters, idx);
}

/* The home agent to the shared forwarding steps (lib/forward.h): its maps, the counters that
 * name their outcomes. */
static __always_inline struct m6_fwd ha_fwd(const enum m6_hook hook)
{
	return (struct m6_fwd){
		.counters = &mip6_counters,
		.icmp_tb = &mip6_icmp_tb,
		.nh_cache = &mip6_nexthop,
		.reply_smac = NULL,
		/* a "too big" packet shorter than a quote: no genuine one is; let the kernel judge */
		.ptb_short = M6_PASS(hook, MIP6_CNT_PASS_OTHER),
		.drop_encap_gso = MIP6_CNT_DROP_ENCAP_GSO,
		.drop_adjust_fail = MIP6_CNT_DROP_ADJUST_FAIL,
		.drop_icmp_rate_limited = MIP6_CNT_DROP_ICMP_RATE_LIMITED,
		.encap_limit = MIP6_CNT_DROP_ENCAP_LIMIT,
		.encap_too_big = MIP6_CNT_ENCAP_TOO_BIG,
		.encap = MIP6_CNT_ENCAP,
		.nh_cache_hit = MIP6_CNT_NH_CACHE_HIT,
		.nh_cache_miss = MIP6_CNT_NH_CACHE_MISS,
	};
}

/*
 * Signaling flood protection: every punt to the control plane passes a per-source-/64
 * bucket and a global one, so a flood cannot starve the control plane and one source
 * cannot take the whole budget. Forwarding never goes through here.
 * 0 when allowed, else the counter of the limiter that refused.
 */
static __always_inline __u32 ha_punt_limited(const struct mip6_config *cfg, const struct ipv6hdr *ip6)
{
	__u64 now = bpf_ktime_get_ns();
	if (cfg->src_cost_ns) {
		__u64 prefix = *(const __u64 *)ip6->saddr.s6_addr;
		if (!m6_keyed_take(&mip6_src_tb, &prefix, now, cfg->src_cost_ns, cfg->src_burst_ns))
			return MIP6_CNT_PUNT_SRC_RATE_LIMITED;
	}
	if (cfg->punt_cost_ns && !m6_global_take(&mip6_punt_tb, now, cfg->punt_cost_ns, cfg->punt_burst_ns))
		return MIP6_CNT_PUNT_RATE_LIMITED;
	return 0;
}

/* Copy the packet from the IPv6 header on into mip6_punt; 0, or <0 when it could not. */
static __always_inline int ha_punt(void *ctx, const enum m6_hook hook, __u32 kind, struct ethhdr *eth)
{
	__u32 pkt_len = m6_len(ctx, hook);
	if (pkt_len <= ETH_HLEN_)
		return M6_PUNT_FAILED;
	int rc = m6_punt(ctx, hook, &mip6_punt, kind, ETH_HLEN_, pkt_len - ETH_HLEN_, eth->h_source);
	if (rc == M6_PUNT_TRUNCATED)
		ha_count(MIP6_CNT_MH_PUNT_TRUNCATED);
	return rc < 0 ? rc : 0;
}

/* `packets`: 1, or the segments of a GSO skb (TC), so XDP and TC count the same traffic alike.
 * The binding's slot indexes an array: an inlined lookup, no hash. */
static __always_inline void ha_stats_add(const struct mip6_binding *b, __u32 bytes, __u32 packets, int to_mn)
{
	__u32 slot = b->slot;
	struct mip6_binding_stats *s = bpf_map_lookup_elem(&mip6_bind_stats, &slot);
	if (!s) /* a slot past the array: the control plane never hands one out */
		return;
	if (to_mn) {
		__sync_fetch_and_add(&s->to_mn_packets, packets);
		__sync_fetch_and_add(&s->to_mn_bytes, bytes);
	} else {
		__sync_fetch_and_add(&s->from_mn_packets, packets);
		__sync_fetch_and_add(&s->from_mn_bytes, bytes);
	}
}

/* The route to binding `b`'s care-of address when its slot's entry cannot answer: the FIB,
 * whose answer is written back in place. An entry answers only while it is fresh and was
 * filled for the binding's current sequence number (each accepted BU, a move or a slot
 * handed to another binding, asks the FIB again). Two CPUs may refill one entry at once:
 * both write the FIB's answer of the same moment; the payload is written before the
 * generation that makes it valid. */
static __always_inline int ha_fib_refill(void *ctx, const struct mip6_config *cfg, const struct mip6_binding *b,
					 struct mip6_slot_nexthop *e, int fresh, __u64 now, struct bpf_fib_lookup *fib)
{
	ha_count(MIP6_CNT_NH_CACHE_MISS);
	__u32 gen = cfg->nh_gen;
	__u32 len = fib->tot_len;
	int rc = bpf_fib_lookup(ctx, fib, sizeof(*fib), 0);
	if (rc == BPF_FIB_LKUP_RET_SUCCESS && e) {
		struct mip6_nexthop entry;
		m6_nh_make(&entry, &e->nh, fresh, fib, gen, now, len);
		e->nh.gen = gen + 1; /* invalid while the rest is written */
		barrier();
		e->nh.filled_ns = entry.filled_ns;
		e->nh.ifindex = entry.ifindex;
		e->nh.max_len = entry.max_len;
		mac_copy(e->nh.smac, entry.smac);
		mac_copy(e->nh.dmac, entry.dmac);
		e->seq = b->seq;
		barrier();
		e->nh.gen = gen;
	}
	return rc;
}

/*
 * RFC 2473 §7.1(b): the packet is 1280 bytes or less, its tunnel packet exceeds the path MTU to
 * the care-of address, and the sender cannot be asked for less (1280 is the minimum MTU): the
 * tunnel packet must go in fragments, and one packet in, one out is all XDP and TC can do.
 * The packet (it fits a punt record) goes to the control plane, which sends it through the
 * kernel's tunnel socket, which fragments; dropped here. It is data, not signaling: its own
 * bucket, and no more than MIP6_FRAG_PUNT_RING_SHARE of the ring the signaling punts share,
 * so it can take neither the control plane's time nor the ring's room from signaling.
 */
static __always_inline int ha_fragment_punt(void *ctx, const enum m6_hook hook, __u32 inner_len, __u64 now)
{
	if (m6_gso_size(ctx, hook)) /* TC: GRO's merge of several packets, with a checksum left to offload */
		return M6_DROP(MIP6_CNT_DROP_ENCAP_TUNNEL_MTU);
	__u32 zero = 0;
	struct mip6_token_bucket *tb = bpf_map_lookup_elem(&mip6_frag_tb, &zero);
	const __u64 cost = 1000000000ULL / MIP6_FRAG_PUNTS_PER_S;
	if (!tb || !m6_bucket_take(tb, now, cost, cost * MIP6_FRAG_PUNTS_BURST))
		return M6_DROP(MIP6_CNT_DROP_FRAG_RATE_LIMITED);
	if (bpf_ringbuf_query(&mip6_punt, BPF_RB_AVAIL_DATA) >= MIP6_FRAG_PUNT_RING_SHARE)
		return M6_DROP(MIP6_CNT_DROP_FRAG_RING_FULL);
	struct ethhdr *eth = m6_data(ctx, hook);
	if ((void *)(eth + 1) > m6_data_end(ctx, hook))
		return M6_DROP(MIP6_CNT_DROP_MALFORMED);
	if (m6_punt(ctx, hook, &mip6_punt, MIP6_PUNT_FRAGMENT, ETH_HLEN_, inner_len, eth->h_source) != M6_PUNT_OK)
		return M6_DROP(MIP6_CNT_DROP_FRAG_RING_FULL);
	return M6_DROP(MIP6_CNT_ENCAP_FRAG_PUNT);
}

/* RFC 6275 §10.3.1: a binding is used for its lifetime only. The control plane removes
 * it on time when it runs; this keeps that true while it does not (restarts, upgrades).
 * `now` is the coarse clock: a binding may outlive its lifetime by one tick. */
static __always_inline int ha_binding_live(const struct mip6_binding *b, __u64 now)
{
	return now < b->expires_ns;
}

/* RFC 6275 §10.4.1-2: tunnel a packet for a registered home address to its care-of address. */
static __always_inline int ha_encapsulate(void *ctx, const enum m6_hook hook, const struct mip6_config *cfg,
					  struct ipv6hdr *ip6, const struct mip6_binding *b, __u64 now)
{
	if (ip6->hop_limit <= 1) /* the kernel sends Time Exceeded */
		return M6_PASS(hook, MIP6_CNT_ENCAP_HOPLIMIT);

	const struct m6_fwd fwd = ha_fwd(hook);
	M6_ADDR(coa);
	M6_ADDR(ha_addr);
	addr_copy(coa, b->coa);
	addr_copy(ha_addr, cfg->ha_addr);
	__u32 inner_len = bpf_ntohs(ip6->payload_len) + IPV6_HLEN;
	__u32 pointer = 0;
	int tel = m6_tel_next(ctx, hook, ETH_HLEN_, inner_len, ip6->nexthdr, &pointer);
	if (tel == M6_TEL_MALFORMED)
		return M6_DROP(MIP6_CNT_DROP_MALFORMED);
	if (tel == M6_TEL_SPENT)
		return m6_fwd_encap_limit_spent(ctx, hook, &fwd, ha_addr, ip6, pointer, inner_len, now);
	struct m6_encap enc;
	if (!m6_encap_fit(ctx, hook, ip6, inner_len, tel, &enc))
		return M6_DROP(MIP6_CNT_DROP_ENCAP_GSO);

	/* The common case: the binding's slot knows the next hop (an inlined array lookup; no
	 * FIB, not even the lookup request to fill); else the FIB, written back to the slot. */
	__u32 slot = b->slot;
	struct mip6_slot_nexthop *e = bpf_map_lookup_elem(&mip6_slot_nh, &slot);
	int fresh = e && e->seq == b->seq && m6_nh_fresh(&e->nh, cfg->nh_gen, now);
	struct bpf_fib_lookup fib;
	int rc = BPF_FIB_LKUP_RET_SUCCESS;
	__u32 ifindex;
	const __u8 *smac, *dmac;
	if (fresh && enc.wire_len <= e->nh.max_len) {
		ha_count(MIP6_CNT_NH_CACHE_HIT);
		ifindex = e->nh.ifindex;
		smac = e->nh.smac;
		dmac = e->nh.dmac;
	} else {
		m6_fib_init(&fib, m6_ifindex(ctx, hook), IPPROTO_IPV6_, enc.wire_len, ha_addr, coa);
		rc = ha_fib_refill(ctx, cfg, b, e, fresh, now, &fib);
		if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED) {
			/* RFC 2473 §7.1(b): only a fragmented tunnel packet carries this one. */
			if (m6_encap_needs_fragments(&enc, fib.mtu_result)) {
				if (cfg->flags & MIP6_CFG_FORWARDER) /* no tunnel socket here: the replicas' job */
					return M6_PASS(hook, MIP6_CNT_FWD_PASS_ENCAP_FRAG);
				return ha_fragment_punt(ctx, hook, enc.inner_len, now);
			}
			__u32 mtu = m6_tunnel_mtu(fib.mtu_result, enc.overhead);
			return m6_fwd_packet_too_big(ctx, hook, &fwd, ha_addr, mtu, now);
		}
		if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
			return M6_DROP(MIP6_CNT_ENCAP_FIB_FAIL);
		ifindex = fib.ifindex;
		smac = fib.smac;
		dmac = fib.dmac;
	}

	struct ethhdr *eth;
	int ret = m6_encap_push(ctx, hook, &fwd, ip6, &enc, cfg->tunnel_hop_limit, ha_addr, coa, &eth);
	if (ret)
		return ret;
	ha_stats_add(b, enc.inner_len, m6_segs(ctx, hook), 1);

	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) /* the kernel resolves the next hop and forwards */
		return M6_PASS(hook, MIP6_CNT_ENCAP_PASS_NO_NEIGH);
	return m6_forward(ctx, hook, eth, ifindex, smac, dmac, MIP6_CNT_ENCAP_TX, MIP6_CNT_ENCAP_REDIRECT);
}

/* RFC 6275 §10.4.5: reverse tunnel from a registered care-of address. `inner` follows
 * `outer_len` bytes of outer IPv6 header (and extension headers). */
static __always_inline int ha_decapsulate(void *ctx, const enum m6_hook hook, const struct mip6_config *cfg,
					  struct ipv6hdr *outer, struct ipv6hdr *inner, __u32 outer_len, void *data_end)
{
	__u32 inner_len = m6_decap_inner_len(ctx, hook, inner, outer_len, data_end);
	if (!inner_len)
		return M6_DROP(MIP6_CNT_DROP_TUNNEL_MALFORMED);

	struct mip6_binding *b = bpf_map_lookup_elem(&mip6_bindings, inner->saddr.s6_addr);
	if (!b)
		return M6_DROP(MIP6_CNT_DROP_TUNNEL_NO_BINDING);
	if (!addr_eq(b->coa, outer->saddr.s6_addr))
		return M6_DROP(MIP6_CNT_DROP_TUNNEL_SPOOFED);
	__u64 now = m6_now_coarse();
	if (!ha_binding_live(b, now))
		return M6_DROP(MIP6_CNT_DROP_TUNNEL_EXPIRED);

	const struct m6_fwd fwd = ha_fwd(hook);
	/* A GSO skb is checked as one of its segments; 0 (unknown) is left to the kernel. */
	__u32 seg = m6_seg_len(ctx, hook, ETH_HLEN_ + outer_len, inner->nexthdr, inner_len);
	struct bpf_fib_lookup fib;
	m6_fib_init(&fib, m6_ifindex(ctx, hook), inner->nexthdr, seg, inner->saddr.s6_addr, inner->daddr.s6_addr);
	int forward = inner->hop_limit > 1 && fib.tot_len != 0;
	int rc = forward ? m6_fwd_route(ctx, &fwd, cfg->nh_gen, now, &fib) : -1;

	struct ethhdr *eth;
	struct ipv6hdr *ip6;
	int ret = m6_decap_pop(ctx, hook, &fwd, outer_len, &eth, &ip6);
	if (ret)
		return ret;
	ha_count(MIP6_CNT_DECAP);
	ha_stats_add(b, inner_len, m6_segs(ctx, hook), 0);

	if (rc != BPF_FIB_LKUP_RET_SUCCESS) /* no neighbour yet, too big, hop limit: the kernel knows best */
		return M6_PASS(hook, MIP6_CNT_DECAP_PASS_KERNEL);
	m6_hop_limit_dec(ctx, hook, ip6);
	return m6_forward(ctx, hook, eth, fib.ifindex, fib.smac, fib.dmac, MIP6_CNT_DECAP_TX, MIP6_CNT_DECAP_REDIRECT);
}

/* Packets to one of our addresses: MH to the control plane, IPv6-in-IPv6 to decapsulation. */
static __always_inline int ha_to_local(void *ctx, const enum m6_hook hook, const struct mip6_config *cfg,
				       struct ethhdr *eth, struct ipv6hdr *ip6, struct cursor *c)
{
	int frag_next;
	int nh = m6_walk_ext(c, ip6->nexthdr, &frag_next);
	if (nh == M6_WALK_TRUNCATED)
		return M6_DROP(MIP6_CNT_DROP_MALFORMED);
	if (nh == M6_WALK_TOO_LONG)
		return M6_DROP(MIP6_CNT_DROP_EXT_CHAIN);
	if (nh == IPPROTO_IPV6_)
		return ha_decapsulate(ctx, hook, cfg, ip6, c->pos, c->pos - (void *)ip6, c->end);
	/* A forwarder-only node: signaling is the replicas' (the kernel routes it on to them),
	 * fragments included; it punts nothing. */
	if ((cfg->flags & MIP6_CFG_FORWARDER) &&
	    (nh == IPPROTO_MH_ || (nh == IPPROTO_FRAGMENT_ && frag_next == IPPROTO_MH_)))
		return M6_PASS(hook, MIP6_CNT_FWD_PASS_MH);
	if (nh == IPPROTO_MH_) {
		__u32 limited = ha_punt_limited(cfg, ip6);
		if (limited)
			return M6_DROP(limited);
		if (ha_punt(ctx, hook, MIP6_PUNT_MH, eth) < 0)
			return M6_DROP(MIP6_CNT_MH_PUNT_RING_FULL);
		return M6_DROP(MIP6_CNT_MH_PUNT);
	}
	/* Signaling is never reassembled: a first fragment of an MH is dropped here,
	 * later fragments die in the kernel's reassembly queue. */
	if (nh == IPPROTO_FRAGMENT_ && frag_next == IPPROTO_MH_)
		return M6_DROP(MIP6_CNT_DROP_MH_FRAGMENT);
	return M6_PASS(hook, MIP6_CNT_PASS_LOCAL);
}

/*
 * RFC 6275 §10.3.1, L flag: the binding whose mobile node's link-local address `ll` is, through
 * mip6_ll_proxy. The index is not the truth: the home address's binding must carry L and `ll`
 * must be fe80::/64 with its interface identifier, so a binding that lost L (a refresh without
 * it) or went (de-registration, `mip6 bindings delete`) stops the defence at once, whatever
 * the index still holds. Only proxy ND looks here, never the tunnel path.
 */
static __always_inline struct mip6_binding *ha_link_local_binding(const __u8 *ll)
{
	struct mip6_binding_key *hoa = bpf_map_lookup_elem(&mip6_ll_proxy, ll);
	if (!hoa)
		return NULL;
	struct mip6_binding *b = bpf_map_lookup_elem(&mip6_bindings, hoa);
	const __u64 *l = (const __u64 *)ll, *h = (const __u64 *)hoa->hoa;
	if (!b || !(b->flags & MIP6_BU_FLAG_L) || l[0] != bpf_cpu_to_be64(0xfe80000000000000ULL) || l[1] != h[1])
		return NULL;
	return b;
}

/*
 * RFC 6275 §10.4.1 proxy Neighbor Discovery for a registered home address (and, L flag, its
 * link-local address), with the validity checks of RFC 4861 §7.1.1. An NS we do not answer
 * goes to the kernel.
 */
#define HA_NA_LEN (ETH_HLEN_ + IPV6_HLEN + 32)
static __always_inline int ha_proxy_na(void *ctx, const enum m6_hook hook, struct ipv6hdr *ip6, __u8 *icmp,
				       void *data_end)
{
	const int not_ours = M6_PASS(hook, MIP6_CNT_PASS_OTHER);
	if ((void *)(icmp + 24) > data_end)
		return not_ours;
	__u8 *target = icmp + 8;
	struct mip6_binding *b = bpf_map_lookup_elem(&mip6_bindings, target);
	if (!b && addr_is_link_local(target))
		b = ha_link_local_binding(target);
	if (!b)
		return not_ours;
	if (b->ifindex && b->ifindex != m6_ifindex(ctx, hook))
		return not_ours;
	if (!ha_binding_live(b, m6_now_coarse()))
		return M6_PASS(hook, MIP6_CNT_PASS_EXPIRED);
	__u32 icmp_len = bpf_ntohs(ip6->payload_len);
	int unspec = addr_is_unspecified(ip6->saddr.s6_addr);
	if (ip6->hop_limit != 255 || icmp[1] != 0 || icmp_len < 24 || (void *)icmp + icmp_len > data_end ||
	    addr_is_multicast(target) || addr_is_multicast(ip6->saddr.s6_addr))
		return M6_DROP(MIP6_CNT_NS_BAD);
	if (unspec && !addr_is_solicited_node_of(ip6->daddr.s6_addr, target))
		return M6_DROP(MIP6_CNT_NS_BAD);
	/* Options: each must have a non-zero length; a DAD probe carries no SLLA. */
	__u8 *opt = icmp + 24;
	int i;
	for (i = 0; i < 4; i++) {
		if (opt >= icmp + icmp_len)
			break;
		if ((void *)(opt + 2) > data_end || opt[1] == 0)
			return M6_DROP(MIP6_CNT_NS_BAD);
		if (opt[0] == ND_OPT_SLLA_ && unspec)
			return M6_DROP(MIP6_CNT_NS_BAD);
		opt += (__u32)opt[1] * 8;
	}

	__u32 ifindex = m6_ifindex(ctx, hook);
	struct mip6_iface *ifc = bpf_map_lookup_elem(&mip6_ifaces, &ifindex);
	if (!ifc)
		return not_ours;

	M6_ADDR(tgt);
	M6_ADDR(dst);
	__u8 peer_mac[ETH_ALEN], our_mac[ETH_ALEN];
	addr_copy(tgt, target);
	if (unspec) { /* defend against a DAD probe: reply to all-nodes (RFC 4861 §7.2.4) */
		__builtin_memset(dst, 0, 16);
		dst[0] = 0xff; dst[1] = 0x02; dst[15] = 1;
		peer_mac[0] = 0x33; peer_mac[1] = 0x33; peer_mac[2] = 0; peer_mac[3] = 0; peer_mac[4] = 0; peer_mac[5] = 1;
	} else {
		addr_copy(dst, ip6->saddr.s6_addr);
		struct ethhdr *e = m6_data(ctx, hook);
		if ((void *)(e + 1) > data_end)
			return not_ours;
		mac_copy(peer_mac, e->h_source);
	}
	mac_copy(our_mac, ifc->mac);

	/* Resize the frame to exactly an NA with a Target Link-Layer Address option. */
	if (m6_set_len(ctx, hook, HA_NA_LEN))
		return M6_DROP(MIP6_CNT_DROP_ADJUST_FAIL);
	m6_pull(ctx, hook, HA_NA_LEN);
	void *data = m6_data(ctx, hook);
	data_end = m6_data_end(ctx, hook);
	if (data + HA_NA_LEN > data_end)
		return M6_DROP(MIP6_CNT_DROP_ADJUST_FAIL);
	struct ethhdr *eth = data;
	struct ipv6hdr *na_ip = data + sizeof(*eth);
	__u8 *na = (void *)(na_ip + 1);

	mac_copy(eth->h_dest, peer_mac);
	mac_copy(eth->h_source, our_mac);
	eth->h_proto = bpf_htons(ETH_P_IPV6);
	ipv6_write(na_ip, bpf_htonl(0x60000000), 32, IPPROTO_ICMPV6_, 255, tgt, dst);
	na[0] = ND_NA_;
	na[1] = 0;
	*(__u16 *)(na + 2) = 0;
	/* R = 0, S unless answering a DAD probe, O set: we override the node's own entry. */
	*(__u32 *)(na + 4) = bpf_htonl(unspec ? 0x20000000 : 0x60000000);
	addr_copy(na + 8, tgt);
	na[24] = ND_OPT_TLLA_;
	na[25] = 1;
	mac_copy(na + 26, our_mac);

	__s64 s1 = icmp6_pseudo_sum(na_ip, 32);
	__s64 s2 = bpf_csum_diff(0, 0, (void *)na, 32, 0);
	if (s1 < 0 || s2 < 0)
		return M6_DROP(MIP6_CNT_DROP_ADJUST_FAIL);
	*(__u16 *)(na + 2) = csum_fold((__u64)s1 + (__u64)s2);
	return M6_OUT(MIP6_CNT_NA_PROXY, m6_tx(ctx, hook));
}

/* Ethernet + IPv6 from the start of the frame; 0, or the outcome for a frame that is not. */
static __always_inline int ha_parse(void *ctx, const enum m6_hook hook, struct cursor *c, struct ethhdr **eth,
				    struct ipv6hdr **ip6)
{
	return m6_parse_frame(ctx, hook, c, eth, ip6, MIP6_CNT_PASS_NOT_IPV6, MIP6_CNT_DROP_MALFORMED);
}

/* A packet for a registered home address: to the care-of address while the binding lives. */
static __always_inline int ha_tunnel(void *ctx, const enum m6_hook hook, const struct mip6_config *cfg,
				     struct ipv6hdr *ip6, const struct mip6_binding *b)
{
	if (!m6_encap_len_ok(ctx, hook, ip6))
		return M6_DROP(MIP6_CNT_DROP_MALFORMED);
	__u64 now = m6_now_coarse();
	if (!ha_binding_live(b, now))
		return M6_PASS(hook, MIP6_CNT_PASS_EXPIRED);
	return ha_encapsulate(ctx, hook, cfg, ip6, b, now);
}

static __always_inline int ha_handle(void *ctx, const enum m6_hook hook)
{
	__u32 zero = 0;
	struct cursor c;
	struct ethhdr *eth;
	struct ipv6hdr *ip6;

	/* TC: headers a driver left in page fragments become readable (XDP frames are linear). */
	m6_pull(ctx, hook, HA_PULL_FAST);
	int ret = ha_parse(ctx, hook, &c, &eth, &ip6);
	if (ret)
		return ret;

	struct mip6_config *cfg = bpf_map_lookup_elem(&mip6_config, &zero);
	if (!cfg || !(cfg->flags & MIP6_CFG_ENABLED))
		return M6_PASS(hook, MIP6_CNT_PASS_OTHER);

	/* The fast path first: a packet for a registered home address costs one hash lookup.
	 * Neighbor Discovery for it (unicast NUD, DAD) goes on below, to be answered, not tunneled;
	 * our own addresses are never home addresses (the control plane refuses them), and
	 * neither is a multicast address: those two cost no lookup here. Nor is a link-local
	 * address (RFC 6275 §9.5.1): one defended for an L binding is in mip6_ll_proxy, which
	 * only proxy ND reads, so it is never tunneled. */
	int to_us = addr_eq(ip6->daddr.s6_addr, cfg->ha_addr);
	struct mip6_binding *b = NULL;
	if (!to_us && !addr_is_multicast(ip6->daddr.s6_addr))
		b = bpf_map_lookup_elem(&mip6_bindings, ip6->daddr.s6_addr);
	if (b) {
		int nd = 0;
		if (ip6->nexthdr == IPPROTO_ICMPV6_) {
			__u8 *icmp = c.pos;
			if ((void *)(icmp + 1) > c.end)
				return M6_DROP(MIP6_CNT_DROP_MALFORMED);
			nd = icmp[0] == ND_NS_ || icmp[0] == ND_NA_;
		}
		if (!nd)
			return ha_tunnel(ctx, hook, cfg, ip6, b);
	}

	/* Signaling, tunnels and ND are parsed deeper than HA_PULL_FAST. Each pull is a no-op
	 * when the bytes are linear already (always in XDP); after a real one, parse again. */
	if (to_us || (!b && bpf_map_lookup_elem(&mip6_locals, ip6->daddr.s6_addr))) {
		if (m6_pull(ctx, hook, HA_PULL_LOCAL) > 0 && ha_parse(ctx, hook, &c, &eth, &ip6))
			return M6_DROP(MIP6_CNT_DROP_MALFORMED);
		return ha_to_local(ctx, hook, cfg, eth, ip6, &c);
	}

	/* A forwarder-only node neither answers nor copies Neighbor Discovery (no proxy ND: the
	 * home link is the replicas'), nor tunnels it. */
	if (cfg->flags & MIP6_CFG_FORWARDER)
		return M6_PASS(hook, MIP6_CNT_PASS_OTHER);

	if (ip6->nexthdr == IPPROTO_ICMPV6_) {
		__u8 *icmp = c.pos;
		if ((void *)(icmp + 1) > c.end)
			return M6_DROP(MIP6_CNT_DROP_MALFORMED);
		if (icmp[0] == ND_NS_) {
			if (m6_pull(ctx, hook, HA_PULL_ND) > 0) {
				if (ha_parse(ctx, hook, &c, &eth, &ip6))
					return M6_DROP(MIP6_CNT_DROP_MALFORMED);
				icmp = c.pos;
			}
			return ha_proxy_na(ctx, hook, ip6, icmp, c.end);
		}
		if (icmp[0] == ND_NA_ && (cfg->flags & MIP6_CFG_PUNT_NA)) {
			__u32 limited = ha_punt_limited(cfg, ip6);
			if (limited)
				ha_count(limited);
			else if (ha_punt(ctx, hook, MIP6_PUNT_NA, eth) == 0)
				ha_count(MIP6_CNT_NA_COPY);
			return M6_PASS(hook, MIP6_CNT_PASS_OTHER);
		}
	}

	if (b) /* an NA to a home address while no DAD runs: tunneled like any other packet */
		return ha_tunnel(ctx, hook, cfg, ip6, b);
	return M6_PASS(hook, MIP6_CNT_PASS_OTHER);
}

/* The whole program: count every packet, handle it, count its outcome, return the verdict. */
static __always_inline int ha_process(void *ctx, const enum m6_hook hook)
{
	ha_count(MIP6_CNT_RX_TOTAL);
	return m6_exit(hook, ha_handle(ctx, hook), &mip6_counters);
}

#endif /* M6_HA_H */
