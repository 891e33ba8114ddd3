/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The home agent's packet logic (RFC 6275 §10.4), written once over a context
 * abstraction. mip6_ha.bpf.c includes this file twice: once for XDP, once for TC
 * (sched_cls on the home link's clsact ingress), each time after defining
 *
 *   HA_CTX          the context type (struct xdp_md / struct __sk_buff)
 *   HA_FN(name)     name##_xdp / name##_tc: every function here and every primitive
 *   HA_PASS/HA_DROP verdicts (XDP_PASS/XDP_DROP, TC_ACT_OK/TC_ACT_SHOT)
 *   HA_IFINDEX(ctx) the interface the packet arrived on
 *   HA_LOAD_BYTES   bpf_xdp_load_bytes / bpf_skb_load_bytes
 *
 * and the primitives (static __always_inline, named through HA_FN):
 *
 *   len(ctx)                      frame length (an skb may have more than its linear area)
 *   pull(ctx, want)               make min(want, len) bytes directly readable: 1 when it
 *                                 tried (re-derive pointers, bounds-check), 0 not needed
 *   tx(ctx)                       send back out of the arrival interface
 *   open_room(ctx, n, flags)      n bytes of room after Ethernet (Ethernet kept); 0 or -errno
 *   close_room(ctx, n)            remove n bytes after Ethernet (Ethernet kept); 0 or -errno
 *   set_len(ctx, n)               trim or extend the frame to n bytes; 0 or -errno
 *   encap_check(ctx, ip6, len, &flags)  length one packet has on the wire after encapsulation
 *                                 (the MTU check; one segment of a GSO skb), and open_room's
 *                                 flags; 0 when the tunnel cannot carry it
 *   seg_len(ctx, off, nexthdr, len)  the same for the inner packet after decapsulation
 *   segs(ctx)                     packets this one stands for (GSO segments) in per-binding stats
 *
 * and HA_CSUM_ADD(ctx, diff): keep a CHECKSUM_COMPLETE skb's sum right after rewriting
 * bytes (TC); a macro so that XDP does not even compute the difference.
 *
 * Every pointer into the packet is re-derived from ctx after a call that may move it.
 * The shared maps and the context-free helpers (count, verdict, punt_allowed, stats_add)
 * live in mip6_ha.bpf.c.
 */

#define ETH_HLEN_ 14 /* sizeof(struct ethhdr) */
#define IPV6_HLEN 40 /* sizeof(struct ipv6hdr) */

static __always_inline void HA_FN(punt_header)(HA_CTX *ctx, struct mip6_punt_hdr *h, __u32 kind,
					       struct ethhdr *eth, __u32 orig_len)
{
	h->tstamp_ns = bpf_ktime_get_ns();
	h->kind = kind;
	h->ifindex = HA_IFINDEX(ctx);
	h->orig_len = orig_len;
	mac_copy(h->src_mac, eth->h_source);
	h->_pad[0] = h->_pad[1] = 0;
}

/*
 * Copy the packet from the IPv6 header on into the control plane's ring. Two record
 * sizes (bpf_ringbuf_reserve takes a constant), so the ring holds thousands of BUs of
 * about 100 bytes rather than hundreds of full-size records.
 */
static __always_inline int HA_FN(punt)(HA_CTX *ctx, __u32 kind, struct ethhdr *eth)
{
	__u32 pkt_len = HA_FN(len)(ctx);
	if (pkt_len <= ETH_HLEN_)
		return -1;
	__u32 len = pkt_len - ETH_HLEN_;

	if (len <= MIP6_PUNT_SMALL) {
		struct mip6_punt_record *r =
			bpf_ringbuf_reserve(&mip6_punt, sizeof(struct mip6_punt_hdr) + MIP6_PUNT_SMALL, 0);
		if (!r)
			return -1;
		HA_FN(punt_header)(ctx, &r->hdr, kind, eth, len);
		return PUNT_FILL(HA_LOAD_BYTES, ctx, r, len, MIP6_PUNT_SMALL);
	}
	struct mip6_punt_record *r = bpf_ringbuf_reserve(&mip6_punt, sizeof(*r), 0);
	if (!r)
		return -1;
	HA_FN(punt_header)(ctx, &r->hdr, kind, eth, len);
	if (len > MIP6_PUNT_MAX) {
		len = MIP6_PUNT_MAX;
		count(MIP6_CNT_MH_PUNT_TRUNCATED);
	}
	return PUNT_FILL(HA_LOAD_BYTES, ctx, r, len, MIP6_PUNT_MAX);
}

/*
 * bpf_fib_lookup behind a cache: about three quarters of the per-packet cost of a
 * straightforward encapsulation is the IPv6 FIB lookup. An entry is used only while its
 * generation matches mip6_config.nh_gen (bumped by the control plane on every route,
 * neighbour or link event) and the packet is no longer than one the FIB already
 * accepted on that route. Anything else goes to the FIB, whose answer refreshes the entry.
 */
static __always_inline int HA_FN(fib_cached)(HA_CTX *ctx, const struct mip6_config *cfg, struct bpf_fib_lookup *fib)
{
	struct mip6_nexthop *nh = bpf_map_lookup_elem(&mip6_nexthop, fib->ipv6_dst);
	__u32 len = fib->tot_len;
	if (nh && nh->gen == cfg->nh_gen && len <= nh->max_len) {
		fib->ifindex = nh->ifindex;
		mac_copy(fib->smac, nh->smac);
		mac_copy(fib->dmac, nh->dmac);
		count(MIP6_CNT_NH_CACHE_HIT);
		return BPF_FIB_LKUP_RET_SUCCESS;
	}
	count(MIP6_CNT_NH_CACHE_MISS);
	__u8 dst[16]; /* bpf_fib_lookup overwrites ipv6_dst with the gateway */
	addr_copy(dst, (__u8 *)fib->ipv6_dst);
	int rc = bpf_fib_lookup(ctx, fib, sizeof(*fib), 0);
	if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
		struct mip6_nexthop fresh = { .ifindex = fib->ifindex, .gen = cfg->nh_gen, .max_len = len };
		if (nh && nh->gen == cfg->nh_gen && nh->ifindex == fib->ifindex && nh->max_len > len)
			fresh.max_len = nh->max_len;
		mac_copy(fresh.smac, fib->smac);
		mac_copy(fresh.dmac, fib->dmac);
		bpf_map_update_elem(&mip6_nexthop, dst, &fresh, BPF_ANY);
	}
	return rc;
}

/*
 * RFC 2473 §6.3 / RFC 4443 §3.2: the inner packet does not fit the tunnel.
 * Turn the frame into a Packet Too Big for its sender, quoting the first
 * 1232 bytes (the ICMPv6 packet stays within 1280), and bounce it back to
 * the neighbour it came from. The offending packet is always longer than
 * 1232 bytes here, because the tunnel MTU is at least 1280 - 40 = 1240.
 * (TC: an skb whose checksum the sender left to offload, CHECKSUM_PARTIAL, keeps that
 * state; only a veth peer's own packets are like that, and the peer trusts it.)
 */
#define PTB_QUOTE 1232
#define PTB_FRAME_LEN (ETH_HLEN_ + IPV6_HLEN + 8 + PTB_QUOTE)
static __always_inline int HA_FN(packet_too_big)(HA_CTX *ctx, const __u8 *ha_addr, __u32 mtu)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr eth_copy;
	struct ethhdr *eth = data;
	struct ipv6hdr *inner = data + sizeof(*eth);
	if ((void *)(inner + 1) > data_end)
		return HA_DROP;
	if (HA_FN(len)(ctx) < ETH_HLEN_ + PTB_QUOTE)
		return HA_PASS; /* cannot happen for a genuine too-big packet; let the kernel judge */
	__u8 orig_src[16];
	addr_copy(orig_src, inner->saddr.s6_addr);
	__builtin_memcpy(&eth_copy, eth, sizeof(eth_copy));

	/* Trim to eth + quote, then make room for IPv6 + ICMPv6 headers. */
	if (HA_FN(set_len)(ctx, ETH_HLEN_ + PTB_QUOTE) || HA_FN(open_room)(ctx, IPV6_HLEN + 8, 0))
		return verdict(MIP6_CNT_DROP_ADJUST_FAIL, HA_DROP);
	HA_FN(pull)(ctx, PTB_FRAME_LEN);

	/* Reload: the helpers above invalidate every packet pointer. */
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	struct ipv6hdr *ip6 = data + sizeof(*eth);
	__u8 *icmp = (void *)(ip6 + 1);
	if ((void *)(icmp + 8 + PTB_QUOTE) > data_end)
		return verdict(MIP6_CNT_DROP_ADJUST_FAIL, HA_DROP);

	mac_copy(eth->h_dest, eth_copy.h_source);
	mac_copy(eth->h_source, eth_copy.h_dest);
	eth->h_proto = bpf_htons(ETH_P_IPV6);
	*(__u32 *)ip6 = bpf_htonl(0x60000000);
	ip6->payload_len = bpf_htons(8 + PTB_QUOTE);
	ip6->nexthdr = IPPROTO_ICMPV6_;
	ip6->hop_limit = 64;
	addr_copy(ip6->saddr.s6_addr, ha_addr);
	addr_copy(ip6->daddr.s6_addr, orig_src);
	icmp[0] = ICMPV6_PKT_TOOBIG_;
	icmp[1] = 0;
	*(__u16 *)(icmp + 2) = 0;
	*(__u32 *)(icmp + 4) = bpf_htonl(mtu);

	/* Pseudo-header (RFC 8200 §8.1) + ICMPv6 message, in bpf_csum_diff's 512-byte steps. */
	__s64 s = bpf_csum_diff(0, 0, (void *)&ip6->saddr, 32, 0);
	if (s < 0)
		return HA_DROP;
	__u64 sum = s;
	sum += bpf_htonl(8 + PTB_QUOTE);
	sum += bpf_htonl(IPPROTO_ICMPV6_);
	s = bpf_csum_diff(0, 0, (void *)icmp, 512, 0);
	if (s < 0)
		return HA_DROP;
	sum += s;
	s = bpf_csum_diff(0, 0, (void *)icmp + 512, 512, 0);
	if (s < 0)
		return HA_DROP;
	sum += s;
	s = bpf_csum_diff(0, 0, (void *)icmp + 1024, 8 + PTB_QUOTE - 1024, 0);
	if (s < 0)
		return HA_DROP;
	sum += s;
	*(__u16 *)(icmp + 2) = csum_fold(sum);
	return verdict(MIP6_CNT_ENCAP_TOO_BIG, HA_FN(tx)(ctx));
}

/* RFC 6275 §10.4.1-2: tunnel a packet for a registered home address to its care-of address. */
static __always_inline int HA_FN(encapsulate)(HA_CTX *ctx, const struct mip6_config *cfg,
					      struct ipv6hdr *ip6, const struct mip6_binding *b)
{
	if (ip6->hop_limit <= 1) /* the kernel sends Time Exceeded */
		return verdict(MIP6_CNT_ENCAP_HOPLIMIT, HA_PASS);

	__u8 hoa[16], coa[16], ha_addr[16];
	addr_copy(hoa, ip6->daddr.s6_addr);
	addr_copy(coa, b->coa);
	addr_copy(ha_addr, cfg->ha_addr);
	__u32 inner_len = bpf_ntohs(ip6->payload_len) + sizeof(struct ipv6hdr);
	__u32 first_word = *(__u32 *)ip6; /* version, traffic class, flow label: copied out (RFC 2473 §6.4) */

	/* What goes on the wire must fit the route: the packet + 40, or one segment of a GSO skb. */
	__u64 room_flags = 0;
	__u32 wire_len = HA_FN(encap_check)(ctx, ip6, inner_len, &room_flags);
	if (wire_len == 0 || wire_len > 0xffff || inner_len > 0xffff)
		return verdict(MIP6_CNT_DROP_ENCAP_GSO, HA_DROP);

	struct bpf_fib_lookup fib = {};
	fib.family = AF_INET6_;
	fib.ifindex = HA_IFINDEX(ctx);
	fib.l4_protocol = IPPROTO_IPV6_;
	fib.tot_len = wire_len;
	addr_copy((__u8 *)fib.ipv6_src, ha_addr);
	addr_copy((__u8 *)fib.ipv6_dst, coa);
	int rc = HA_FN(fib_cached)(ctx, cfg, &fib);
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED) {
		__u32 mtu = fib.mtu_result > 1320 ? fib.mtu_result - sizeof(struct ipv6hdr) : 1280;
		return HA_FN(packet_too_big)(ctx, ha_addr, mtu);
	}
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
		return verdict(MIP6_CNT_ENCAP_FIB_FAIL, HA_DROP);

	/* RFC 2473 §3.1: the inner packet is forwarded once by us */
	__u32 old_word = ((__u32 *)ip6)[1];
	ip6->hop_limit--;
	__u32 new_word = ((__u32 *)ip6)[1];

	int err = HA_FN(open_room)(ctx, IPV6_HLEN, room_flags);
	if (err == -ENOTSUPP_) /* a GSO type the kernel cannot re-segment behind an outer header */
		return verdict(MIP6_CNT_DROP_ENCAP_GSO, HA_DROP);
	if (err)
		return verdict(MIP6_CNT_DROP_ADJUST_FAIL, HA_DROP);
	/* Reload every pointer after moving the head. */
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct ipv6hdr *outer = data + sizeof(*eth);
	if ((void *)(outer + 1) > data_end)
		return verdict(MIP6_CNT_DROP_ADJUST_FAIL, HA_DROP);

	*(__u32 *)outer = first_word;
	outer->payload_len = bpf_htons(inner_len);
	outer->nexthdr = IPPROTO_IPV6_;
	outer->hop_limit = cfg->tunnel_hop_limit ? cfg->tunnel_hop_limit : MIP6_TUNNEL_HOP_LIMIT;
	addr_copy(outer->saddr.s6_addr, ha_addr);
	addr_copy(outer->daddr.s6_addr, coa);
	HA_CSUM_ADD(ctx, bpf_csum_diff(&old_word, 4, &new_word, 4, 0));
	HA_CSUM_ADD(ctx, bpf_csum_diff(0, 0, (void *)outer, IPV6_HLEN, 0));

	count(MIP6_CNT_ENCAP);
	stats_add(hoa, inner_len, HA_FN(segs)(ctx), 1);

	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) /* the kernel resolves the next hop and forwards */
		return verdict(MIP6_CNT_ENCAP_PASS_NO_NEIGH, HA_PASS);
	mac_copy(eth->h_dest, fib.dmac);
	mac_copy(eth->h_source, fib.smac);
	if (fib.ifindex == HA_IFINDEX(ctx))
		return verdict(MIP6_CNT_ENCAP_TX, HA_FN(tx)(ctx));
	count(MIP6_CNT_ENCAP_REDIRECT);
	return bpf_redirect(fib.ifindex, 0);
}

/* RFC 6275 §10.4.5: reverse tunnel from a registered care-of address. `inner` follows
 * `outer_len` bytes of outer IPv6 header (and extension headers). */
static __always_inline int HA_FN(decapsulate)(HA_CTX *ctx, const struct mip6_config *cfg,
					      struct ipv6hdr *outer, struct ipv6hdr *inner, __u32 outer_len,
					      void *data_end)
{
	if ((void *)(inner + 1) > data_end || inner->version != 6)
		return verdict(MIP6_CNT_DROP_TUNNEL_MALFORMED, HA_DROP);
	__u32 inner_len = bpf_ntohs(inner->payload_len) + sizeof(struct ipv6hdr);
	if (ETH_HLEN_ + outer_len + inner_len > HA_FN(len)(ctx))
		return verdict(MIP6_CNT_DROP_TUNNEL_MALFORMED, HA_DROP);

	struct mip6_binding *b = bpf_map_lookup_elem(&mip6_bindings, inner->saddr.s6_addr);
	if (!b)
		return verdict(MIP6_CNT_DROP_TUNNEL_NO_BINDING, HA_DROP);
	if (!addr_eq(b->coa, outer->saddr.s6_addr))
		return verdict(MIP6_CNT_DROP_TUNNEL_SPOOFED, HA_DROP);

	__u8 hoa[16];
	addr_copy(hoa, inner->saddr.s6_addr);
	struct bpf_fib_lookup fib = {};
	fib.family = AF_INET6_;
	fib.ifindex = HA_IFINDEX(ctx);
	fib.l4_protocol = inner->nexthdr;
	/* A GSO skb is checked as one of its segments; 0 (unknown) is left to the kernel. */
	fib.tot_len = HA_FN(seg_len)(ctx, ETH_HLEN_ + outer_len, inner->nexthdr, inner_len);
	addr_copy((__u8 *)fib.ipv6_src, inner->saddr.s6_addr);
	addr_copy((__u8 *)fib.ipv6_dst, inner->daddr.s6_addr);
	int forward = inner->hop_limit > 1 && fib.tot_len != 0;
	int rc = forward ? HA_FN(fib_cached)(ctx, cfg, &fib) : -1;

	if (HA_FN(close_room)(ctx, outer_len))
		return verdict(MIP6_CNT_DROP_ADJUST_FAIL, HA_DROP);
	void *data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct ipv6hdr *ip6 = data + sizeof(*eth);
	if ((void *)(ip6 + 1) > data_end)
		return verdict(MIP6_CNT_DROP_ADJUST_FAIL, HA_DROP);

	count(MIP6_CNT_DECAP);
	stats_add(hoa, inner_len, HA_FN(segs)(ctx), 0);

	if (rc != BPF_FIB_LKUP_RET_SUCCESS) /* no neighbour yet, too big, hop limit: the kernel knows best */
		return verdict(MIP6_CNT_DECAP_PASS_KERNEL, HA_PASS);
	__u32 old_word = ((__u32 *)ip6)[1];
	ip6->hop_limit--;
	__u32 new_word = ((__u32 *)ip6)[1];
	HA_CSUM_ADD(ctx, bpf_csum_diff(&old_word, 4, &new_word, 4, 0));
	mac_copy(eth->h_dest, fib.dmac);
	mac_copy(eth->h_source, fib.smac);
	if (fib.ifindex == HA_IFINDEX(ctx))
		return verdict(MIP6_CNT_DECAP_TX, HA_FN(tx)(ctx));
	count(MIP6_CNT_DECAP_REDIRECT);
	return bpf_redirect(fib.ifindex, 0);
}

/* Packets to one of our addresses: MH to the control plane, IPv6-in-IPv6 to decapsulation. */
static __always_inline int HA_FN(to_local)(HA_CTX *ctx, const struct mip6_config *cfg, struct ethhdr *eth,
					   struct ipv6hdr *ip6, struct cursor *c)
{
	__u8 nh = ip6->nexthdr;
	int i;

	for (i = 0; i < MIP6_MAX_EXT_HEADERS; i++) {
		if (nh == IPPROTO_MH_) {
			if (!punt_allowed(cfg, ip6))
				return HA_DROP; /* counted by the limiter */
			if (HA_FN(punt)(ctx, MIP6_PUNT_MH, eth) < 0)
				return verdict(MIP6_CNT_MH_PUNT_RING_FULL, HA_DROP);
			return verdict(MIP6_CNT_MH_PUNT, HA_DROP);
		}
		if (nh == IPPROTO_IPV6_)
			return HA_FN(decapsulate)(ctx, cfg, ip6, c->pos, c->pos - (void *)ip6, c->end);
		if (nh == IPPROTO_FRAGMENT_) {
			struct ext_hdr *f = cursor_take(c, 8);
			if (!f)
				return verdict(MIP6_CNT_DROP_MALFORMED, HA_DROP);
			/* Signaling is never reassembled: a first fragment of an MH is dropped here,
			 * later fragments die in the kernel's reassembly queue. */
			if (f->nexthdr == IPPROTO_MH_)
				return verdict(MIP6_CNT_DROP_MH_FRAGMENT, HA_DROP);
			return verdict(MIP6_CNT_PASS_LOCAL, HA_PASS);
		}
		if (!is_skippable_ext(nh))
			return verdict(MIP6_CNT_PASS_LOCAL, HA_PASS);
		struct ext_hdr *h = cursor_take(c, sizeof(*h));
		if (!h)
			return verdict(MIP6_CNT_DROP_MALFORMED, HA_DROP);
		nh = h->nexthdr;
		/* the 2 bytes just taken are part of the (hdrlen + 1) * 8 */
		if (!cursor_take(c, ((__u32)h->hdrlen + 1) * 8 - sizeof(*h)))
			return verdict(MIP6_CNT_DROP_MALFORMED, HA_DROP);
	}
	return verdict(MIP6_CNT_DROP_EXT_CHAIN, HA_DROP);
}

/*
 * RFC 6275 §10.4.1 proxy Neighbor Discovery for a registered home address, with the
 * validity checks of RFC 4861 §7.1.1. Returns -1 when the packet is not an NS we answer.
 */
#define NA_LEN (sizeof(struct ethhdr) + sizeof(struct ipv6hdr) + 32)
static __always_inline int HA_FN(proxy_na)(HA_CTX *ctx, struct ipv6hdr *ip6, __u8 *icmp, void *data_end)
{
	if ((void *)(icmp + 24) > data_end)
		return -1;
	__u8 *target = icmp + 8;
	struct mip6_binding *b = bpf_map_lookup_elem(&mip6_bindings, target);
	if (!b)
		return -1;
	if (b->ifindex && b->ifindex != HA_IFINDEX(ctx))
		return -1;
	__u32 icmp_len = bpf_ntohs(ip6->payload_len);
	int unspec = addr_is_unspecified(ip6->saddr.s6_addr);
	if (ip6->hop_limit != 255 || icmp[1] != 0 || icmp_len < 24 || (void *)icmp + icmp_len > data_end ||
	    addr_is_multicast(target) || addr_is_multicast(ip6->saddr.s6_addr))
		return verdict(MIP6_CNT_NS_BAD, HA_DROP);
	if (unspec && !addr_is_solicited_node_of(ip6->daddr.s6_addr, target))
		return verdict(MIP6_CNT_NS_BAD, HA_DROP);
	/* Options: each must have a non-zero length; a DAD probe carries no SLLA. */
	__u8 *opt = icmp + 24;
	int i;
	for (i = 0; i < 4; i++) {
		if (opt >= icmp + icmp_len)
			break;
		if ((void *)(opt + 2) > data_end || opt[1] == 0)
			return verdict(MIP6_CNT_NS_BAD, HA_DROP);
		if (opt[0] == ND_OPT_SLLA_ && unspec)
			return verdict(MIP6_CNT_NS_BAD, HA_DROP);
		opt += (__u32)opt[1] * 8;
	}

	__u32 ifindex = HA_IFINDEX(ctx);
	struct mip6_iface *ifc = bpf_map_lookup_elem(&mip6_ifaces, &ifindex);
	if (!ifc)
		return -1;

	__u8 tgt[16], dst[16], peer_mac[ETH_ALEN], our_mac[ETH_ALEN];
	addr_copy(tgt, target);
	if (unspec) { /* defend against a DAD probe: reply to all-nodes (RFC 4861 §7.2.4) */
		__builtin_memset(dst, 0, 16);
		dst[0] = 0xff; dst[1] = 0x02; dst[15] = 1;
		peer_mac[0] = 0x33; peer_mac[1] = 0x33; peer_mac[2] = 0; peer_mac[3] = 0; peer_mac[4] = 0; peer_mac[5] = 1;
	} else {
		addr_copy(dst, ip6->saddr.s6_addr);
		struct ethhdr *e = (void *)(long)ctx->data;
		if ((void *)(e + 1) > data_end)
			return -1;
		mac_copy(peer_mac, e->h_source);
	}
	mac_copy(our_mac, ifc->mac);

	/* Resize the frame to exactly an NA with a Target Link-Layer Address option. */
	if (HA_FN(set_len)(ctx, NA_LEN))
		return verdict(MIP6_CNT_DROP_ADJUST_FAIL, HA_DROP);
	HA_FN(pull)(ctx, NA_LEN);
	void *data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (data + NA_LEN > data_end)
		return verdict(MIP6_CNT_DROP_ADJUST_FAIL, HA_DROP);
	struct ethhdr *eth = data;
	struct ipv6hdr *na_ip = data + sizeof(*eth);
	__u8 *na = (void *)(na_ip + 1);

	mac_copy(eth->h_dest, peer_mac);
	mac_copy(eth->h_source, our_mac);
	eth->h_proto = bpf_htons(ETH_P_IPV6);
	*(__u32 *)na_ip = bpf_htonl(0x60000000);
	na_ip->payload_len = bpf_htons(32);
	na_ip->nexthdr = IPPROTO_ICMPV6_;
	na_ip->hop_limit = 255;
	addr_copy(na_ip->saddr.s6_addr, tgt);
	addr_copy(na_ip->daddr.s6_addr, dst);
	na[0] = ND_NA_;
	na[1] = 0;
	*(__u16 *)(na + 2) = 0;
	/* R = 0, S unless answering a DAD probe, O set: we override the node's own entry. */
	*(__u32 *)(na + 4) = bpf_htonl(unspec ? 0x20000000 : 0x60000000);
	addr_copy(na + 8, tgt);
	na[24] = ND_OPT_TLLA_;
	na[25] = 1;
	mac_copy(na + 26, our_mac);

	__s64 s1 = bpf_csum_diff(0, 0, (void *)&na_ip->saddr, 32, 0);
	__s64 s2 = bpf_csum_diff(0, 0, (void *)na, 32, 0);
	if (s1 < 0 || s2 < 0)
		return HA_DROP;
	__u64 sum = (__u64)s1 + (__u64)s2 + bpf_htonl(32) + bpf_htonl(IPPROTO_ICMPV6_);
	*(__u16 *)(na + 2) = csum_fold(sum);
	return verdict(MIP6_CNT_NA_PROXY, HA_FN(tx)(ctx));
}

/* The whole program; inlined into the SEC("xdp") / SEC("tc") entries and into perf/'s wrappers. */
static __always_inline int HA_FN(ha_process)(HA_CTX *ctx)
{
	__u32 zero = 0;

	count(MIP6_CNT_RX_TOTAL);
	/* TC: headers a driver left in page fragments become readable (XDP frames are linear). */
	HA_FN(pull)(ctx, HA_PULL_FAST);
	struct cursor c = { .pos = (void *)(long)ctx->data, .end = (void *)(long)ctx->data_end };
	struct ethhdr *eth = parse_ethhdr(&c);
	if (!eth || eth->h_proto != bpf_htons(ETH_P_IPV6))
		return verdict(MIP6_CNT_PASS_NOT_IPV6, HA_PASS);
	struct ipv6hdr *ip6 = parse_ipv6hdr(&c);
	if (!ip6)
		return verdict(MIP6_CNT_DROP_MALFORMED, HA_DROP);

	struct mip6_config *cfg = bpf_map_lookup_elem(&mip6_config, &zero);
	if (!cfg || !(cfg->flags & MIP6_CFG_ENABLED))
		return verdict(MIP6_CNT_PASS_OTHER, HA_PASS);

	/* Signaling, tunnels and ND are parsed deeper than HA_PULL_FAST. Each pull is a no-op
	 * when the bytes are linear already (always in XDP); after a real one, parse again. */
	if (addr_eq(ip6->daddr.s6_addr, cfg->ha_addr) || bpf_map_lookup_elem(&mip6_locals, ip6->daddr.s6_addr)) {
		if (HA_FN(pull)(ctx, HA_PULL_LOCAL) > 0 && !HA_REPARSE(ctx, c, eth, ip6))
			return verdict(MIP6_CNT_DROP_MALFORMED, HA_DROP);
		return HA_FN(to_local)(ctx, cfg, eth, ip6, &c);
	}

	if (ip6->nexthdr == IPPROTO_ICMPV6_) {
		__u8 *icmp = c.pos;
		if ((void *)(icmp + 1) > c.end)
			return verdict(MIP6_CNT_DROP_MALFORMED, HA_DROP);
		if (icmp[0] == ND_NS_) {
			if (HA_FN(pull)(ctx, MIP6_PUNT_MAX) > 0) {
				if (!HA_REPARSE(ctx, c, eth, ip6))
					return verdict(MIP6_CNT_DROP_MALFORMED, HA_DROP);
				icmp = c.pos;
			}
			int r = HA_FN(proxy_na)(ctx, ip6, icmp, c.end);
			if (r >= 0)
				return r;
			return verdict(MIP6_CNT_PASS_OTHER, HA_PASS);
		}
		if (icmp[0] == ND_NA_ && (cfg->flags & MIP6_CFG_PUNT_NA)) {
			if (punt_allowed(cfg, ip6) && HA_FN(punt)(ctx, MIP6_PUNT_NA, eth) == 0)
				count(MIP6_CNT_NA_COPY);
			return verdict(MIP6_CNT_PASS_OTHER, HA_PASS);
		}
	}

	struct mip6_binding *b = bpf_map_lookup_elem(&mip6_bindings, ip6->daddr.s6_addr);
	if (b) {
		/* We copy payload_len into the outer header: it must not claim more than is there
		 * (0 would be a jumbogram, which no tunnel carries). */
		__u32 plen = bpf_ntohs(ip6->payload_len);
		if (plen == 0 || ETH_HLEN_ + IPV6_HLEN + plen > HA_FN(len)(ctx))
			return verdict(MIP6_CNT_DROP_MALFORMED, HA_DROP);
		return HA_FN(encapsulate)(ctx, cfg, ip6, b);
	}
	return verdict(MIP6_CNT_PASS_OTHER, HA_PASS);
}

#undef ETH_HLEN_
#undef IPV6_HLEN
#undef PTB_QUOTE
#undef PTB_FRAME_LEN
#undef NA_LEN

/* The parameters the includer defined: the next include (the other hook) defines them anew. */
#undef HA_CTX
#undef HA_FN
#undef HA_PASS
#undef HA_DROP
#undef HA_IFINDEX
#undef HA_LOAD_BYTES
#undef HA_CSUM_ADD
