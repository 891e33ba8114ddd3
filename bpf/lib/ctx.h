/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The context layer: one program body for XDP and TC. Every function takes the raw
 * context and the hook as a compile-time constant,
 *
 *   static __always_inline int body(void *ctx, const enum m6_hook hook);
 *   SEC("xdp") int prog_xdp(struct xdp_md *ctx)      { return body(ctx, M6_XDP); }
 *   SEC("tc")  int prog_tc(struct __sk_buff *skb)    { return body(skb, M6_TC); }
 *
 * so that after inlining clang folds every `hook ==` away and each program holds only
 * its own hook's code (a helper the other hook has would not pass the verifier).
 *
 * Every call that may move packet data (pull, open/close room, set_len) voids every
 * packet pointer: re-derive them from m6_data()/m6_data_end() and bounds-check again.
 */
#ifndef M6_LIB_CTX_H
#define M6_LIB_CTX_H

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include "parse.h"

enum m6_hook {
	M6_XDP, /* struct xdp_md: a linear frame; room at the head with bpf_xdp_adjust_head */
	M6_TC,  /* struct __sk_buff (cls_bpf, direct action): maybe GSO, maybe with headers in
	         * page fragments; room with bpf_skb_adjust_room at the MAC layer */
};

#define M6_XDP_MD(ctx) ((struct xdp_md *)(ctx))
#define M6_SKB(ctx)    ((struct __sk_buff *)(ctx))

#define ENOTSUPP_ 524 /* kernel-internal errno: bpf_skb_adjust_room cannot handle this GSO type */
#define EALREADY_ 114 /* bpf_skb_adjust_room: the skb is already marked as encapsulated */

/* Linux 6.3 flag; the UAPI headers of Debian 12 (6.1) do not have it. A kernel that does
 * not know it refuses the call before touching the packet. */
#ifndef MIP6_ADJ_ROOM_DECAP_L3_IPV6
#define MIP6_ADJ_ROOM_DECAP_L3_IPV6 (1ULL << 8) /* BPF_F_ADJ_ROOM_DECAP_L3_IPV6 */
#endif

/* ---- time ---- */

/* CLOCK_MONOTONIC at the kernel's tick (a few ms behind the exact clock): what per-packet
 * checks measured in seconds need (binding lifetimes, next-hop age). bpf_ktime_get_ns() costs
 * about 50 ns a call in a VM (the clock source is read); this one reads a variable. */
static __always_inline __u64 m6_now_coarse(void)
{
	return bpf_ktime_get_coarse_ns();
}

/* ---- verdicts ---- */

/* TC passes with TC_ACT_UNSPEC, not TC_ACT_OK: a packet that is not ours goes on to the next
 * filter of the hook (another mip6 daemon's on the same interface, as `mip6 ha` and `mip6 lma`
 * co-located, RFC 6612; or anyone else's), then to the stack. verdict.h keeps verdicts in 8
 * bits, where M6_TC_NEXT stands for it; m6_exit turns it back into TC_ACT_UNSPEC. */
#define M6_TC_NEXT 0xff

static __always_inline int m6_act_pass(const enum m6_hook hook)
{
	return hook == M6_XDP ? XDP_PASS : M6_TC_NEXT;
}

static __always_inline int m6_act_drop(const enum m6_hook hook)
{
	return hook == M6_XDP ? XDP_DROP : TC_ACT_SHOT;
}

/* Out of the interface the packet arrived on: XDP_TX, or a redirect to the arrival
 * device's egress (at clsact ingress skb->ifindex is that device). */
static __always_inline int m6_tx(void *ctx, const enum m6_hook hook)
{
	return hook == M6_XDP ? XDP_TX : (int)bpf_redirect(M6_SKB(ctx)->ifindex, 0);
}

/* XDP_REDIRECT / TC_ACT_REDIRECT (or the hook's error verdict for bad flags). */
static __always_inline int m6_redirect(void *ctx, const enum m6_hook hook, __u32 ifindex, __u64 flags)
{
	return (int)bpf_redirect(ifindex, flags);
}

/* ---- the packet ---- */

static __always_inline void *m6_data(void *ctx, const enum m6_hook hook)
{
	return hook == M6_XDP ? (void *)(long)M6_XDP_MD(ctx)->data : (void *)(long)M6_SKB(ctx)->data;
}

static __always_inline void *m6_data_end(void *ctx, const enum m6_hook hook)
{
	return hook == M6_XDP ? (void *)(long)M6_XDP_MD(ctx)->data_end : (void *)(long)M6_SKB(ctx)->data_end;
}

/* The interface the packet arrived on (TC ingress: skb->ifindex, also what
 * BPF_PROG_TEST_RUN sets); on TC egress the one it leaves by. */
static __always_inline __u32 m6_ifindex(void *ctx, const enum m6_hook hook)
{
	return hook == M6_XDP ? M6_XDP_MD(ctx)->ingress_ifindex : M6_SKB(ctx)->ifindex;
}

/* Frame length; an skb may have more than its linear area. */
static __always_inline __u32 m6_len(void *ctx, const enum m6_hook hook)
{
	if (hook == M6_XDP)
		return M6_XDP_MD(ctx)->data_end - M6_XDP_MD(ctx)->data;
	return M6_SKB(ctx)->len;
}

/* Make the first min(want, len) bytes directly readable. 1 when it tried (re-derive
 * pointers whether it worked or not: the bounds checks find out what is readable),
 * 0 when they already were (always in XDP: the frame is linear). */
static __always_inline int m6_pull(void *ctx, const enum m6_hook hook, __u32 want)
{
	if (hook == M6_XDP)
		return 0;
	struct __sk_buff *skb = ctx;
	__u32 linear = skb->data_end - skb->data;
	if (linear >= want || linear >= skb->len)
		return 0;
	bpf_skb_pull_data(skb, skb->len < want ? skb->len : want);
	return 1;
}

static __always_inline long m6_load_bytes(void *ctx, const enum m6_hook hook, __u32 off, void *to, __u32 len)
{
	if (hook == M6_XDP)
		return bpf_xdp_load_bytes(ctx, off, to, len);
	return bpf_skb_load_bytes(ctx, off, to, len);
}

/* n bytes of room after the Ethernet header, which stays in front; 0 or -errno. TC:
 * `flags` for bpf_skb_adjust_room (BPF_F_ADJ_ROOM_ENCAP_L3_IPV6...); the room itself is
 * linear (it came out of the headroom). */
static __always_inline int m6_open_room(void *ctx, const enum m6_hook hook, __u32 n, __u64 flags)
{
	if (hook == M6_XDP) {
		struct xdp_md *xdp = ctx;
		if (bpf_xdp_adjust_head(xdp, -(int)n))
			return -1;
		void *data = (void *)(long)xdp->data;
		void *data_end = (void *)(long)xdp->data_end;
		struct ethhdr *eth = data;
		struct ethhdr *old_eth = data + n;
		if ((void *)(old_eth + 1) > data_end)
			return -1;
		__builtin_memcpy(eth, old_eth, sizeof(*eth)); /* no overlap: n >= 14 at every caller */
		return 0;
	}
	struct __sk_buff *skb = ctx;
	long rc = bpf_skb_adjust_room(skb, (__s32)n, BPF_ADJ_ROOM_MAC, flags);
	/* Encapsulation marks only matter for GSO; a plain packet already marked (it came
	 * out of someone's tunnel) gets its room without them. */
	if (rc == -EALREADY_ && !skb->gso_size)
		rc = bpf_skb_adjust_room(skb, (__s32)n, BPF_ADJ_ROOM_MAC, 0);
	return rc;
}

/*
 * Remove n bytes after the Ethernet header, which stays in front; 0 or -1.
 * TC, FIXED_GSO: a GSO skb from a tunnel keeps its segment size, so every inner segment is
 * n bytes shorter than the tunnel packet it came in (what the kernel's own ip6_tunnel does).
 * Up to Linux 6.18 bpf_skb_adjust_room leaves the skb's tunnel GSO marks (SKB_GSO_IPXIP6,
 * skb->encapsulation) behind on decapsulation; software GSO segments such an skb correctly
 * (the inner offsets are now the outer ones). DECAP_L3_IPV6 where the kernel has it (it
 * may also drop the tunnel GSO marks), else without.
 */
static __always_inline int m6_close_room(void *ctx, const enum m6_hook hook, __u32 n)
{
	if (hook == M6_XDP) {
		struct xdp_md *xdp = ctx;
		struct ethhdr eth_copy;
		struct ethhdr *eth = (void *)(long)xdp->data;
		if ((void *)(eth + 1) > (void *)(long)xdp->data_end)
			return -1;
		__builtin_memcpy(&eth_copy, eth, sizeof(eth_copy));
		if (bpf_xdp_adjust_head(xdp, (int)n))
			return -1;
		eth = (void *)(long)xdp->data;
		if ((void *)(eth + 1) > (void *)(long)xdp->data_end)
			return -1;
		__builtin_memcpy(eth, &eth_copy, sizeof(*eth));
		return 0;
	}
	if (!bpf_skb_adjust_room(ctx, -(__s32)n, BPF_ADJ_ROOM_MAC, BPF_F_ADJ_ROOM_FIXED_GSO | MIP6_ADJ_ROOM_DECAP_L3_IPV6))
		return 0;
	return bpf_skb_adjust_room(ctx, -(__s32)n, BPF_ADJ_ROOM_MAC, BPF_F_ADJ_ROOM_FIXED_GSO) ? -1 : 0;
}

/* Trim or extend the frame to n bytes; 0 or -1. TC: bpf_skb_change_tail linearizes the
 * skb and resets GSO, fine for the packets we build (NA, Packet Too Big). */
static __always_inline int m6_set_len(void *ctx, const enum m6_hook hook, __u32 n)
{
	if (hook == M6_XDP) {
		int delta = (int)n - (int)m6_len(ctx, hook);
		return delta && bpf_xdp_adjust_tail(ctx, delta) ? -1 : 0;
	}
	if (n == M6_SKB(ctx)->len)
		return 0;
	return bpf_skb_change_tail(ctx, n, 0) ? -1 : 0;
}

/* ---- GSO ---- */

/* Segment payload size of a GSO skb; 0 when not GSO (always in XDP). */
static __always_inline __u32 m6_gso_size(void *ctx, const enum m6_hook hook)
{
	return hook == M6_XDP ? 0 : M6_SKB(ctx)->gso_size;
}

/* Packets this one stands for on the wire (the segments of a GSO skb). */
static __always_inline __u32 m6_segs(void *ctx, const enum m6_hook hook)
{
	if (hook == M6_XDP)
		return 1;
	__u32 segs = M6_SKB(ctx)->gso_segs;
	return segs ? segs : 1;
}

/* One segment of the IPv6 packet at `off` (total length `len`): IPv6 + TCP/UDP header +
 * gso_size; the packet itself when not GSO; 0 when we cannot tell. gso_type is not visible
 * to BPF, so the next header tells TCP from UDP (extension headers: 0). */
static __always_inline __u32 m6_seg_len(void *ctx, const enum m6_hook hook, __u32 off, __u8 nexthdr, __u32 len)
{
	__u32 gso = m6_gso_size(ctx, hook);
	if (!gso)
		return len;
	__u32 l4;
	if (nexthdr == IPPROTO_TCP_) {
		__u8 doff;
		if (bpf_skb_load_bytes(ctx, off + IPV6_HLEN + 12, &doff, 1) < 0)
			return 0;
		l4 = (__u32)(doff >> 4) * 4;
	} else if (nexthdr == IPPROTO_UDP_) {
		l4 = 8;
	} else {
		return 0;
	}
	__u32 seg = IPV6_HLEN + l4 + gso;
	return seg < len ? seg : len;
}

/* ---- checksum state ---- */

/* Bytes at `to` replaced `from` (either may be 0 bytes long): keep a CHECKSUM_COMPLETE
 * skb's sum right (bpf_csum_update is a no-op for other skbs). XDP has no such state and
 * computes nothing. */
static __always_inline void m6_csum_replaced(void *ctx, const enum m6_hook hook, __be32 *from, __u32 from_size,
					     __be32 *to, __u32 to_size)
{
	if (hook == M6_TC)
		bpf_csum_update(ctx, (__u32)bpf_csum_diff(from, from_size, to, to_size, 0));
}

#endif /* M6_LIB_CTX_H */
