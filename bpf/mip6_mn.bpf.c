// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Mobile-node data plane (RFC 6275 §11.3), TC (cls_bpf, direct action) on every
 * interface of the mobile node. The kernel has neither Mobile IPv6 nor ip6tnl.
 *
 * mip6_mn_ingress:
 *  - IPv6-in-IPv6 from the home agent to the care-of address, tunnel up:
 *    decapsulate, the inner packet (to the home address) goes up the stack (§11.3.2)
 *  - any other IPv6-in-IPv6: dropped (spoofed, not to the CoA, tunnel down, malformed)
 *  - fragments of a tunnel packet from the home agent (RFC 2473 §7.1(b)): to the kernel, which
 *    reassembles them for the daemon's tunnel socket; other tunnel fragments are dropped
 *  - Mobility Header from the home agent (a BA behind a Type 2 Routing Header, a BRR,
 *    a BE; also inside the tunnel): copied to the control plane's ring, dropped
 *    (the kernel would discard it and answer Parameter Problem)
 *  - everything else: TC_ACT_UNSPEC untouched (next filter, then the stack)
 *
 * mip6_mn_egress:
 *  - from the home address, tunnel up: IPv6-in-IPv6 to the home agent (reverse
 *    tunnel, §11.3.1), out of the care-of interface; GSO packets stay GSO
 *    (bpf_skb_adjust_room with ENCAP_L3_IPV6 lowers gso_size by 40 and marks IPXIP6)
 *  - too big for the tunnel and not GSO: Packet Too Big to the local stack
 *  - RFC 2473 §5.1, the node is a tunnel entry point too: a Tunnel Encapsulation Limit of 0
 *    becomes Parameter Problem to the local stack; one above 0 goes out, less one, in a
 *    Destination Options header after the outer header
 *  - left alone: Neighbor Discovery, multicast and link-local destinations,
 *    anything not from the home address (the CoA's BUs, our own tunnel packets)
 *
 * Each function returns an outcome (lib/verdict.h) named by the counters of
 * mip6_shared.h; each program counts it once, in m6_exit. The control plane owns the
 * config; these programs only read it.
 */
#include "lib/ctx.h"
#include "lib/verdict.h"
#include "lib/punt.h"
#include "lib/forward.h"
#include "mn_maps.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* TC only: every call into the context layer names it. */
#define MN_HOOK M6_TC

/* Headers of tunnels and signaling looked at directly; pulled into the linear area when a
 * driver left them in page fragments. */
#ifndef MN_PULL_LEN
#define MN_PULL_LEN 256
#endif

static __always_inline void mn_count(__u32 idx)
{
	m6_count(&mip6_mn_counts, idx);
}

/* Punt an IPv6 packet at `ip6` (offset `off` in the frame) whose chain ends in an MH, and drop it. */
static __always_inline int mn_punt_mh(struct __sk_buff *skb, struct ethhdr *eth, struct ipv6hdr *ip6, __u32 off)
{
	__u32 len = bpf_ntohs(ip6->payload_len) + IPV6_HLEN;
	__u32 avail = skb->len > off ? skb->len - off : 0;
	if (len > avail) /* Ethernet padding may follow a packet, never truncation */
		return M6_DROP(MIP6_MN_CNT_IN_DROP_MALFORMED);
	return m6_punt_mh(skb, MN_HOOK, &mip6_mn_punt, off, len, eth->h_source, &mip6_mn_counts, MIP6_MN_CNT_MH_PUNT,
			  MIP6_MN_CNT_MH_PUNT_RING_FULL, MIP6_MN_CNT_MH_PUNT_TRUNCATED);
}

/* A tunnel packet (or a fragment of one): from the home agent to the care-of address (or the
 * care-of address of an outstanding BU) while a registration is up; 0, or the drop. */
static __always_inline int mn_tunnel_check(const struct mip6_mn_config *cfg, const struct ipv6hdr *outer)
{
	int to_pending = !addr_is_unspecified(cfg->pending_coa) && addr_eq(outer->daddr.s6_addr, cfg->pending_coa);
	if (!(cfg->flags & MIP6_MN_TUNNEL_UP) && !to_pending)
		return M6_DROP(MIP6_MN_CNT_DROP_TUNNEL_DOWN);
	if (!to_pending && !addr_eq(outer->daddr.s6_addr, cfg->coa))
		return M6_DROP(MIP6_MN_CNT_DROP_TUNNEL_NOT_COA);
	if (!addr_eq(outer->saddr.s6_addr, cfg->ha))
		return M6_DROP(MIP6_MN_CNT_DROP_TUNNEL_SPOOFED);
	return 0;
}

/*
 * RFC 6275 §11.3.2 / RFC 2473 §3.2: a packet tunneled by the home agent to the care-of
 * address. The cursor is at the inner header, after the outer IPv6 header and its
 * extension headers.
 */
static __always_inline int mn_decapsulate(struct __sk_buff *skb, const struct mip6_mn_config *cfg,
					  struct ethhdr *eth, struct ipv6hdr *outer, struct cursor *c)
{
	int refused = mn_tunnel_check(cfg, outer);
	if (refused)
		return refused;

	struct ipv6hdr *inner = parse_ipv6hdr(c);
	if (!inner)
		return M6_DROP(MIP6_MN_CNT_DROP_TUNNEL_MALFORMED);
	__u32 outer_len = (void *)inner - (void *)outer;
	__u32 inner_off = ETH_HLEN_ + outer_len;
	__u32 inner_len = bpf_ntohs(inner->payload_len) + IPV6_HLEN;
	if (inner_off + inner_len > skb->len)
		return M6_DROP(MIP6_MN_CNT_DROP_TUNNEL_MALFORMED);
	if (!addr_eq(inner->daddr.s6_addr, cfg->hoa) && !addr_is_multicast(inner->daddr.s6_addr))
		return M6_DROP(MIP6_MN_CNT_DROP_TUNNEL_NOT_HOA);

	/* Signaling inside the tunnel (a Binding Refresh Request to the home address). */
	int frag_next;
	int nh = m6_walk_ext(c, inner->nexthdr, &frag_next);
	if (nh == IPPROTO_MH_) {
		mn_count(MIP6_MN_CNT_MH_PUNT_TUNNELED);
		return mn_punt_mh(skb, eth, inner, inner_off);
	}
	if (nh == IPPROTO_FRAGMENT_ && frag_next == IPPROTO_MH_)
		return M6_DROP(MIP6_MN_CNT_DROP_FRAGMENT);

	if (m6_close_room(skb, MN_HOOK, outer_len))
		return M6_DROP(MIP6_MN_CNT_DROP_DECAP_FAIL);
	return M6_PASS(MN_HOOK, MIP6_MN_CNT_DECAP);
}

static __always_inline int mn_ingress(struct __sk_buff *skb)
{
	__u32 zero = 0;

	if (skb->protocol != bpf_htons(ETH_P_IPV6))
		return M6_PASS(MN_HOOK, MIP6_MN_CNT_IN_PASS);
	/* Drivers may leave headers in page fragments. The IPv6 header is pulled (ip6_rcv
	 * would pull it anyway); the rest only for the packets whose chain we walk. */
	m6_pull(skb, MN_HOOK, ETH_HLEN_ + IPV6_HLEN);
	struct ipv6hdr *first = m6_data(skb, MN_HOOK) + ETH_HLEN_;
	if ((void *)(first + 1) <= m6_data_end(skb, MN_HOOK) && first->version == 6 &&
	    !is_skippable_ext(first->nexthdr) && first->nexthdr != IPPROTO_IPV6_ &&
	    first->nexthdr != IPPROTO_MH_ && first->nexthdr != IPPROTO_FRAGMENT_)
		return M6_PASS(MN_HOOK, MIP6_MN_CNT_IN_PASS); /* TCP, UDP, ICMPv6...: not ours */
	m6_pull(skb, MN_HOOK, MN_PULL_LEN);

	struct cursor c = { .pos = m6_data(skb, MN_HOOK), .end = m6_data_end(skb, MN_HOOK) };
	struct ethhdr *eth = parse_ethhdr(&c);
	if (!eth || eth->h_proto != bpf_htons(ETH_P_IPV6))
		return M6_PASS(MN_HOOK, MIP6_MN_CNT_IN_PASS);
	struct ipv6hdr *ip6 = parse_ipv6hdr(&c);
	if (!ip6)
		return M6_DROP(MIP6_MN_CNT_IN_DROP_MALFORMED);
	struct mip6_mn_config *cfg = bpf_map_lookup_elem(&mip6_mn_config, &zero);
	if (!cfg)
		return M6_PASS(MN_HOOK, MIP6_MN_CNT_IN_PASS);

	int frag_next;
	int nh = m6_walk_ext(&c, ip6->nexthdr, &frag_next);
	if (nh == M6_WALK_TRUNCATED)
		return M6_DROP(MIP6_MN_CNT_IN_DROP_MALFORMED);
	if (nh == M6_WALK_TOO_LONG)
		return M6_PASS(MN_HOOK, MIP6_MN_CNT_IN_PASS_EXT_CHAIN);
	if (nh == IPPROTO_IPV6_)
		return mn_decapsulate(skb, cfg, eth, ip6, &c);
	if (nh == IPPROTO_MH_ && addr_eq(ip6->saddr.s6_addr, cfg->ha) && !addr_is_unspecified(cfg->ha))
		return mn_punt_mh(skb, eth, ip6, ETH_HLEN_);
	/* RFC 2473 §7.1(b): the home agent fragments a tunnel packet of a packet of 1280 bytes or
	 * less when the path to the care-of address cannot carry it whole. Each fragment is
	 * checked as a tunnel packet and left to the kernel, which reassembles it for the daemon's
	 * tunnel socket (the Fragment header's next header is 41 in every fragment, RFC 8200 §4.5). */
	if (nh == IPPROTO_FRAGMENT_ && frag_next == IPPROTO_IPV6_) {
		int refused = mn_tunnel_check(cfg, ip6);
		return refused ? refused : M6_PASS(MN_HOOK, MIP6_MN_CNT_PASS_TUNNEL_FRAGMENT);
	}
	/* Signaling is never reassembled: its first fragments go. */
	if (nh == IPPROTO_FRAGMENT_ && frag_next == IPPROTO_MH_ && addr_eq(ip6->saddr.s6_addr, cfg->ha))
		return M6_DROP(MIP6_MN_CNT_DROP_FRAGMENT);
	return M6_PASS(MN_HOOK, MIP6_MN_CNT_IN_PASS);
}

SEC("tc")
int mip6_mn_ingress(struct __sk_buff *skb)
{
	mn_count(MIP6_MN_CNT_IN_TOTAL);
	return m6_exit(MN_HOOK, mn_ingress(skb), &mip6_mn_counts);
}

/*
 * A packet from the home address that does not fit the tunnel and cannot be segmented:
 * a Packet Too Big from the care-of address, handed to this interface's ingress, so the
 * socket learns the tunnel MTU as it would from ip6tnl.
 */
static __always_inline int mn_packet_too_big(struct __sk_buff *skb, const struct mip6_mn_config *cfg, __u32 mtu)
{
	if (m6_packet_too_big(skb, MN_HOOK, cfg->coa, mtu))
		return M6_DROP(MIP6_MN_CNT_DROP_ENCAP_FAIL);
	return M6_OUT(MIP6_MN_CNT_ENCAP_TOO_BIG, m6_redirect(skb, MN_HOOK, skb->ifindex, BPF_F_INGRESS));
}

/* RFC 2473 §5.1: the packet's Tunnel Encapsulation Limit is 0: Parameter Problem (code 0,
 * pointing at the limit) from the care-of address, handed to this interface's ingress as a
 * Packet Too Big is. */
static __always_inline int mn_encap_limit_spent(struct __sk_buff *skb, const struct mip6_mn_config *cfg, __u32 pointer,
						__u32 inner_len)
{
	if (m6_param_problem(skb, MN_HOOK, cfg->coa, pointer, inner_len))
		return M6_DROP(MIP6_MN_CNT_DROP_ENCAP_FAIL);
	return M6_OUT(MIP6_MN_CNT_DROP_ENCAP_LIMIT, m6_redirect(skb, MN_HOOK, skb->ifindex, BPF_F_INGRESS));
}

/* Out of the care-of interface towards the home agent. An output lookup: the packet is
 * ours. tot_len 0: the kernel checks the skb itself against the MTU (GSO-aware). */
static __always_inline int mn_route_to_ha(struct __sk_buff *skb, const struct mip6_mn_config *cfg, struct ethhdr *eth)
{
	/* The control plane's next hop on the care-of link: the FIB's best route may go through
	 * another link (a preferred one that just came back up), whose router is no neighbour
	 * of this one. The kernel resolves the neighbour (and queues while it does). */
	if (!addr_is_unspecified(cfg->coa_gateway))
		return m6_redirect_neigh(cfg->coa_ifindex, (const __u32 *)cfg->coa_gateway, MIP6_MN_CNT_ENCAP_REDIRECT_NEIGH);
	struct bpf_fib_lookup fib;
	m6_fib_init(&fib, cfg->coa_ifindex, IPPROTO_IPV6_, 0, cfg->coa, cfg->ha);
	int fr = bpf_fib_lookup(skb, &fib, sizeof(fib), BPF_FIB_LOOKUP_OUTPUT);
	if (fr == BPF_FIB_LKUP_RET_SUCCESS) {
		mac_copy(eth->h_dest, fib.dmac);
		mac_copy(eth->h_source, fib.smac);
		if (fib.ifindex == skb->ifindex)
			return M6_PASS(MN_HOOK, MIP6_MN_CNT_ENCAP_TX);
		return M6_OUT(MIP6_MN_CNT_ENCAP_REDIRECT, m6_redirect(skb, MN_HOOK, fib.ifindex, 0));
	}
	if (fr == BPF_FIB_LKUP_RET_BLACKHOLE || fr == BPF_FIB_LKUP_RET_UNREACHABLE ||
	    fr == BPF_FIB_LKUP_RET_PROHIBIT || fr == BPF_FIB_LKUP_RET_FRAG_NEEDED || fr < 0)
		return M6_DROP(MIP6_MN_CNT_DROP_ENCAP_NO_ROUTE);
	if (fr == BPF_FIB_LKUP_RET_NO_NEIGH) /* the lookup found the next hop */
		return m6_redirect_neigh(fib.ifindex, fib.ipv6_dst, MIP6_MN_CNT_ENCAP_REDIRECT_NEIGH);
	/* BPF_FIB_LKUP_RET_FWD_DISABLED: a host has forwarding off and bpf_fib_lookup refuses
	 * even output lookups then. The kernel routes and resolves the next hop itself. */
	return m6_redirect_neigh(cfg->coa_ifindex, NULL, MIP6_MN_CNT_ENCAP_REDIRECT_NEIGH);
}

/* RFC 6275 §11.3.1: reverse-tunnel a packet from the home address to the home agent. */
static __always_inline int mn_encapsulate(struct __sk_buff *skb, const struct mip6_mn_config *cfg, struct ipv6hdr *inner)
{
	__u32 first_word = *(__u32 *)inner; /* version, traffic class, flow label: copied out (RFC 2473 §6.4) */
	__u32 inner_len = skb->len - ETH_HLEN_;
	if (skb->len < ETH_HLEN_ || inner_len > 0xffff) /* no jumbograms (BIG TCP) in a tunnel */
		return M6_DROP(MIP6_MN_CNT_DROP_ENCAP_FAIL);

	/* RFC 2473 §5.1: the node is a tunnel entry point too. */
	__u32 pointer = 0;
	int tel = m6_tel_next(skb, MN_HOOK, ETH_HLEN_, inner_len, inner->nexthdr, &pointer);
	if (tel == M6_TEL_MALFORMED)
		return M6_DROP(MIP6_MN_CNT_DROP_ENCAP_FAIL);
	if (tel == M6_TEL_SPENT)
		return mn_encap_limit_spent(skb, cfg, pointer, inner_len);
	__u32 overhead = m6_tunnel_overhead(tel);
	if (inner_len + overhead - IPV6_HLEN > 0xffff) /* the outer payload length */
		return M6_DROP(MIP6_MN_CNT_DROP_ENCAP_FAIL);

	/* Must fit with our headers; bpf_check_mtu passes GSO packets (segmented later). */
	__u32 mtu_len = 0;
	if (bpf_check_mtu(skb, cfg->coa_ifindex, &mtu_len, overhead, 0) == BPF_MTU_CHK_RET_FRAG_NEEDED)
		return mn_packet_too_big(skb, cfg, m6_tunnel_mtu(mtu_len, overhead));

	/* Room for the outer headers between Ethernet and IPv6; the packet is marked
	 * SKB_GSO_IPXIP6 + encapsulation so TSO/GSO segment it correctly, and gso_size
	 * shrinks by the overhead so every segment still fits. Not when TCP already sized its segments
	 * for the tunnel (after a Packet Too Big): they fit as they are (FIXED_GSO).
	 * UDP GSO refuses a changing gso_size (-ENOTSUPP): its datagrams keep their size. */
	__u64 flags = BPF_F_ADJ_ROOM_ENCAP_L3_IPV6;
	__u32 gso_size = m6_gso_size(skb, MN_HOOK);
	if (gso_size && inner->nexthdr == IPPROTO_TCP_) {
		__u8 *tcp = (void *)(inner + 1);
		if ((void *)(tcp + 13) <= m6_data_end(skb, MN_HOOK) &&
		    IPV6_HLEN + (__u32)(tcp[12] >> 4) * 4 + gso_size + overhead <= mtu_len)
			flags |= BPF_F_ADJ_ROOM_FIXED_GSO;
	}
	int rc = m6_open_room(skb, MN_HOOK, overhead, flags);
	if (rc == -ENOTSUPP_)
		rc = m6_open_room(skb, MN_HOOK, overhead, flags | BPF_F_ADJ_ROOM_FIXED_GSO);
	if (rc < 0)
		return M6_DROP(MIP6_MN_CNT_DROP_ENCAP_FAIL);

	struct ethhdr *eth;
	if (!m6_tunnel_header(skb, MN_HOOK, &eth, first_word, inner_len, MIP6_TUNNEL_HOP_LIMIT, cfg->coa, cfg->ha, tel))
		return M6_DROP(MIP6_MN_CNT_DROP_ENCAP_FAIL);
	mn_count(MIP6_MN_CNT_ENCAP);
	return mn_route_to_ha(skb, cfg, eth);
}

static __always_inline int mn_egress(struct __sk_buff *skb)
{
	__u32 zero = 0;

	if (skb->protocol != bpf_htons(ETH_P_IPV6))
		return M6_PASS(MN_HOOK, MIP6_MN_CNT_OUT_PASS);
	/* The stack writes headers linear; a short packet is not ours. */
	m6_pull(skb, MN_HOOK, ETH_HLEN_ + IPV6_HLEN + 1);
	void *data = m6_data(skb, MN_HOOK);
	void *data_end = m6_data_end(skb, MN_HOOK);
	struct ethhdr *eth = data;
	struct ipv6hdr *ip6 = data + sizeof(*eth);
	if ((void *)(ip6 + 1) + 1 > data_end)
		return M6_PASS(MN_HOOK, MIP6_MN_CNT_OUT_PASS);
	if (eth->h_proto != bpf_htons(ETH_P_IPV6) || ip6->version != 6)
		return M6_PASS(MN_HOOK, MIP6_MN_CNT_OUT_PASS);
	struct mip6_mn_config *cfg = bpf_map_lookup_elem(&mip6_mn_config, &zero);
	if (!cfg || !addr_eq(ip6->saddr.s6_addr, cfg->hoa) || addr_is_unspecified(cfg->hoa))
		return M6_PASS(MN_HOOK, MIP6_MN_CNT_OUT_PASS);
	if (!(cfg->flags & MIP6_MN_TUNNEL_UP))
		return M6_PASS(MN_HOOK, MIP6_MN_CNT_OUT_PASS_TUNNEL_DOWN);
	if (ip6->nexthdr == IPPROTO_IPV6_ && addr_eq(ip6->saddr.s6_addr, cfg->coa))
		return M6_PASS(MN_HOOK, MIP6_MN_CNT_OUT_PASS); /* already tunneled (HoA == CoA) */
	if (ip6->nexthdr == IPPROTO_ICMPV6_) {
		__u8 type = *(__u8 *)(ip6 + 1);
		if (type >= 133 && type <= 137) /* RS, RA, NS, NA, Redirect */
			return M6_PASS(MN_HOOK, MIP6_MN_CNT_OUT_PASS_ND);
	}
	if (addr_is_multicast(ip6->daddr.s6_addr) || addr_is_link_local(ip6->daddr.s6_addr))
		return M6_PASS(MN_HOOK, MIP6_MN_CNT_OUT_PASS_SCOPE);
	return mn_encapsulate(skb, cfg, ip6);
}

SEC("tc")
int mip6_mn_egress(struct __sk_buff *skb)
{
	mn_count(MIP6_MN_CNT_OUT_TOTAL);
	return m6_exit(MN_HOOK, mn_egress(skb), &mip6_mn_counts);
}
