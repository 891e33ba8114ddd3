// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Mobile-node data plane (RFC 6275 §11.3), TC (cls_bpf, direct action) on every
 * interface of the mobile node. The kernel has neither Mobile IPv6 nor ip6tnl.
 *
 * mip6_mn_ingress:
 *  - IPv6-in-IPv6 from the home agent to the care-of address, tunnel up:
 *    decapsulate, the inner packet (to the home address) goes up the stack (§11.3.2)
 *  - any other IPv6-in-IPv6: dropped (spoofed, not to the CoA, tunnel down, malformed)
 *  - Mobility Header from the home agent (a BA behind a Type 2 Routing Header, a BRR,
 *    a BE; also inside the tunnel): copied to the control plane's ring, dropped
 *    (the kernel would discard it and answer Parameter Problem)
 *  - everything else: TC_ACT_OK untouched
 *
 * mip6_mn_egress:
 *  - from the home address, tunnel up: IPv6-in-IPv6 to the home agent (reverse
 *    tunnel, §11.3.1), out of the care-of interface; GSO packets stay GSO
 *    (bpf_skb_adjust_room with ENCAP_L3_IPV6 lowers gso_size by 40 and marks IPXIP6)
 *  - too big for the tunnel and not GSO: Packet Too Big to the local stack
 *  - left alone: Neighbor Discovery, multicast and link-local destinations,
 *    anything not from the home address (the CoA's BUs, our own tunnel packets)
 *
 * The control plane owns the config; this program only reads it.
 */
#include <linux/pkt_cls.h>
#include "mip6_parse.h"
#include "mip6_shared.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define AF_INET6_ 10
#define IPV6_HLEN 40 /* sizeof(struct ipv6hdr) */
#define IPPROTO_TCP_ 6

/* Linux 6.3 flags; the UAPI headers of Debian 12 (6.1) do not have them yet.
 * A kernel that does not know them refuses the call with -EINVAL before touching
 * the packet, and decapsulation then retries without. */
#ifndef MIP6_ADJ_ROOM_DECAP_L3_IPV6
#define MIP6_ADJ_ROOM_DECAP_L3_IPV6 (1ULL << 8) /* BPF_F_ADJ_ROOM_DECAP_L3_IPV6 */
#endif
#define ENOTSUPP_ 524 /* kernel-internal errno of bpf_skb_adjust_room for non-TCP GSO */
#define EINVAL_   22

/* Headers of tunnels and signaling looked at directly; pulled into the linear area when a
 * driver left them in page fragments. */
#define MN_PULL_LEN 256

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mip6_mn_config);
} mip6_mn_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MIP6_MN_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} mip6_mn_counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, MIP6_PUNT_RING_BYTES);
} mip6_mn_punt SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&mip6_mn_counts, &idx);
	if (v)
		*v += 1;
}

/* Count and return the verdict: one exit point per reason. */
static __always_inline int verdict(__u32 idx, int action)
{
	count(idx);
	return action;
}

static __always_inline int addr_is_link_local(const __u8 *a)
{
	return a[0] == 0xfe && (a[1] & 0xc0) == 0x80;
}

/* Make the first `want` bytes (or the whole packet, if shorter) directly readable. */
static __always_inline void pull_headers(struct __sk_buff *skb, __u32 want)
{
	__u32 linear = skb->data_end - skb->data;
	if (linear >= want || linear >= skb->len)
		return;
	bpf_skb_pull_data(skb, skb->len < want ? skb->len : want);
}

/* Copy `len` bytes of the packet from `off` (an IPv6 header) into the control plane's ring. */
static __always_inline int punt(struct __sk_buff *skb, __u32 off, __u32 len, const __u8 *src_mac)
{
	struct mip6_punt_record *r = bpf_ringbuf_reserve(&mip6_mn_punt, sizeof(*r), 0);
	if (!r)
		return -1;
	r->hdr.tstamp_ns = bpf_ktime_get_ns();
	r->hdr.kind = MIP6_PUNT_MH;
	r->hdr.ifindex = skb->ifindex;
	r->hdr.orig_len = len;
	mac_copy(r->hdr.src_mac, src_mac);
	r->hdr._pad[0] = r->hdr._pad[1] = 0;
	if (len > MIP6_PUNT_MAX) {
		len = MIP6_PUNT_MAX;
		count(MIP6_MN_CNT_MH_PUNT_TRUNCATED);
	}
	r->hdr.len = len;
	/* Keep the bounds check next to the call so the verifier sees 1 <= len <= MIP6_PUNT_MAX. */
	barrier_var(len);
	if (len < 1 || len > MIP6_PUNT_MAX || bpf_skb_load_bytes(skb, off, r->data, len) < 0) {
		bpf_ringbuf_discard(r, 0);
		return -1;
	}
	bpf_ringbuf_submit(r, 0);
	return 0;
}

/* Punt an IPv6 packet at `ip6` (offset `off` in the frame) whose chain ends in an MH, and drop it. */
static __always_inline int punt_mh(struct __sk_buff *skb, struct ethhdr *eth, struct ipv6hdr *ip6, __u32 off)
{
	__u32 len = bpf_ntohs(ip6->payload_len) + IPV6_HLEN;
	__u32 avail = skb->len > off ? skb->len - off : 0;
	if (len > avail) /* Ethernet padding may follow a packet, never truncation */
		return verdict(MIP6_MN_CNT_IN_DROP_MALFORMED, TC_ACT_SHOT);
	if (punt(skb, off, len, eth->h_source) < 0)
		return verdict(MIP6_MN_CNT_MH_PUNT_RING_FULL, TC_ACT_SHOT);
	return verdict(MIP6_MN_CNT_MH_PUNT, TC_ACT_SHOT);
}

/* Walk the extension headers after `ip6` (bounded) to the upper-layer protocol.
 * Returns the protocol (cursor at its header), or -1 truncated, -2 chain too long;
 * a Fragment header stops the walk: *frag_next gets the fragment's next header. */
static __always_inline int walk_ext(struct cursor *c, __u8 nh, int *frag_next)
{
	int i;

	*frag_next = -1;
	for (i = 0; i < MIP6_MAX_EXT_HEADERS; i++) {
		if (nh == IPPROTO_FRAGMENT_) {
			struct ext_hdr *f = cursor_take(c, 8);
			if (!f)
				return -1;
			*frag_next = f->nexthdr;
			return IPPROTO_FRAGMENT_;
		}
		if (!is_skippable_ext(nh))
			return nh;
		struct ext_hdr *h = cursor_take(c, sizeof(*h));
		if (!h)
			return -1;
		nh = h->nexthdr;
		/* the 2 bytes just taken are part of the (hdrlen + 1) * 8 */
		if (!cursor_take(c, ((__u32)h->hdrlen + 1) * 8 - sizeof(*h)))
			return -1;
	}
	return is_skippable_ext(nh) || nh == IPPROTO_FRAGMENT_ ? -2 : nh;
}

/*
 * RFC 6275 §11.3.2 / RFC 2473 §3.2: a packet tunneled by the home agent to the care-of
 * address. `inner` follows `outer_len` bytes of outer IPv6 header and extension headers.
 */
static __always_inline int decapsulate(struct __sk_buff *skb, const struct mip6_mn_config *cfg,
				       struct ethhdr *eth, struct ipv6hdr *outer, struct cursor *c)
{
	int to_pending = !addr_is_unspecified(cfg->pending_coa) && addr_eq(outer->daddr.s6_addr, cfg->pending_coa);
	if (!(cfg->flags & MIP6_MN_TUNNEL_UP) && !to_pending)
		return verdict(MIP6_MN_CNT_DROP_TUNNEL_DOWN, TC_ACT_SHOT);
	if (!to_pending && !addr_eq(outer->daddr.s6_addr, cfg->coa))
		return verdict(MIP6_MN_CNT_DROP_TUNNEL_NOT_COA, TC_ACT_SHOT);
	if (!addr_eq(outer->saddr.s6_addr, cfg->ha))
		return verdict(MIP6_MN_CNT_DROP_TUNNEL_SPOOFED, TC_ACT_SHOT);

	struct ipv6hdr *inner = c->pos;
	if (!cursor_take(c, sizeof(*inner)) || inner->version != 6)
		return verdict(MIP6_MN_CNT_DROP_TUNNEL_MALFORMED, TC_ACT_SHOT);
	__u32 outer_len = (void *)inner - (void *)outer;
	__u32 inner_off = sizeof(struct ethhdr) + outer_len;
	__u32 inner_len = bpf_ntohs(inner->payload_len) + IPV6_HLEN;
	if (inner_off + inner_len > skb->len)
		return verdict(MIP6_MN_CNT_DROP_TUNNEL_MALFORMED, TC_ACT_SHOT);
	if (!addr_eq(inner->daddr.s6_addr, cfg->hoa) && !addr_is_multicast(inner->daddr.s6_addr))
		return verdict(MIP6_MN_CNT_DROP_TUNNEL_NOT_HOA, TC_ACT_SHOT);

	/* Signaling inside the tunnel (a Binding Refresh Request to the home address). */
	int frag_next;
	int nh = walk_ext(c, inner->nexthdr, &frag_next);
	if (nh == IPPROTO_MH_) {
		count(MIP6_MN_CNT_MH_PUNT_TUNNELED);
		return punt_mh(skb, eth, inner, inner_off);
	}
	if (nh == IPPROTO_FRAGMENT_ && frag_next == IPPROTO_MH_)
		return verdict(MIP6_MN_CNT_DROP_FRAGMENT, TC_ACT_SHOT);

	/* FIXED_GSO: a GRO-merged tunnel packet keeps its segment size (only the outer header goes). */
	__u64 flags = BPF_F_ADJ_ROOM_FIXED_GSO | MIP6_ADJ_ROOM_DECAP_L3_IPV6;
	long rc = bpf_skb_adjust_room(skb, -(__s32)outer_len, BPF_ADJ_ROOM_MAC, flags);
	if (rc == -EINVAL_) /* a kernel before 6.3 */
		rc = bpf_skb_adjust_room(skb, -(__s32)outer_len, BPF_ADJ_ROOM_MAC, BPF_F_ADJ_ROOM_FIXED_GSO);
	if (rc < 0)
		return verdict(MIP6_MN_CNT_DROP_DECAP_FAIL, TC_ACT_SHOT);
	return verdict(MIP6_MN_CNT_DECAP, TC_ACT_OK);
}

SEC("tc")
int mip6_mn_ingress(struct __sk_buff *skb)
{
	__u32 zero = 0;

	count(MIP6_MN_CNT_IN_TOTAL);
	if (skb->protocol != bpf_htons(ETH_P_IPV6))
		return verdict(MIP6_MN_CNT_IN_PASS, TC_ACT_OK);
	/* Drivers may leave headers in page fragments. The IPv6 header is pulled (ip6_rcv
	 * would pull it anyway); the rest only for the packets whose chain we walk. */
	pull_headers(skb, sizeof(struct ethhdr) + IPV6_HLEN);
	void *data = (void *)(long)skb->data;
	struct ipv6hdr *first = data + sizeof(struct ethhdr);
	if ((void *)(first + 1) <= (void *)(long)skb->data_end && first->version == 6 &&
	    !is_skippable_ext(first->nexthdr) && first->nexthdr != IPPROTO_IPV6_ &&
	    first->nexthdr != IPPROTO_MH_ && first->nexthdr != IPPROTO_FRAGMENT_)
		return verdict(MIP6_MN_CNT_IN_PASS, TC_ACT_OK); /* TCP, UDP, ICMPv6...: not ours */
	pull_headers(skb, MN_PULL_LEN);

	struct cursor c = { .pos = (void *)(long)skb->data, .end = (void *)(long)skb->data_end };
	struct ethhdr *eth = parse_ethhdr(&c);
	if (!eth || eth->h_proto != bpf_htons(ETH_P_IPV6))
		return verdict(MIP6_MN_CNT_IN_PASS, TC_ACT_OK);
	struct ipv6hdr *ip6 = parse_ipv6hdr(&c);
	if (!ip6)
		return verdict(MIP6_MN_CNT_IN_DROP_MALFORMED, TC_ACT_SHOT);
	struct mip6_mn_config *cfg = bpf_map_lookup_elem(&mip6_mn_config, &zero);
	if (!cfg)
		return verdict(MIP6_MN_CNT_IN_PASS, TC_ACT_OK);

	int frag_next;
	int nh = walk_ext(&c, ip6->nexthdr, &frag_next);
	if (nh == -1)
		return verdict(MIP6_MN_CNT_IN_DROP_MALFORMED, TC_ACT_SHOT);
	if (nh == -2)
		return verdict(MIP6_MN_CNT_IN_PASS_EXT_CHAIN, TC_ACT_OK);
	if (nh == IPPROTO_IPV6_)
		return decapsulate(skb, cfg, eth, ip6, &c);
	if (nh == IPPROTO_MH_ && addr_eq(ip6->saddr.s6_addr, cfg->ha) && !addr_is_unspecified(cfg->ha))
		return punt_mh(skb, eth, ip6, sizeof(struct ethhdr));
	/* Neither signaling nor a tunnel is ever reassembled here: their first fragments go. */
	if (nh == IPPROTO_FRAGMENT_ && (frag_next == IPPROTO_IPV6_ ||
					(frag_next == IPPROTO_MH_ && addr_eq(ip6->saddr.s6_addr, cfg->ha))))
		return verdict(MIP6_MN_CNT_DROP_FRAGMENT, TC_ACT_SHOT);
	return verdict(MIP6_MN_CNT_IN_PASS, TC_ACT_OK);
}

/*
 * RFC 2473 §7 / RFC 4443 §3.2: a packet from the home address that does not fit the
 * tunnel and cannot be segmented. Turn it into a Packet Too Big for the local stack
 * (source: the care-of address, quoting the first 1232 bytes so the message stays
 * within 1280) and hand it to this interface's ingress: the socket learns the tunnel
 * MTU as it would from ip6tnl.
 */
#define PTB_QUOTE 1232
#define PTB_ICMP_LEN (8 + PTB_QUOTE)
#define PTB_FRAME_LEN (sizeof(struct ethhdr) + IPV6_HLEN + PTB_ICMP_LEN)
static __always_inline int packet_too_big(struct __sk_buff *skb, const struct mip6_mn_config *cfg, __u32 mtu)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct ipv6hdr *orig = data + sizeof(*eth);
	if ((void *)(orig + 1) > data_end || skb->len < sizeof(*eth) + PTB_QUOTE)
		return verdict(MIP6_MN_CNT_DROP_ENCAP_FAIL, TC_ACT_SHOT);
	__u8 our_mac[ETH_ALEN], peer_mac[ETH_ALEN], hoa[16], coa[16];
	mac_copy(our_mac, eth->h_source);
	mac_copy(peer_mac, eth->h_dest);
	addr_copy(hoa, orig->saddr.s6_addr);
	addr_copy(coa, cfg->coa);

	/* Trim to Ethernet + quote, open 48 bytes for IPv6 + ICMPv6 after the Ethernet header. */
	if (bpf_skb_change_tail(skb, sizeof(*eth) + PTB_QUOTE, 0) ||
	    bpf_skb_adjust_room(skb, IPV6_HLEN + 8, BPF_ADJ_ROOM_MAC, 0) ||
	    bpf_skb_pull_data(skb, PTB_FRAME_LEN))
		return verdict(MIP6_MN_CNT_DROP_ENCAP_FAIL, TC_ACT_SHOT);
	/* Reload: every helper above invalidates packet pointers. */
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	if (data + PTB_FRAME_LEN > data_end)
		return verdict(MIP6_MN_CNT_DROP_ENCAP_FAIL, TC_ACT_SHOT);
	eth = data;
	struct ipv6hdr *ip6 = data + sizeof(*eth);
	__u8 *icmp = (void *)(ip6 + 1);

	/* Received by us: to our own MAC, so the stack takes it as PACKET_HOST. */
	mac_copy(eth->h_dest, our_mac);
	mac_copy(eth->h_source, peer_mac);
	eth->h_proto = bpf_htons(ETH_P_IPV6);
	*(__u32 *)ip6 = bpf_htonl(0x60000000);
	ip6->payload_len = bpf_htons(PTB_ICMP_LEN);
	ip6->nexthdr = IPPROTO_ICMPV6_;
	ip6->hop_limit = 64;
	addr_copy(ip6->saddr.s6_addr, coa);
	addr_copy(ip6->daddr.s6_addr, hoa);
	icmp[0] = ICMPV6_PKT_TOOBIG_;
	icmp[1] = 0;
	*(__u16 *)(icmp + 2) = 0;
	*(__u32 *)(icmp + 4) = bpf_htonl(mtu);

	/* Pseudo-header (RFC 8200 §8.1) + ICMPv6 message, in bpf_csum_diff's 512-byte steps. */
	__s64 s = bpf_csum_diff(0, 0, (void *)&ip6->saddr, 32, 0);
	if (s < 0)
		return TC_ACT_SHOT;
	__u64 sum = s;
	sum += bpf_htonl(PTB_ICMP_LEN);
	sum += bpf_htonl(IPPROTO_ICMPV6_);
	s = bpf_csum_diff(0, 0, (void *)icmp, 512, 0);
	if (s < 0)
		return TC_ACT_SHOT;
	sum += s;
	s = bpf_csum_diff(0, 0, (void *)icmp + 512, 512, 0);
	if (s < 0)
		return TC_ACT_SHOT;
	sum += s;
	s = bpf_csum_diff(0, 0, (void *)icmp + 1024, PTB_ICMP_LEN - 1024, 0);
	if (s < 0)
		return TC_ACT_SHOT;
	sum += s;
	*(__u16 *)(icmp + 2) = csum_fold(sum);
	count(MIP6_MN_CNT_ENCAP_TOO_BIG);
	return bpf_redirect(skb->ifindex, BPF_F_INGRESS);
}

/* RFC 6275 §11.3.1: reverse-tunnel a packet from the home address to the home agent. */
static __always_inline int encapsulate(struct __sk_buff *skb, const struct mip6_mn_config *cfg, struct ipv6hdr *inner)
{
	__u32 first_word = *(__u32 *)inner; /* version, traffic class, flow label: copied out (RFC 2473 §6.4) */
	__u32 inner_len = skb->len - sizeof(struct ethhdr);
	if (skb->len < sizeof(struct ethhdr) || inner_len > 0xffff) /* no jumbograms (BIG TCP) in a tunnel */
		return verdict(MIP6_MN_CNT_DROP_ENCAP_FAIL, TC_ACT_SHOT);

	/* Must fit with 40 more bytes; bpf_check_mtu passes GSO packets (segmented later). */
	__u32 mtu_len = 0;
	if (bpf_check_mtu(skb, cfg->coa_ifindex, &mtu_len, IPV6_HLEN, 0) == BPF_MTU_CHK_RET_FRAG_NEEDED) {
		__u32 mtu = mtu_len > 1280 + IPV6_HLEN ? mtu_len - IPV6_HLEN : 1280;
		return packet_too_big(skb, cfg, mtu);
	}

	/* Room for the outer header between Ethernet and IPv6; the packet is marked
	 * SKB_GSO_IPXIP6 + encapsulation so TSO/GSO segment it correctly, and gso_size
	 * shrinks by 40 so every segment still fits. Not when TCP already sized its segments
	 * for the tunnel (after a Packet Too Big): they fit as they are (FIXED_GSO).
	 * UDP GSO refuses a changing gso_size (-ENOTSUPP): its datagrams keep their size. */
	__u64 flags = BPF_F_ADJ_ROOM_ENCAP_L3_IPV6;
	__u32 gso_size = skb->gso_size;
	if (gso_size && inner->nexthdr == IPPROTO_TCP_) {
		__u8 *tcp = (void *)(inner + 1);
		if ((void *)(tcp + 13) <= (void *)(long)skb->data_end &&
		    IPV6_HLEN + (__u32)(tcp[12] >> 4) * 4 + gso_size + IPV6_HLEN <= mtu_len)
			flags |= BPF_F_ADJ_ROOM_FIXED_GSO;
	}
	long rc = bpf_skb_adjust_room(skb, IPV6_HLEN, BPF_ADJ_ROOM_MAC, flags);
	if (rc == -ENOTSUPP_)
		rc = bpf_skb_adjust_room(skb, IPV6_HLEN, BPF_ADJ_ROOM_MAC, flags | BPF_F_ADJ_ROOM_FIXED_GSO);
	if (rc < 0)
		return verdict(MIP6_MN_CNT_DROP_ENCAP_FAIL, TC_ACT_SHOT);

	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct ipv6hdr *outer = data + sizeof(*eth);
	if ((void *)(outer + 1) > data_end)
		return verdict(MIP6_MN_CNT_DROP_ENCAP_FAIL, TC_ACT_SHOT);
	*(__u32 *)outer = first_word;
	outer->payload_len = bpf_htons(inner_len);
	outer->nexthdr = IPPROTO_IPV6_;
	outer->hop_limit = MIP6_TUNNEL_HOP_LIMIT;
	addr_copy(outer->saddr.s6_addr, cfg->coa);
	addr_copy(outer->daddr.s6_addr, cfg->ha);
	count(MIP6_MN_CNT_ENCAP);

	/* Out of the care-of interface towards the home agent. An output lookup: the packet
	 * is ours. tot_len 0: the kernel checks the skb itself against the MTU (GSO-aware). */
	struct bpf_fib_lookup fib = {};
	fib.family = AF_INET6_;
	fib.ifindex = cfg->coa_ifindex;
	fib.l4_protocol = IPPROTO_IPV6_;
	addr_copy((__u8 *)fib.ipv6_src, cfg->coa);
	addr_copy((__u8 *)fib.ipv6_dst, cfg->ha);
	int fr = bpf_fib_lookup(skb, &fib, sizeof(fib), BPF_FIB_LOOKUP_OUTPUT);
	if (fr == BPF_FIB_LKUP_RET_SUCCESS) {
		mac_copy(eth->h_dest, fib.dmac);
		mac_copy(eth->h_source, fib.smac);
		if (fib.ifindex == skb->ifindex)
			return verdict(MIP6_MN_CNT_ENCAP_TX, TC_ACT_OK);
		count(MIP6_MN_CNT_ENCAP_REDIRECT);
		return bpf_redirect(fib.ifindex, 0);
	}
	if (fr == BPF_FIB_LKUP_RET_BLACKHOLE || fr == BPF_FIB_LKUP_RET_UNREACHABLE ||
	    fr == BPF_FIB_LKUP_RET_PROHIBIT || fr == BPF_FIB_LKUP_RET_FRAG_NEEDED || fr < 0)
		return verdict(MIP6_MN_CNT_DROP_ENCAP_NO_ROUTE, TC_ACT_SHOT);
	count(MIP6_MN_CNT_ENCAP_REDIRECT_NEIGH);
	if (fr == BPF_FIB_LKUP_RET_NO_NEIGH) {
		/* The lookup found the next hop; the kernel resolves its neighbour and queues. */
		struct bpf_redir_neigh nh = { .nh_family = AF_INET6_ };
		addr_copy((__u8 *)nh.ipv6_nh, (__u8 *)fib.ipv6_dst);
		return bpf_redirect_neigh(fib.ifindex, &nh, sizeof(nh), 0);
	}
	/* BPF_FIB_LKUP_RET_FWD_DISABLED: a host has forwarding off and bpf_fib_lookup refuses
	 * even output lookups then. The kernel routes and resolves the next hop itself. */
	return bpf_redirect_neigh(cfg->coa_ifindex, NULL, 0, 0);
}

SEC("tc")
int mip6_mn_egress(struct __sk_buff *skb)
{
	__u32 zero = 0;

	count(MIP6_MN_CNT_OUT_TOTAL);
	if (skb->protocol != bpf_htons(ETH_P_IPV6))
		return verdict(MIP6_MN_CNT_OUT_PASS, TC_ACT_OK);
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct ipv6hdr *ip6 = data + sizeof(*eth);
	if ((void *)(ip6 + 1) + 1 > data_end) { /* the stack writes headers linear; a short packet is not ours */
		pull_headers(skb, sizeof(*eth) + IPV6_HLEN + 1);
		data = (void *)(long)skb->data;
		data_end = (void *)(long)skb->data_end;
		eth = data;
		ip6 = data + sizeof(*eth);
		if ((void *)(ip6 + 1) + 1 > data_end)
			return verdict(MIP6_MN_CNT_OUT_PASS, TC_ACT_OK);
	}
	if (eth->h_proto != bpf_htons(ETH_P_IPV6) || ip6->version != 6)
		return verdict(MIP6_MN_CNT_OUT_PASS, TC_ACT_OK);
	struct mip6_mn_config *cfg = bpf_map_lookup_elem(&mip6_mn_config, &zero);
	if (!cfg || !addr_eq(ip6->saddr.s6_addr, cfg->hoa) || addr_is_unspecified(cfg->hoa))
		return verdict(MIP6_MN_CNT_OUT_PASS, TC_ACT_OK);
	if (!(cfg->flags & MIP6_MN_TUNNEL_UP))
		return verdict(MIP6_MN_CNT_OUT_PASS_TUNNEL_DOWN, TC_ACT_OK);
	if (ip6->nexthdr == IPPROTO_IPV6_ && addr_eq(ip6->saddr.s6_addr, cfg->coa))
		return verdict(MIP6_MN_CNT_OUT_PASS, TC_ACT_OK); /* already tunneled (HoA == CoA) */
	if (ip6->nexthdr == IPPROTO_ICMPV6_) {
		__u8 type = *(__u8 *)(ip6 + 1);
		if (type >= 133 && type <= 137) /* RS, RA, NS, NA, Redirect */
			return verdict(MIP6_MN_CNT_OUT_PASS_ND, TC_ACT_OK);
	}
	if (addr_is_multicast(ip6->daddr.s6_addr) || addr_is_link_local(ip6->daddr.s6_addr))
		return verdict(MIP6_MN_CNT_OUT_PASS_SCOPE, TC_ACT_OK);
	return encapsulate(skb, cfg, ip6);
}
