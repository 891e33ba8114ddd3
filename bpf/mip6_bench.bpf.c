// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Programs for perf/: the home-agent program (XDP and TC) wrapped so BPF_PROG_TEST_RUN
 * can repeat it, and the baselines it is measured against in the same run.
 *
 * With repeat > 1, BPF_PROG_TEST_RUN hands the program the buffer the previous run
 * rewrote, so an encapsulating program would see its own output from the second run
 * on. mip6_bench_ha saves the frame's first bytes, runs the real program, and puts
 * the frame back; mip6_bench_restore_only measures that wrapper alone.
 */
#include "ha.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define SNAP 160 /* covers Ethernet + outer + inner IPv6 + ICMPv6 header of every fixture */

struct snapshot {
	__u8 bytes[SNAP];
	__u32 n;    /* bytes saved */
	__u32 len0; /* frame length before the program ran */
};

static __always_inline int save(struct xdp_md *ctx, struct snapshot *s)
{
	s->len0 = bpf_xdp_get_buff_len(ctx); /* a scalar: no pointer arithmetic in 32 bits */
	__u32 n = s->len0 < SNAP ? s->len0 : SNAP;
	barrier_var(n);
	if (n < 14 || n > SNAP || bpf_xdp_load_bytes(ctx, 0, s->bytes, n))
		return -1;
	s->n = n;
	return 0;
}

/* Undo a length change at the head (encapsulation, decapsulation) and the rewritten bytes. */
static __always_inline int restore(struct xdp_md *ctx, struct snapshot *s)
{
	int delta = (int)bpf_xdp_get_buff_len(ctx) - (int)s->len0;
	if (delta && bpf_xdp_adjust_head(ctx, delta))
		return -1;
	__u32 n = s->n;
	barrier_var(n);
	if (n < 14 || n > SNAP || bpf_xdp_store_bytes(ctx, 0, s->bytes, n))
		return -1;
	return 0;
}

SEC("xdp")
int mip6_bench_ha(struct xdp_md *ctx)
{
	struct snapshot s;
	if (save(ctx, &s))
		return XDP_ABORTED;
	int r = ha_process(ctx, M6_XDP);
	return restore(ctx, &s) ? XDP_ABORTED : r;
}

/* The save/restore wrapper around nothing: its cost is inside mip6_bench_ha's figures. */
SEC("xdp")
int mip6_bench_restore_only(struct xdp_md *ctx)
{
	struct snapshot s;
	if (save(ctx, &s) || restore(ctx, &s))
		return XDP_ABORTED;
	return XDP_PASS;
}

/* The floor: hand every frame to the kernel. */
SEC("xdp")
int mip6_bench_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

/* Parse Ethernet + IPv6, swap the MACs and send the frame back: the least a forwarder does. */
SEC("xdp")
int mip6_bench_tx(struct xdp_md *ctx)
{
	struct cursor c = { .pos = (void *)(long)ctx->data, .end = (void *)(long)ctx->data_end };
	struct ethhdr *eth = parse_ethhdr(&c);
	if (!eth || eth->h_proto != bpf_htons(ETH_P_IPV6))
		return XDP_PASS;
	struct ipv6hdr *ip6 = parse_ipv6hdr(&c);
	if (!ip6)
		return XDP_DROP;
	__u8 tmp[ETH_ALEN];
	mac_copy(tmp, eth->h_dest);
	mac_copy(eth->h_dest, eth->h_source);
	mac_copy(eth->h_source, tmp);
	return XDP_TX;
}

/* ---- the same for the TC program (mip6_ha_tc) on skbs ----
 * BPF_PROG_TEST_RUN of a sched_cls program runs the same skb `repeat` times, so the
 * wrapper undoes the program's work as the XDP one does: the first bytes come back with
 * bpf_skb_store_bytes, a length change at the head is reverted with the inverse
 * bpf_skb_adjust_room (-40 after an encapsulation, +40 after a decapsulation), the
 * counterpart of the XDP wrapper's bpf_xdp_adjust_head. Its cost is measured alone as
 * mip6_bench_restore_only_tc and included in the TC rows, as in the XDP ones. */
static __always_inline int save_tc(struct __sk_buff *skb, struct snapshot *s)
{
	s->len0 = skb->len;
	__u32 n = s->len0 < SNAP ? s->len0 : SNAP;
	barrier_var(n);
	if (n < 14 || n > SNAP || bpf_skb_load_bytes(skb, 0, s->bytes, n))
		return -1;
	s->n = n;
	return 0;
}

static __always_inline int restore_tc(struct __sk_buff *skb, struct snapshot *s)
{
	int delta = (int)skb->len - (int)s->len0;
	if (delta && bpf_skb_adjust_room(skb, -delta, BPF_ADJ_ROOM_MAC, 0))
		return -1;
	__u32 n = s->n;
	barrier_var(n);
	if (n < 14 || n > SNAP || bpf_skb_store_bytes(skb, 0, s->bytes, n, 0))
		return -1;
	return 0;
}

SEC("tc")
int mip6_bench_ha_tc(struct __sk_buff *skb)
{
	struct snapshot s;
	if (save_tc(skb, &s))
		return TC_ACT_SHOT;
	int r = ha_process(skb, M6_TC);
	return restore_tc(skb, &s) ? TC_ACT_SHOT : r;
}

SEC("tc")
int mip6_bench_restore_only_tc(struct __sk_buff *skb)
{
	struct snapshot s;
	if (save_tc(skb, &s) || restore_tc(skb, &s))
		return TC_ACT_SHOT;
	return TC_ACT_OK;
}

/* The TC floor: hand every skb to the kernel. */
SEC("tc")
int mip6_bench_pass_tc(struct __sk_buff *skb)
{
	return TC_ACT_OK;
}

/* Parse Ethernet + IPv6, swap the MACs, redirect to the arrival device's egress. */
SEC("tc")
int mip6_bench_tx_tc(struct __sk_buff *skb)
{
	struct cursor c = { .pos = (void *)(long)skb->data, .end = (void *)(long)skb->data_end };
	struct ethhdr *eth = parse_ethhdr(&c);
	if (!eth || eth->h_proto != bpf_htons(ETH_P_IPV6))
		return TC_ACT_OK;
	struct ipv6hdr *ip6 = parse_ipv6hdr(&c);
	if (!ip6)
		return TC_ACT_SHOT;
	__u8 tmp[ETH_ALEN];
	mac_copy(tmp, eth->h_dest);
	mac_copy(eth->h_dest, eth->h_source);
	mac_copy(eth->h_source, tmp);
	return bpf_redirect(skb->ifindex, 0);
}

/* ---- packet generator (mip6 bench gen) ----
 * Run with BPF_PROG_RUN + BPF_F_TEST_XDP_LIVE_FRAMES: every frame is redirected out of
 * gen_cfg.ifindex into the home agent's interface. Pages come back from the home agent
 * rewritten (it encapsulated them in place), so the headers are restored from the
 * template before every send. */
#define GEN_HEAD MIP6_GEN_HEAD

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mip6_gen_cfg);
} mip6_gen_cfg SEC(".maps");

/* [0] frames seen by the sink, [1] of them IPv6-in-IPv6, [2] bytes */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, __u64);
} mip6_gen_count SEC(".maps");

SEC("xdp")
int mip6_gen(struct xdp_md *ctx)
{
	__u32 zero = 0;
	struct mip6_gen_cfg *g = bpf_map_lookup_elem(&mip6_gen_cfg, &zero);
	if (!g)
		return XDP_ABORTED;
	__u32 n = bpf_xdp_get_buff_len(ctx);
	if (n > GEN_HEAD)
		n = GEN_HEAD;
	barrier_var(n);
	if (n < 14 || n > GEN_HEAD || bpf_xdp_store_bytes(ctx, 0, g->head, n))
		return XDP_ABORTED;
	return bpf_redirect(g->ifindex, 0);
}

static __always_inline void gen_count(__u32 idx, __u64 v)
{
	__u64 *c = bpf_map_lookup_elem(&mip6_gen_count, &idx);
	if (c)
		*c += v;
}

/* On the interface the home agent sends back out of: count what came back, drop it. */
SEC("xdp")
int mip6_gen_sink(struct xdp_md *ctx)
{
	struct cursor c = { .pos = (void *)(long)ctx->data, .end = (void *)(long)ctx->data_end };
	struct ethhdr *eth = parse_ethhdr(&c);
	if (!eth || eth->h_proto != bpf_htons(ETH_P_IPV6))
		return XDP_PASS;
	struct ipv6hdr *ip6 = parse_ipv6hdr(&c);
	if (!ip6)
		return XDP_PASS;
	gen_count(0, 1);
	gen_count(2, bpf_xdp_get_buff_len(ctx));
	if (ip6->nexthdr == IPPROTO_IPV6_) {
		gen_count(1, 1);
		return XDP_DROP;
	}
	/* The bounce baseline sends our own frames back unchanged: count and drop them too. */
	if (ip6->nexthdr == 17)
		return XDP_DROP;
	return XDP_PASS; /* ND and everything else keeps the testbed working */
}
