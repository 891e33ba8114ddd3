/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The home agent's maps (layouts and capacities in mip6_shared.h; the control plane owns
 * every one but the counters, and opens them by these names). Included once per object:
 * by mip6_ha.bpf.c, and by mip6_bench.bpf.c through ha.h. */
#ifndef M6_HA_MAPS_H
#define M6_HA_MAPS_H

#include <bpf/bpf_helpers.h>
#include "mip6_shared.h"

/* Binding cache: home address -> care-of address; resized by the loader from --max-bindings. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MIP6_MAX_BINDINGS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct mip6_binding_key);
	__type(value, struct mip6_binding);
} mip6_bindings SEC(".maps");

/* RFC 6275 §10.3.1, L flag: a mobile node's link-local address -> its home address, for proxy
 * ND only; answered while that home address's binding lives and carries L (resized with the
 * bindings). Never consulted to tunnel: link-local packets are not forwarded (RFC 4291 §2.5.6). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MIP6_MAX_BINDINGS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct mip6_addr_key);
	__type(value, struct mip6_binding_key);
} mip6_ll_proxy SEC(".maps");

/* Per-binding traffic by mip6_binding.slot; atomic adds (a per-CPU array would need
 * capacity x CPUs x 32 bytes). Resized with mip6_bindings. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MIP6_MAX_BINDINGS);
	__type(key, __u32);
	__type(value, struct mip6_binding_stats);
} mip6_bind_stats SEC(".maps");

/* The next hop of each binding's care-of address by slot (the FIB's answer, cached). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MIP6_MAX_BINDINGS);
	__type(key, __u32);
	__type(value, struct mip6_slot_nexthop);
} mip6_slot_nh SEC(".maps");

/* Per-CPU counters, indexed by enum mip6_counter (names: MIP6_COUNTERS). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MIP6_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} mip6_counters SEC(".maps");

/* The configuration: addresses, flags, rate limits, next-hop generation (array of one). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mip6_config);
} mip6_config SEC(".maps");

/* The interfaces we are attached to: ifindex -> MTU, MAC, attach mode. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MIP6_MAX_IFACES);
	__type(key, __u32);
	__type(value, struct mip6_iface);
} mip6_ifaces SEC(".maps");

/* Our addresses besides the home agent address: Mobility Headers to them are punted. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MIP6_MAX_LOCAL_ADDRS);
	__type(key, struct mip6_addr_key);
	__type(value, __u32);
} mip6_locals SEC(".maps");

/* Signaling (and NA copies during DAD, packets for a fragmented tunnel) to the control plane:
 * struct mip6_punt_record. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, MIP6_PUNT_RING_BYTES);
} mip6_punt SEC(".maps");

/* The global signaling token bucket (array of one, spin-locked). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mip6_token_bucket);
} mip6_punt_tb SEC(".maps");

/* The ICMPv6 errors this program originates (Packet Too Big, Parameter Problem), all sources, all CPUs. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mip6_token_bucket);
} mip6_icmp_tb SEC(".maps");

/* The packets punted for a fragmented tunnel (RFC 2473 §7.1(b)), all sources, all CPUs. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mip6_token_bucket);
} mip6_frag_tb SEC(".maps");

/* Signaling token buckets per source /64 (LRU, per CPU: LRU maps cannot hold a spin lock). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, MIP6_MAX_SRC_BUCKETS);
	__type(key, __u64);
	__type(value, struct mip6_rate_state);
} mip6_src_tb SEC(".maps");

/* Next-hop cache in front of bpf_fib_lookup for the decapsulated packets' destinations:
 * destination -> egress, MACs, generation. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MIP6_MAX_NEXTHOPS);
	__type(key, struct mip6_addr_key);
	__type(value, struct mip6_nexthop);
} mip6_nexthop SEC(".maps");

#endif /* M6_HA_MAPS_H */
