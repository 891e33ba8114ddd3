/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * RFC 2473 §6.3/§7, RFC 4443 §3.2: an IPv6 packet does not fit a tunnel. Turn its frame
 * into an ICMPv6 Packet Too Big for its sender, quoting the first M6_PTB_QUOTE bytes so
 * the ICMPv6 packet stays within 1280. The offending packet is always longer than that:
 * a tunnel MTU is at least 1280 - 40 = 1240.
 *
 * The Ethernet addresses are swapped, so the frame goes back where it came from: the
 * caller sends it (the home agent out of the arrival interface; the mobile node, whose
 * own stack sent the packet, into its ingress, where it is addressed to our MAC).
 * (TC: an skb whose checksum the sender left to offload, CHECKSUM_PARTIAL, keeps that
 * state; only a veth peer's own packets are like that, and the peer trusts it.)
 */
#ifndef M6_LIB_PTB_H
#define M6_LIB_PTB_H

#include "ctx.h"

#ifndef M6_PTB_QUOTE
#define M6_PTB_QUOTE 1232
#endif
#define M6_PTB_ICMP_LEN  (8 + M6_PTB_QUOTE)
#define M6_PTB_FRAME_LEN (ETH_HLEN_ + IPV6_HLEN + M6_PTB_ICMP_LEN)

#define M6_PTB_NOT_TOO_BIG (-1) /* shorter than a quote: nothing done, the frame is untouched */
#define M6_PTB_FAILED      (-2) /* the kernel refused to resize it: drop */

/* `src`: the address the error comes from; `mtu`: the one to announce. 0 when the frame
 * is the Packet Too Big. */
static __always_inline int m6_packet_too_big(void *ctx, const enum m6_hook hook, const __u8 *src, __u32 mtu)
{
	void *data = m6_data(ctx, hook);
	void *data_end = m6_data_end(ctx, hook);
	struct ethhdr *eth = data;
	struct ipv6hdr *orig = data + sizeof(*eth);
	if ((void *)(orig + 1) > data_end || m6_len(ctx, hook) < ETH_HLEN_ + M6_PTB_QUOTE)
		return M6_PTB_NOT_TOO_BIG;
	__u8 old_src_mac[ETH_ALEN], old_dst_mac[ETH_ALEN];
	M6_ADDR(saddr);
	M6_ADDR(daddr);
	mac_copy(old_src_mac, eth->h_source);
	mac_copy(old_dst_mac, eth->h_dest);
	addr_copy(saddr, src);
	addr_copy(daddr, orig->saddr.s6_addr);

	/* Trim to Ethernet + quote, then make room for the IPv6 + ICMPv6 headers. */
	if (m6_set_len(ctx, hook, ETH_HLEN_ + M6_PTB_QUOTE) || m6_open_room(ctx, hook, IPV6_HLEN + 8, 0))
		return M6_PTB_FAILED;
	m6_pull(ctx, hook, M6_PTB_FRAME_LEN);

	/* Reload: the helpers above invalidate every packet pointer. */
	data = m6_data(ctx, hook);
	data_end = m6_data_end(ctx, hook);
	if (data + M6_PTB_FRAME_LEN > data_end)
		return M6_PTB_FAILED;
	eth = data;
	struct ipv6hdr *ip6 = data + sizeof(*eth);
	__u8 *icmp = (void *)(ip6 + 1);

	mac_copy(eth->h_dest, old_src_mac);
	mac_copy(eth->h_source, old_dst_mac);
	eth->h_proto = bpf_htons(ETH_P_IPV6);
	ipv6_write(ip6, bpf_htonl(0x60000000), M6_PTB_ICMP_LEN, IPPROTO_ICMPV6_, 64, saddr, daddr);
	icmp[0] = ICMPV6_PKT_TOOBIG_;
	icmp[1] = 0;
	*(__u16 *)(icmp + 2) = 0;
	*(__u32 *)(icmp + 4) = bpf_htonl(mtu);

	/* Pseudo-header + ICMPv6 message, in bpf_csum_diff's 512-byte steps. */
	__s64 s = icmp6_pseudo_sum(ip6, M6_PTB_ICMP_LEN);
	if (s < 0)
		return M6_PTB_FAILED;
	__u64 sum = s;
	s = bpf_csum_diff(0, 0, (void *)icmp, 512, 0);
	if (s < 0)
		return M6_PTB_FAILED;
	sum += s;
	s = bpf_csum_diff(0, 0, (void *)icmp + 512, 512, 0);
	if (s < 0)
		return M6_PTB_FAILED;
	sum += s;
	s = bpf_csum_diff(0, 0, (void *)icmp + 1024, M6_PTB_ICMP_LEN - 1024, 0);
	if (s < 0)
		return M6_PTB_FAILED;
	sum += s;
	*(__u16 *)(icmp + 2) = csum_fold(sum);
	return 0;
}

#endif /* M6_LIB_PTB_H */
