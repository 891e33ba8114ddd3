// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Home-agent data plane (RFC 6275 §10.4), XDP on the home-link interface.
 *
 *  - to a registered home address: IPv6-in-IPv6 to the care-of address (RFC 2473)
 *  - to our address, next header 41 from a registered CoA: reverse tunnel, decapsulate (§10.4.5)
 *  - NS for a registered home address: answer with our link-layer address (proxy ND, §10.4.1)
 *  - Mobility Header to one of our addresses: copy to the control plane's ring, drop
 *    (this kernel would discard a BU for its Home Address option and answer Parameter Problem)
 *  - everything else: XDP_PASS
 *
 * The control plane owns every map but the counters; this program only reads bindings.
 */
#include "mip6_parse.h"
#include "mip6_shared.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define AF_INET6_ 10

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MIP6_MAX_BINDINGS); /* resized by the loader from --max-bindings */
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct mip6_binding_key);
	__type(value, struct mip6_binding);
} mip6_bindings SEC(".maps");

/* A plain hash with atomic adds, not a per-CPU one: per-CPU memory runs out near 400k
 * bindings on a 2-CPU machine, and one binding's packets rarely spread over CPUs. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MIP6_MAX_BINDINGS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct mip6_binding_key);
	__type(value, struct mip6_binding_stats);
} mip6_bind_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MIP6_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} mip6_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mip6_config);
} mip6_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MIP6_MAX_IFACES);
	__type(key, __u32);
	__type(value, struct mip6_iface);
} mip6_ifaces SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MIP6_MAX_LOCAL_ADDRS);
	__type(key, struct mip6_addr_key);
	__type(value, __u32);
} mip6_locals SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, MIP6_PUNT_RING_BYTES);
} mip6_punt SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mip6_token_bucket);
} mip6_punt_tb SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, MIP6_MAX_SRC_BUCKETS);
	__type(key, __u64);
	__type(value, struct mip6_rate_state);
} mip6_src_tb SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MIP6_MAX_NEXTHOPS);
	__type(key, struct mip6_addr_key);
	__type(value, struct mip6_nexthop);
} mip6_nexthop SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&mip6_counters, &idx);
	if (v)
		*v += 1;
}

/* Count and return the verdict: one exit point per reason. */
static __always_inline int verdict(__u32 idx, int action)
{
	count(idx);
	return action;
}

/* Token bucket: refill with the time elapsed, spend `cost` if there is that much. */
static __always_inline int rate_take(__u64 *credit_ns, __u64 *last_ns, __u64 now, __u64 cost, __u64 burst)
{
	__u64 credit = *credit_ns + (now - *last_ns);
	if (credit > burst || now < *last_ns)
		credit = burst;
	*last_ns = now;
	if (credit < cost) {
		*credit_ns = credit;
		return 0;
	}
	*credit_ns = credit - cost;
	return 1;
}

static __always_inline int bucket_take(struct mip6_token_bucket *b, __u64 now, __u64 cost, __u64 burst)
{
	bpf_spin_lock(&b->lock);
	int ok = rate_take(&b->credit_ns, &b->last_ns, now, cost, burst);
	bpf_spin_unlock(&b->lock);
	return ok;
}

/*
 * Signaling flood protection: every punt to the control plane passes a per-source-/64
 * bucket and a global one, so a flood cannot starve the control plane and one source
 * cannot take the whole budget. Forwarding never goes through here.
 */
static __always_inline int punt_allowed(const struct mip6_config *cfg, const struct ipv6hdr *ip6)
{
	__u64 now = bpf_ktime_get_ns();
	if (cfg->src_cost_ns) {
		__u64 prefix = *(const __u64 *)ip6->saddr.s6_addr;
		struct mip6_rate_state *b = bpf_map_lookup_elem(&mip6_src_tb, &prefix);
		if (!b) { /* a new prefix evicts the least recently seen one */
			struct mip6_rate_state fresh = { .credit_ns = cfg->src_burst_ns, .last_ns = now };
			bpf_map_update_elem(&mip6_src_tb, &prefix, &fresh, BPF_NOEXIST);
			b = bpf_map_lookup_elem(&mip6_src_tb, &prefix);
		}
		if (b && !rate_take(&b->credit_ns, &b->last_ns, now, cfg->src_cost_ns, cfg->src_burst_ns)) {
			count(MIP6_CNT_PUNT_SRC_RATE_LIMITED);
			return 0;
		}
	}
	if (cfg->punt_cost_ns) {
		__u32 zero = 0;
		struct mip6_token_bucket *g = bpf_map_lookup_elem(&mip6_punt_tb, &zero);
		if (g && !bucket_take(g, now, cfg->punt_cost_ns, cfg->punt_burst_ns)) {
			count(MIP6_CNT_PUNT_RATE_LIMITED);
			return 0;
		}
	}
	return 1;
}

/* Fill a reserved record with `len` bytes (1 <= len <= room) and submit it. */
#define PUNT_FILL(ctx, r, len, room)                                                           \
	({                                                                                     \
		int _rc = 0;                                                                   \
		__u32 _n = (len);                                                              \
		r->hdr.len = _n;                                                               \
		/* The bounds check next to the call: the verifier must see 1 <= n <= room. */ \
		barrier_var(_n);                                                               \
		if (_n < 1 || _n > (room) ||                                                   \
		    bpf_xdp_load_bytes(ctx, sizeof(struct ethhdr), r->data, _n) < 0) {          \
			bpf_ringbuf_discard(r, 0);                                             \
			_rc = -1;                                                              \
		} else {                                                                       \
			bpf_ringbuf_submit(r, 0);                                              \
		}                                                                              \
		_rc;                                                                           \
	})

static __always_inline void punt_header(struct xdp_md *ctx, struct mip6_punt_hdr *h, __u32 kind,
					struct ethhdr *eth, __u32 orig_len)
{
	h->tstamp_ns = bpf_ktime_get_ns();
	h->kind = kind;
	h->ifindex = ctx->ingress_ifindex;
	h->orig_len = orig_len;
	mac_copy(h->src_mac, eth->h_source);
	h->_pad[0] = h->_pad[1] = 0;
}

/*
 * Copy the packet from the IPv6 header on into the control plane's ring. Two record
 * sizes (bpf_ringbuf_reserve takes a constant), so the ring holds thousands of BUs of
 * about 100 bytes rather than hundreds of full-size records.
 */
static __always_inline int punt(struct xdp_md *ctx, __u32 kind, struct ethhdr *eth)
{
	__u32 pkt_len = ctx->data_end - ctx->data;
	if (pkt_len <= sizeof(struct ethhdr))
		return -1;
	__u32 len = pkt_len - sizeof(struct ethhdr);

	if (len <= MIP6_PUNT_SMALL) {
		struct mip6_punt_record *r =
			bpf_ringbuf_reserve(&mip6_punt, sizeof(struct mip6_punt_hdr) + MIP6_PUNT_SMALL, 0);
		if (!r)
			return -1;
		punt_header(ctx, &r->hdr, kind, eth, len);
		return PUNT_FILL(ctx, r, len, MIP6_PUNT_SMALL);
	}
	struct mip6_punt_record *r = bpf_ringbuf_reserve(&mip6_punt, sizeof(*r), 0);
	if (!r)
		return -1;
	punt_header(ctx, &r->hdr, kind, eth, len);
	if (len > MIP6_PUNT_MAX) {
		len = MIP6_PUNT_MAX;
		count(MIP6_CNT_MH_PUNT_TRUNCATED);
	}
	return PUNT_FILL(ctx, r, len, MIP6_PUNT_MAX);
}

static __always_inline void stats_add(const __u8 *hoa, __u32 bytes, int to_mn)
{
	struct mip6_binding_stats *s = bpf_map_lookup_elem(&mip6_bind_stats, hoa);
	if (!s) /* created by the control plane with the binding */
		return;
	if (to_mn) {
		__sync_fetch_and_add(&s->to_mn_packets, 1);
		__sync_fetch_and_add(&s->to_mn_bytes, bytes);
	} else {
		__sync_fetch_and_add(&s->from_mn_packets, 1);
		__sync_fetch_and_add(&s->from_mn_bytes, bytes);
	}
}

/*
 * bpf_fib_lookup behind a cache: about three quarters of the per-packet cost of a
 * straightforward encapsulation is the IPv6 FIB lookup. An entry is used only while its
 * generation matches mip6_config.nh_gen (bumped by the control plane on every route,
 * neighbour or link event) and the packet is no longer than one the FIB already
 * accepted on that route. Anything else goes to the FIB, whose answer refreshes the entry.
 */
static __always_inline int fib_cached(struct xdp_md *ctx, const struct mip6_config *cfg, struct bpf_fib_lookup *fib)
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
 */
#define PTB_QUOTE 1232
static __always_inline int packet_too_big(struct xdp_md *ctx, const __u8 *ha_addr, __u32 mtu)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr eth_copy;
	struct ethhdr *eth = data;
	struct ipv6hdr *inner = data + sizeof(*eth);
	if ((void *)(inner + 1) > data_end)
		return XDP_DROP;
	__u32 pkt_len = data_end - data;
	if (pkt_len < sizeof(*eth) + PTB_QUOTE)
		return XDP_PASS; /* cannot happen for a genuine too-big packet; let the kernel judge */
	__u8 orig_src[16];
	addr_copy(orig_src, inner->saddr.s6_addr);
	__builtin_memcpy(&eth_copy, eth, sizeof(eth_copy));

	/* Trim to eth + quote, then make room for IPv6 + ICMPv6 headers. */
	int trim = (int)(sizeof(*eth) + PTB_QUOTE) - (int)pkt_len;
	if (trim < 0 && bpf_xdp_adjust_tail(ctx, trim))
		return XDP_DROP;
	if (bpf_xdp_adjust_head(ctx, -(int)(sizeof(struct ipv6hdr) + 8)))
		return XDP_DROP;

	/* Reload: adjust_head/tail invalidate every packet pointer. */
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	struct ipv6hdr *ip6 = data + sizeof(*eth);
	__u8 *icmp = (void *)(ip6 + 1);
	if ((void *)(icmp + 8 + PTB_QUOTE) > data_end)
		return XDP_DROP;

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
		return XDP_DROP;
	__u64 sum = s;
	sum += bpf_htonl(8 + PTB_QUOTE);
	sum += bpf_htonl(IPPROTO_ICMPV6_);
	s = bpf_csum_diff(0, 0, (void *)icmp, 512, 0);
	if (s < 0)
		return XDP_DROP;
	sum += s;
	s = bpf_csum_diff(0, 0, (void *)icmp + 512, 512, 0);
	if (s < 0)
		return XDP_DROP;
	sum += s;
	s = bpf_csum_diff(0, 0, (void *)icmp + 1024, 8 + PTB_QUOTE - 1024, 0);
	if (s < 0)
		return XDP_DROP;
	sum += s;
	*(__u16 *)(icmp + 2) = csum_fold(sum);
	return verdict(MIP6_CNT_ENCAP_TOO_BIG, XDP_TX);
}

/* RFC 6275 §10.4.1-2: tunnel a packet for a registered home address to its care-of address. */
static __always_inline int encapsulate(struct xdp_md *ctx, const struct mip6_config *cfg,
				       struct ipv6hdr *ip6, const struct mip6_binding *b)
{
	if (ip6->hop_limit <= 1) /* the kernel sends Time Exceeded */
		return verdict(MIP6_CNT_ENCAP_HOPLIMIT, XDP_PASS);

	__u8 hoa[16], coa[16], ha_addr[16];
	addr_copy(hoa, ip6->daddr.s6_addr);
	addr_copy(coa, b->coa);
	addr_copy(ha_addr, cfg->ha_addr);
	__u32 inner_len = bpf_ntohs(ip6->payload_len) + sizeof(struct ipv6hdr);
	__u32 first_word = *(__u32 *)ip6; /* version, traffic class, flow label: copied out (RFC 2473 §6.4) */

	struct bpf_fib_lookup fib = {};
	fib.family = AF_INET6_;
	fib.ifindex = ctx->ingress_ifindex;
	fib.l4_protocol = IPPROTO_IPV6_;
	fib.tot_len = inner_len + sizeof(struct ipv6hdr);
	addr_copy((__u8 *)fib.ipv6_src, ha_addr);
	addr_copy((__u8 *)fib.ipv6_dst, coa);
	int rc = fib_cached(ctx, cfg, &fib);
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED) {
		__u32 mtu = fib.mtu_result > 1320 ? fib.mtu_result - sizeof(struct ipv6hdr) : 1280;
		return packet_too_big(ctx, ha_addr, mtu);
	}
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
		return verdict(MIP6_CNT_ENCAP_FIB_FAIL, XDP_DROP);

	ip6->hop_limit--; /* RFC 2473 §3.1: the inner packet is forwarded once by us */

	if (bpf_xdp_adjust_head(ctx, -(int)sizeof(struct ipv6hdr)))
		return verdict(MIP6_CNT_ENCAP_FIB_FAIL, XDP_DROP);
	/* Reload every pointer after adjust_head. */
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct ipv6hdr *outer = data + sizeof(*eth);
	struct ethhdr *old_eth = data + sizeof(struct ipv6hdr);
	if ((void *)(outer + 2) > data_end)
		return XDP_DROP;
	__builtin_memcpy(eth, old_eth, sizeof(*eth)); /* no overlap: 14 < 40 */

	*(__u32 *)outer = first_word;
	outer->payload_len = bpf_htons(inner_len);
	outer->nexthdr = IPPROTO_IPV6_;
	outer->hop_limit = cfg->tunnel_hop_limit ? cfg->tunnel_hop_limit : MIP6_TUNNEL_HOP_LIMIT;
	addr_copy(outer->saddr.s6_addr, ha_addr);
	addr_copy(outer->daddr.s6_addr, coa);

	count(MIP6_CNT_ENCAP);
	stats_add(hoa, inner_len, 1);

	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) /* the kernel resolves the next hop and forwards */
		return verdict(MIP6_CNT_ENCAP_PASS_NO_NEIGH, XDP_PASS);
	mac_copy(eth->h_dest, fib.dmac);
	mac_copy(eth->h_source, fib.smac);
	if (fib.ifindex == ctx->ingress_ifindex)
		return verdict(MIP6_CNT_ENCAP_TX, XDP_TX);
	count(MIP6_CNT_ENCAP_REDIRECT);
	return bpf_redirect(fib.ifindex, 0);
}

/* RFC 6275 §10.4.5: reverse tunnel from a registered care-of address. `inner` follows
 * `outer_len` bytes of outer IPv6 header (and extension headers). */
static __always_inline int decapsulate(struct xdp_md *ctx, const struct mip6_config *cfg, struct ethhdr *eth_in,
				       struct ipv6hdr *outer, struct ipv6hdr *inner, __u32 outer_len, void *data_end)
{
	if ((void *)(inner + 1) > data_end || inner->version != 6)
		return verdict(MIP6_CNT_DROP_TUNNEL_MALFORMED, XDP_DROP);
	__u32 inner_len = bpf_ntohs(inner->payload_len) + sizeof(struct ipv6hdr);
	if ((void *)inner + inner_len > data_end)
		return verdict(MIP6_CNT_DROP_TUNNEL_MALFORMED, XDP_DROP);

	struct mip6_binding *b = bpf_map_lookup_elem(&mip6_bindings, inner->saddr.s6_addr);
	if (!b)
		return verdict(MIP6_CNT_DROP_TUNNEL_NO_BINDING, XDP_DROP);
	if (!addr_eq(b->coa, outer->saddr.s6_addr))
		return verdict(MIP6_CNT_DROP_TUNNEL_SPOOFED, XDP_DROP);

	__u8 hoa[16];
	addr_copy(hoa, inner->saddr.s6_addr);
	struct bpf_fib_lookup fib = {};
	fib.family = AF_INET6_;
	fib.ifindex = ctx->ingress_ifindex;
	fib.l4_protocol = inner->nexthdr;
	fib.tot_len = inner_len;
	addr_copy((__u8 *)fib.ipv6_src, inner->saddr.s6_addr);
	addr_copy((__u8 *)fib.ipv6_dst, inner->daddr.s6_addr);
	int forward = inner->hop_limit > 1;
	int rc = forward ? fib_cached(ctx, cfg, &fib) : -1;

	struct ethhdr eth_copy;
	__builtin_memcpy(&eth_copy, eth_in, sizeof(eth_copy));
	if (bpf_xdp_adjust_head(ctx, (int)outer_len))
		return verdict(MIP6_CNT_DROP_TUNNEL_MALFORMED, XDP_DROP);
	void *data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct ipv6hdr *ip6 = data + sizeof(*eth);
	if ((void *)(ip6 + 1) > data_end)
		return XDP_DROP;
	__builtin_memcpy(eth, &eth_copy, sizeof(*eth));

	count(MIP6_CNT_DECAP);
	stats_add(hoa, inner_len, 0);

	if (rc != BPF_FIB_LKUP_RET_SUCCESS) /* no neighbour yet, too big, hop limit: the kernel knows best */
		return verdict(MIP6_CNT_DECAP_PASS_KERNEL, XDP_PASS);
	ip6->hop_limit--;
	mac_copy(eth->h_dest, fib.dmac);
	mac_copy(eth->h_source, fib.smac);
	if (fib.ifindex == ctx->ingress_ifindex)
		return verdict(MIP6_CNT_DECAP_TX, XDP_TX);
	count(MIP6_CNT_DECAP_REDIRECT);
	return bpf_redirect(fib.ifindex, 0);
}

/* Packets to one of our addresses: MH to the control plane, IPv6-in-IPv6 to decapsulation. */
static __always_inline int to_local(struct xdp_md *ctx, const struct mip6_config *cfg, struct ethhdr *eth,
				    struct ipv6hdr *ip6, struct cursor *c)
{
	__u8 nh = ip6->nexthdr;
	int i;

	for (i = 0; i < MIP6_MAX_EXT_HEADERS; i++) {
		if (nh == IPPROTO_MH_) {
			if (!punt_allowed(cfg, ip6))
				return XDP_DROP; /* counted by the limiter */
			if (punt(ctx, MIP6_PUNT_MH, eth) < 0)
				return verdict(MIP6_CNT_MH_PUNT_RING_FULL, XDP_DROP);
			return verdict(MIP6_CNT_MH_PUNT, XDP_DROP);
		}
		if (nh == IPPROTO_IPV6_)
			return decapsulate(ctx, cfg, eth, ip6, c->pos, c->pos - (void *)ip6, c->end);
		if (nh == IPPROTO_FRAGMENT_) {
			struct ext_hdr *f = cursor_take(c, 8);
			if (!f)
				return verdict(MIP6_CNT_DROP_MALFORMED, XDP_DROP);
			/* Signaling is never reassembled: a first fragment of an MH is dropped here,
			 * later fragments die in the kernel's reassembly queue. */
			if (f->nexthdr == IPPROTO_MH_)
				return verdict(MIP6_CNT_DROP_MH_FRAGMENT, XDP_DROP);
			return verdict(MIP6_CNT_PASS_LOCAL, XDP_PASS);
		}
		if (!is_skippable_ext(nh))
			return verdict(MIP6_CNT_PASS_LOCAL, XDP_PASS);
		struct ext_hdr *h = cursor_take(c, sizeof(*h));
		if (!h)
			return verdict(MIP6_CNT_DROP_MALFORMED, XDP_DROP);
		nh = h->nexthdr;
		/* the 2 bytes just taken are part of the (hdrlen + 1) * 8 */
		if (!cursor_take(c, ((__u32)h->hdrlen + 1) * 8 - sizeof(*h)))
			return verdict(MIP6_CNT_DROP_MALFORMED, XDP_DROP);
	}
	return verdict(MIP6_CNT_DROP_EXT_CHAIN, XDP_DROP);
}

/*
 * RFC 6275 §10.4.1 proxy Neighbor Discovery for a registered home address, with the
 * validity checks of RFC 4861 §7.1.1. Returns -1 when the packet is not an NS we answer.
 */
#define NA_LEN (sizeof(struct ethhdr) + sizeof(struct ipv6hdr) + 32)
static __always_inline int proxy_na(struct xdp_md *ctx, struct ipv6hdr *ip6, __u8 *icmp, void *data_end)
{
	if ((void *)(icmp + 24) > data_end)
		return -1;
	__u8 *target = icmp + 8;
	struct mip6_binding *b = bpf_map_lookup_elem(&mip6_bindings, target);
	if (!b)
		return -1;
	if (b->ifindex && b->ifindex != ctx->ingress_ifindex)
		return -1;
	__u32 icmp_len = bpf_ntohs(ip6->payload_len);
	int unspec = addr_is_unspecified(ip6->saddr.s6_addr);
	if (ip6->hop_limit != 255 || icmp[1] != 0 || icmp_len < 24 || (void *)icmp + icmp_len > data_end ||
	    addr_is_multicast(target) || addr_is_multicast(ip6->saddr.s6_addr))
		return verdict(MIP6_CNT_NS_BAD, XDP_DROP);
	if (unspec && !addr_is_solicited_node_of(ip6->daddr.s6_addr, target))
		return verdict(MIP6_CNT_NS_BAD, XDP_DROP);
	/* Options: each must have a non-zero length; a DAD probe carries no SLLA. */
	__u8 *opt = icmp + 24;
	int i;
	for (i = 0; i < 4; i++) {
		if (opt >= icmp + icmp_len)
			break;
		if ((void *)(opt + 2) > data_end || opt[1] == 0)
			return verdict(MIP6_CNT_NS_BAD, XDP_DROP);
		if (opt[0] == ND_OPT_SLLA_ && unspec)
			return verdict(MIP6_CNT_NS_BAD, XDP_DROP);
		opt += (__u32)opt[1] * 8;
	}

	__u32 ifindex = ctx->ingress_ifindex;
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
	void *data = (void *)(long)ctx->data;
	int delta = (int)NA_LEN - (int)(data_end - data);
	if (delta && bpf_xdp_adjust_tail(ctx, delta))
		return verdict(MIP6_CNT_NS_BAD, XDP_DROP);
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (data + NA_LEN > data_end)
		return XDP_DROP;
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
		return XDP_DROP;
	__u64 sum = (__u64)s1 + (__u64)s2 + bpf_htonl(32) + bpf_htonl(IPPROTO_ICMPV6_);
	*(__u16 *)(na + 2) = csum_fold(sum);
	return verdict(MIP6_CNT_NA_PROXY, XDP_TX);
}

/* The whole program; inlined into the SEC("xdp") entry below and into perf/'s wrappers. */
static __always_inline int ha_process(struct xdp_md *ctx)
{
	struct cursor c = { .pos = (void *)(long)ctx->data, .end = (void *)(long)ctx->data_end };
	__u32 zero = 0;

	count(MIP6_CNT_RX_TOTAL);
	struct ethhdr *eth = parse_ethhdr(&c);
	if (!eth || eth->h_proto != bpf_htons(ETH_P_IPV6))
		return verdict(MIP6_CNT_PASS_NOT_IPV6, XDP_PASS);
	struct ipv6hdr *ip6 = parse_ipv6hdr(&c);
	if (!ip6)
		return verdict(MIP6_CNT_DROP_MALFORMED, XDP_DROP);

	struct mip6_config *cfg = bpf_map_lookup_elem(&mip6_config, &zero);
	if (!cfg || !(cfg->flags & MIP6_CFG_ENABLED))
		return verdict(MIP6_CNT_PASS_OTHER, XDP_PASS);

	if (addr_eq(ip6->daddr.s6_addr, cfg->ha_addr) || bpf_map_lookup_elem(&mip6_locals, ip6->daddr.s6_addr))
		return to_local(ctx, cfg, eth, ip6, &c);

	if (ip6->nexthdr == IPPROTO_ICMPV6_) {
		__u8 *icmp = c.pos;
		if ((void *)(icmp + 1) > c.end)
			return verdict(MIP6_CNT_DROP_MALFORMED, XDP_DROP);
		if (icmp[0] == ND_NS_) {
			int r = proxy_na(ctx, ip6, icmp, c.end);
			if (r >= 0)
				return r;
			return verdict(MIP6_CNT_PASS_OTHER, XDP_PASS);
		}
		if (icmp[0] == ND_NA_ && (cfg->flags & MIP6_CFG_PUNT_NA)) {
			if (punt_allowed(cfg, ip6) && punt(ctx, MIP6_PUNT_NA, eth) == 0)
				count(MIP6_CNT_NA_COPY);
			return verdict(MIP6_CNT_PASS_OTHER, XDP_PASS);
		}
	}

	struct mip6_binding *b = bpf_map_lookup_elem(&mip6_bindings, ip6->daddr.s6_addr);
	if (b) {
		/* We copy payload_len into the outer header: it must not claim more than is there
		 * (0 would be a jumbogram, which no tunnel carries). */
		__u32 plen = bpf_ntohs(ip6->payload_len);
		if (plen == 0 || (void *)(ip6 + 1) + plen > c.end)
			return verdict(MIP6_CNT_DROP_MALFORMED, XDP_DROP);
		return encapsulate(ctx, cfg, ip6, b);
	}
	return verdict(MIP6_CNT_PASS_OTHER, XDP_PASS);
}

SEC("xdp")
int mip6_ha_xdp(struct xdp_md *ctx)
{
	return ha_process(ctx);
}
