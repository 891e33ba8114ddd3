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
#include "mip6_bench.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/*
 * The _tc programs do the same on skbs: BPF_PROG_TEST_RUN of a sched_cls program runs
 * the same skb `repeat` times, so the wrapper undoes the program's work as the XDP one
 * does: the first bytes come back with bpf_skb_store_bytes, a length change at the head is
 * reverted with the inverse bpf_skb_adjust_room (-40 after an encapsulation, +40 after a
 * decapsulation), the counterpart of the XDP wrapper's bpf_xdp_adjust_head. Its cost is
 * measured alone as mip6_bench_restore_only_tc and included in the TC rows, as in the XDP
 * ones. Each wrapper is written once over the context layer (lib/ctx.h).
 */
#define SNAP 160 /* covers Ethernet + outer + inner IPv6 + ICMPv6 header of every fixture */

struct snapshot {
	__u8 bytes[SNAP];
	__u32 n;    /* bytes saved */
	__u32 len0; /* frame length before the program ran */
};

/* The whole frame's length, a scalar (no pointer arithmetic in 32 bits). */
static __always_inline __u32 frame_len(void *ctx, const enum m6_hook hook)
{
	return hook == M6_XDP ? (__u32)bpf_xdp_get_buff_len(ctx) : M6_SKB(ctx)->len;
}

/* The wrapper's own failure: XDP_ABORTED / TC_ACT_SHOT. */
static __always_inline int bench_abort(const enum m6_hook hook)
{
	return hook == M6_XDP ? XDP_ABORTED : TC_ACT_SHOT;
}

static __always_inline int save(void *ctx, const enum m6_hook hook, struct snapshot *s)
{
	s->len0 = frame_len(ctx, hook);
	__u32 n = s->len0 < SNAP ? s->len0 : SNAP;
	barrier_var(n);
	if (n < 14 || n > SNAP || m6_load_bytes(ctx, hook, 0, s->bytes, n))
		return -1;
	s->n = n;
	return 0;
}

/* Undo a length change at the head (encapsulation, decapsulation) and the rewritten bytes. */
static __always_inline int restore(void *ctx, const enum m6_hook hook, struct snapshot *s)
{
	int delta = (int)frame_len(ctx, hook) - (int)s->len0;
	if (delta && (hook == M6_XDP ? bpf_xdp_adjust_head(ctx, delta)
				     : bpf_skb_adjust_room(ctx, -delta, BPF_ADJ_ROOM_MAC, 0)))
		return -1;
	__u32 n = s->n;
	barrier_var(n);
	if (n < 14 || n > SNAP)
		return -1;
	if (hook == M6_XDP)
		return bpf_xdp_store_bytes(ctx, 0, s->bytes, n) ? -1 : 0;
	return bpf_skb_store_bytes(ctx, 0, s->bytes, n, 0) ? -1 : 0;
}

/* The home-agent program between a save and a restore. */
static __always_inline int bench_ha(void *ctx, const enum m6_hook hook)
{
	struct snapshot s;
	if (save(ctx, hook, &s))
		return bench_abort(hook);
	int r = ha_process(ctx, hook);
	return restore(ctx, hook, &s) ? bench_abort(hook) : r;
}

/* The save/restore wrapper around nothing: its cost is inside mip6_bench_ha's figures. */
static __always_inline int bench_restore_only(void *ctx, const enum m6_hook hook)
{
	struct snapshot s;
	if (save(ctx, hook, &s) || restore(ctx, hook, &s))
		return bench_abort(hook);
	return hook == M6_XDP ? XDP_PASS : TC_ACT_OK; /* the floor it is measured against */
}

/* Parse Ethernet + IPv6, swap the MACs and send the frame back out of the arrival
 * interface: the least a forwarder does. */
static __always_inline int bench_tx(void *ctx, const enum m6_hook hook)
{
	struct cursor c = { .pos = m6_data(ctx, hook), .end = m6_data_end(ctx, hook) };
	struct ethhdr *eth = parse_ethhdr(&c);
	if (!eth || eth->h_proto != bpf_htons(ETH_P_IPV6))
		return m6_act_pass(hook);
	struct ipv6hdr *ip6 = parse_ipv6hdr(&c);
	if (!ip6)
		return m6_act_drop(hook);
	__u8 tmp[ETH_ALEN];
	mac_copy(tmp, eth->h_dest);
	mac_copy(eth->h_dest, eth->h_source);
	mac_copy(eth->h_source, tmp);
	return m6_tx(ctx, hook);
}

SEC("xdp")
int mip6_bench_ha(struct xdp_md *ctx)
{
	return bench_ha(ctx, M6_XDP);
}

/* The home-agent program without the wrapper, for one packet per BPF_PROG_TEST_RUN call
 * (repeat = 1: every call starts from the original frame). The same body as mip6_ha_xdp. */
SEC("xdp")
int mip6_bench_ha_direct(struct xdp_md *ctx)
{
	return ha_process(ctx, M6_XDP);
}

SEC("xdp")
int mip6_bench_restore_only(struct xdp_md *ctx)
{
	return bench_restore_only(ctx, M6_XDP);
}

/* The floor: hand every frame to the kernel. */
SEC("xdp")
int mip6_bench_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

SEC("xdp")
int mip6_bench_tx(struct xdp_md *ctx)
{
	return bench_tx(ctx, M6_XDP);
}

SEC("tc")
int mip6_bench_ha_tc(struct __sk_buff *skb)
{
	return bench_ha(skb, M6_TC);
}

SEC("tc")
int mip6_bench_restore_only_tc(struct __sk_buff *skb)
{
	return bench_restore_only(skb, M6_TC);
}

/* The TC floor: hand every skb to the kernel. */
SEC("tc")
int mip6_bench_pass_tc(struct __sk_buff *skb)
{
	return TC_ACT_OK;
}

/* The bounce redirects to the arrival device's egress. */
SEC("tc")
int mip6_bench_tx_tc(struct __sk_buff *skb)
{
	return bench_tx(skb, M6_TC);
}

/* ---- packet generator (mip6-bench gen) ----
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
