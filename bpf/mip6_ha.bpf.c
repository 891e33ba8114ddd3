// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Home-agent data plane (RFC 6275 §10.4) on the home-link interface, in two attach modes
 * built from one body (mip6_ha_core.h) and sharing every map:
 *
 *  mip6_ha_xdp  SEC("xdp"): the fastest per packet, but native XDP on veth turns TSO/GSO off.
 *  mip6_ha_tc   SEC("tc"), cls_bpf direct action on clsact ingress: works on skbs, so TCP
 *               GSO packets stay GSO through encapsulation and decapsulation.
 *
 * What both do:
 *
 *  - to a registered home address: IPv6-in-IPv6 to the care-of address (RFC 2473)
 *  - to our address, next header 41 from a registered CoA: reverse tunnel, decapsulate (§10.4.5)
 *  - NS for a registered home address: answer with our link-layer address (proxy ND, §10.4.1)
 *  - Mobility Header to one of our addresses: copy to the control plane's ring, drop
 *    (this kernel would discard a BU for its Home Address option and answer Parameter Problem)
 *  - everything else: XDP_PASS / TC_ACT_OK
 *
 * The control plane owns every map but the counters; these programs only read bindings.
 */
#include <linux/pkt_cls.h>
#include "mip6_parse.h"
#include "mip6_shared.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define AF_INET6_ 10
#define IPPROTO_TCP_ 6
#define IPPROTO_UDP_ 17
#define ENOTSUPP_ 524 /* kernel-internal errno: bpf_skb_adjust_room cannot handle this GSO type */
#define EALREADY_ 114 /* bpf_skb_adjust_room: the skb is already marked as encapsulated */

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

/* `packets`: 1, or the segments of a GSO skb (TC), so XDP and TC count the same traffic alike. */
static __always_inline void stats_add(const __u8 *hoa, __u32 bytes, __u32 packets, int to_mn)
{
	struct mip6_binding_stats *s = bpf_map_lookup_elem(&mip6_bind_stats, hoa);
	if (!s) /* created by the control plane with the binding */
		return;
	if (to_mn) {
		__sync_fetch_and_add(&s->to_mn_packets, packets);
		__sync_fetch_and_add(&s->to_mn_bytes, bytes);
	} else {
		__sync_fetch_and_add(&s->from_mn_packets, packets);
		__sync_fetch_and_add(&s->from_mn_bytes, bytes);
	}
}


/* Fill a reserved record with `len` bytes (1 <= len <= room) and submit it. */
#define PUNT_FILL(load_bytes, ctx, r, len, room)                                               \
	({                                                                                     \
		int _rc = 0;                                                                   \
		__u32 _n = (len);                                                              \
		r->hdr.len = _n;                                                               \
		/* The bounds check next to the call: the verifier must see 1 <= n <= room. */ \
		barrier_var(_n);                                                               \
		if (_n < 1 || _n > (room) ||                                                   \
		    load_bytes(ctx, sizeof(struct ethhdr), r->data, _n) < 0) {                 \
			bpf_ringbuf_discard(r, 0);                                             \
			_rc = -1;                                                              \
		} else {                                                                       \
			bpf_ringbuf_submit(r, 0);                                              \
		}                                                                              \
		_rc;                                                                           \
	})

/* Parse Ethernet + IPv6 again from the start of a packet that moved; false if it no longer can. */
#define HA_REPARSE(ctx, c, eth, ip6)                                \
	({                                                          \
		(c).pos = (void *)(long)(ctx)->data;                \
		(c).end = (void *)(long)(ctx)->data_end;            \
		(eth) = parse_ethhdr(&(c));                         \
		(ip6) = (eth) ? parse_ipv6hdr(&(c)) : NULL;         \
		(eth) && (ip6);                                     \
	})

/* Bytes the TC program wants directly readable: on every packet Ethernet + IPv6 + the
 * first 8 bytes of the next header; to our own addresses (tunnels, signaling) enough for
 * an outer header, a few extension headers and the inner header. */
#define HA_PULL_FAST  (14 + 40 + 8)
#define HA_PULL_LOCAL 256

/* ======================================================================
 * XDP: a linear frame; room at the head with bpf_xdp_adjust_head.
 * ====================================================================== */
#define HA_CTX           struct xdp_md
#define HA_FN(name)      name##_xdp
#define HA_PASS          XDP_PASS
#define HA_DROP          XDP_DROP
#define HA_IFINDEX(ctx)  ((ctx)->ingress_ifindex)
#define HA_LOAD_BYTES    bpf_xdp_load_bytes
#define HA_CSUM_ADD(ctx, diff) do { if (0) (void)(diff); } while (0) /* no skb checksum state */

static __always_inline __u32 len_xdp(struct xdp_md *ctx)
{
	return ctx->data_end - ctx->data;
}

static __always_inline int pull_xdp(struct xdp_md *ctx, __u32 want)
{
	return 0; /* the whole frame is linear */
}

static __always_inline int tx_xdp(struct xdp_md *ctx)
{
	return XDP_TX;
}

static __always_inline int open_room_xdp(struct xdp_md *ctx, __u32 n, __u64 flags)
{
	if (bpf_xdp_adjust_head(ctx, -(int)n))
		return -1;
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct ethhdr *old_eth = data + n;
	if ((void *)(old_eth + 1) > data_end)
		return -1;
	__builtin_memcpy(eth, old_eth, sizeof(*eth)); /* no overlap: n >= 14 at every caller */
	return 0;
}

static __always_inline int close_room_xdp(struct xdp_md *ctx, __u32 n)
{
	struct ethhdr eth_copy;
	struct ethhdr *eth = (void *)(long)ctx->data;
	if ((void *)(eth + 1) > (void *)(long)ctx->data_end)
		return -1;
	__builtin_memcpy(&eth_copy, eth, sizeof(eth_copy));
	if (bpf_xdp_adjust_head(ctx, (int)n))
		return -1;
	eth = (void *)(long)ctx->data;
	if ((void *)(eth + 1) > (void *)(long)ctx->data_end)
		return -1;
	__builtin_memcpy(eth, &eth_copy, sizeof(*eth));
	return 0;
}

static __always_inline int set_len_xdp(struct xdp_md *ctx, __u32 n)
{
	int delta = (int)n - (int)len_xdp(ctx);
	return delta && bpf_xdp_adjust_tail(ctx, delta) ? -1 : 0;
}

static __always_inline __u32 encap_check_xdp(struct xdp_md *ctx, struct ipv6hdr *ip6, __u32 inner_len, __u64 *flags)
{
	return inner_len + 40;
}

static __always_inline __u32 seg_len_xdp(struct xdp_md *ctx, __u32 off, __u8 nexthdr, __u32 len)
{
	return len;
}

static __always_inline __u32 segs_xdp(struct xdp_md *ctx)
{
	return 1;
}

#include "mip6_ha_core.h" /* undefines the HA_* parameters again */

/* perf/'s XDP wrapper (mip6_bench.bpf.c) calls the XDP body by this name. */
#define ha_process ha_process_xdp

/* ======================================================================
 * TC (cls_bpf, direct action, clsact ingress): an skb, maybe GSO, maybe with
 * headers in page fragments. "Back out of the arrival interface" is a redirect to
 * its egress; room at the head with bpf_skb_adjust_room at the MAC layer, which
 * keeps the Ethernet header where it is.
 * ====================================================================== */
#define HA_CTX           struct __sk_buff
#define HA_FN(name)      name##_tc
#define HA_PASS          TC_ACT_OK
#define HA_DROP          TC_ACT_SHOT
/* At clsact ingress skb->ifindex is the device we are attached to (= ingress_ifindex),
 * and it is also what BPF_PROG_TEST_RUN sets. */
#define HA_IFINDEX(ctx)  ((ctx)->ifindex)
#define HA_LOAD_BYTES    bpf_skb_load_bytes
/* A CHECKSUM_COMPLETE skb's sum covers what we rewrite; bpf_csum_update is a no-op otherwise. */
#define HA_CSUM_ADD(ctx, diff) bpf_csum_update(ctx, (__u32)(diff))

static __always_inline __u32 len_tc(struct __sk_buff *skb)
{
	return skb->len;
}

static __always_inline int pull_tc(struct __sk_buff *skb, __u32 want)
{
	__u32 linear = skb->data_end - skb->data;
	if (linear >= want || linear >= skb->len)
		return 0;
	/* Packet pointers are void after the call whether it worked or not: 1 either way,
	 * and the caller's bounds checks find out what is readable. */
	bpf_skb_pull_data(skb, skb->len < want ? skb->len : want);
	return 1;
}

static __always_inline int tx_tc(struct __sk_buff *skb)
{
	return bpf_redirect(skb->ifindex, 0);
}

static __always_inline int open_room_tc(struct __sk_buff *skb, __u32 n, __u64 flags)
{
	long rc = bpf_skb_adjust_room(skb, (__s32)n, BPF_ADJ_ROOM_MAC, flags);
	/* Encapsulation marks only matter for GSO; a plain packet already marked (it came
	 * out of someone's tunnel) gets its room without them. */
	if (rc == -EALREADY_ && !skb->gso_size)
		rc = bpf_skb_adjust_room(skb, (__s32)n, BPF_ADJ_ROOM_MAC, 0);
	return rc; /* the room itself is linear: it came out of the headroom */
}

/*
 * FIXED_GSO: a GSO skb from the reverse tunnel keeps its segment size, so every inner
 * segment is 40 bytes shorter than the tunnel packet it came in (what the kernel's own
 * ip6_tunnel does). Up to Linux 6.18 bpf_skb_adjust_room leaves the skb's tunnel GSO
 * marks (SKB_GSO_IPXIP6, skb->encapsulation) behind on decapsulation; software GSO
 * segments such an skb correctly (the inner offsets are now the outer ones).
 */
#ifndef MIP6_ADJ_ROOM_DECAP_L3_IPV6
#define MIP6_ADJ_ROOM_DECAP_L3_IPV6 (1ULL << 8) /* BPF_F_ADJ_ROOM_DECAP_L3_IPV6 (Linux 6.3+) */
#endif
static __always_inline int close_room_tc(struct __sk_buff *skb, __u32 n)
{
	/* DECAP_L3_IPV6 where the kernel has it (it may also drop the tunnel GSO marks), else without. */
	if (!bpf_skb_adjust_room(skb, -(__s32)n, BPF_ADJ_ROOM_MAC, BPF_F_ADJ_ROOM_FIXED_GSO | MIP6_ADJ_ROOM_DECAP_L3_IPV6))
		return 0;
	return bpf_skb_adjust_room(skb, -(__s32)n, BPF_ADJ_ROOM_MAC, BPF_F_ADJ_ROOM_FIXED_GSO) ? -1 : 0;
}

/* bpf_skb_change_tail linearizes the skb and resets GSO: fine for NA and Packet Too Big. */
static __always_inline int set_len_tc(struct __sk_buff *skb, __u32 n)
{
	if (n == skb->len)
		return 0;
	return bpf_skb_change_tail(skb, n, 0) ? -1 : 0;
}

/* One segment of the IPv6 packet at `off` (total length `len`): IPv6 + TCP/UDP header +
 * gso_size; the packet itself when not GSO; 0 when we cannot tell. gso_type is not visible
 * to BPF, so the next header tells TCP from UDP (extension headers: 0). */
static __always_inline __u32 seg_len_tc(struct __sk_buff *skb, __u32 off, __u8 nexthdr, __u32 len)
{
	__u32 gso = skb->gso_size;
	if (!gso)
		return len;
	__u32 l4;
	if (nexthdr == IPPROTO_TCP_) {
		__u8 doff;
		if (bpf_skb_load_bytes(skb, off + 40 + 12, &doff, 1) < 0)
			return 0;
		l4 = (__u32)(doff >> 4) * 4;
	} else if (nexthdr == IPPROTO_UDP_) {
		l4 = 8;
	} else {
		return 0;
	}
	__u32 seg = 40 + l4 + gso;
	return seg < len ? seg : len;
}

/*
 * Encapsulating a GSO skb (bpf_skb_adjust_room with ENCAP_L3_IPV6 marks it SKB_GSO_IPXIP6,
 * so TSO/GSO segment it with an outer header on every segment):
 *  - TCP: without FIXED_GSO the kernel lowers gso_size by 40, so every segment on the wire
 *    is exactly as long as the segment that arrived: one segment must fit the route.
 *  - UDP (UDP_L4 GSO): gso_size is each datagram's payload and cannot change (the kernel
 *    answers -ENOTSUPP); with FIXED_GSO every datagram grows by 40, and must still fit
 *    (if not, the sender gets Packet Too Big, as for a single datagram).
 *  - anything else (extension headers first, another GSO type): 0, counted and dropped
 *    as drop_encap_gso; the kernel's -ENOTSUPP for a type it cannot handle goes there too.
 */
static __always_inline __u32 encap_check_tc(struct __sk_buff *skb, struct ipv6hdr *ip6, __u32 inner_len, __u64 *flags)
{
	*flags = BPF_F_ADJ_ROOM_ENCAP_L3_IPV6;
	if (!skb->gso_size)
		return inner_len + 40;
	__u32 seg = seg_len_tc(skb, 14, ip6->nexthdr, inner_len);
	if (seg == 0)
		return 0;
	if (ip6->nexthdr == IPPROTO_UDP_) {
		*flags |= BPF_F_ADJ_ROOM_FIXED_GSO;
		return seg + 40;
	}
	if (skb->gso_size <= 2 * 40) /* nothing left of a segment once it shrinks by 40 */
		return 0;
	return seg;
}

static __always_inline __u32 segs_tc(struct __sk_buff *skb)
{
	return skb->gso_segs ? skb->gso_segs : 1;
}

#include "mip6_ha_core.h" /* undefines the HA_* parameters again */

SEC("xdp")
int mip6_ha_xdp(struct xdp_md *ctx)
{
	return ha_process_xdp(ctx);
}

SEC("tc")
int mip6_ha_tc(struct __sk_buff *skb)
{
	return ha_process_tc(skb);
}
