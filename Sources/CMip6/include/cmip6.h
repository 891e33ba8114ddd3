/* The C shim: what Swift cannot import by itself (LIBBPF_OPTS structs, the
 * variadic libbpf print hook, X-macro tables), every symbol prefixed cmip6_. */
#ifndef CMIP6_H
#define CMIP6_H

#include <stddef.h>
#include <bpf/libbpf.h>
#include <bpf/bpf.h>
#include <linux/if_link.h>
#include <linux/if_packet.h>
#include <linux/if_ether.h>
#include <sys/vfs.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include "mip6_shared.h"

/* Printable name of a counter index (enum mip6_counter), NULL past the end. */
const char *cmip6_counter_name(unsigned idx);

/* libbpf's own messages routed to the caller (level: 0 warn, 1 info, 2 debug). */
typedef void (*cmip6_log_fn)(int level, const char *msg);
void cmip6_set_libbpf_logger(cmip6_log_fn fn);

/* bpf_object__open_mem with an object name; NULL + errno on failure. */
struct bpf_object *cmip6_object_open_mem(const void *buf, size_t size, const char *name);

/* bpf_link_create(prog, ifindex, BPF_XDP) with XDP_FLAGS_* (mode). Returns fd or -errno. */
int cmip6_xdp_link_create(int prog_fd, int ifindex, unsigned int flags);

/* bpf_prog_test_run_opts for XDP: `ingress_ifindex` goes in the xdp_md context (0: none).
 * flags may hold BPF_F_TEST_XDP_LIVE_FRAMES. Returns 0 or -errno. */
int cmip6_xdp_test_run(int prog_fd, const void *data_in, unsigned int size_in,
		       void *data_out, unsigned int *size_out, unsigned int repeat,
		       unsigned int ingress_ifindex, unsigned int flags, unsigned int batch_size,
		       unsigned int *retval, unsigned int *duration_ns);

/* The XDP program attached to ifindex in the given mode (XDP_FLAGS_*), 0 if none. */
int cmip6_xdp_query_id(int ifindex, unsigned int flags, unsigned int *prog_id);

/* Pins the calling thread to one CPU (sched_setaffinity with CPU_SET, macros Swift cannot
 * import). Returns 0 or -errno. */
int cmip6_pin_to_cpu(int cpu);

/* setns(2), which Swift's Glibc module does not export. Returns 0 or -errno. */
int cmip6_setns(int fd, int nstype);

/* ---- mobile node (bpf/mip6_mn.bpf.c): TC attach and skb test runs ---- */

/* Printable name of a mobile-node counter index (enum mip6_mn_counter), NULL past the end. */
const char *cmip6_mn_counter_name(unsigned idx);

/* Printable names of the LMA's and the MAG's counter indexes (enum mip6_lma_counter,
 * enum mip6_mag_counter), NULL past the end. */
const char *cmip6_lma_counter_name(unsigned idx);
const char *cmip6_mag_counter_name(unsigned idx);

/* bpf_tc_hook_create for the clsact qdisc of ifindex. Returns 0, -EEXIST when a
 * clsact qdisc is already there, or another -errno. */
int cmip6_tc_hook_create(int ifindex);

/* bpf_tc_hook_destroy with BPF_TC_INGRESS | BPF_TC_EGRESS: deletes the clsact qdisc
 * and every filter on it. Returns 0 or -errno. */
int cmip6_tc_hook_destroy(int ifindex);

/* bpf_tc_attach of a cls_bpf direct-action filter at attach_point (BPF_TC_INGRESS or
 * BPF_TC_EGRESS) with the given handle and priority; flags may hold BPF_TC_F_REPLACE.
 * Returns 0 (prog_id set) or -errno. */
int cmip6_tc_attach(int ifindex, unsigned int attach_point, int prog_fd, unsigned int handle,
		    unsigned int priority, unsigned int flags, unsigned int *prog_id);

/* bpf_tc_detach of the filter with this handle and priority. Returns 0 or -errno. */
int cmip6_tc_detach(int ifindex, unsigned int attach_point, unsigned int handle, unsigned int priority);

/* bpf_tc_query: the program id of the filter with this handle and priority. Returns 0 or -errno (-ENOENT: none). */
int cmip6_tc_query(int ifindex, unsigned int attach_point, unsigned int handle, unsigned int priority,
		   unsigned int *prog_id);

/* bpf_prog_test_run_opts for a TC (sched_cls) program on an Ethernet frame; `ifindex`
 * goes in the __sk_buff context (the device the skb is on; 0: loopback). gso_size and
 * gso_segs go there too (taken from ctx_in since 5.11; gso_type cannot be set, so a GSO
 * skb is of no known type); *gso_segs_out (if not NULL) gets gso_segs after the run (the
 * kernel copies gso_segs back, not gso_size). Returns 0 or -errno. */
int cmip6_skb_test_run(int prog_fd, const void *data_in, unsigned int size_in,
		       void *data_out, unsigned int *size_out, unsigned int repeat, unsigned int ifindex,
		       unsigned int gso_size, unsigned int gso_segs, unsigned int *gso_segs_out,
		       unsigned int *retval, unsigned int *duration_ns);

/* One sendmmsg(2) for `n` whole IPv6 packets on a raw IPPROTO_RAW socket, each to the
 * address at bytes 24..39 of its own header (the destination). Retries EINTR; returns
 * how many were sent (a packet that fails is skipped and its errno stored in errs[i])
 * or -errno when nothing could be tried. */
int cmip6_send_ipv6_batch(int fd, const void *const *packets, const unsigned int *lens, unsigned int n, int *errs);

/* ---- the tunnel socket (raw IPv6, next header 41): fragmented tunnel packets, RFC 2473 §7.1 ---- */

/* One recvmsg(2) (MSG_DONTWAIT) on a raw IPv6 socket with IPV6_RECVPKTINFO: the payload (the
 * inner packet of a tunnel packet the kernel reassembled) into buf, the outer source into src
 * and the outer destination (IPV6_PKTINFO; :: when absent) into dst. Returns the payload's
 * length (more than cap when it was cut: MSG_TRUNC) or -errno (-EAGAIN: nothing queued). */
int cmip6_recv_tunnel(int fd, void *buf, unsigned int cap, unsigned char src[16], unsigned char dst[16]);

/* An ICMPv6 error the kernel queued on a socket with IPV6_RECVERR (about a packet sent from
 * the socket's address with its protocol), from struct sock_extended_err. */
struct cmip6_tunnel_error {
	unsigned char destination[16]; /* the destination of the packet the error is about */
	unsigned char offender[16];    /* the node that sent the error (:: when unknown) */
	unsigned int info;             /* ee_info: the MTU of a Packet Too Big */
	unsigned int err;              /* ee_errno (EMSGSIZE for a Packet Too Big) */
	unsigned char origin;          /* SO_EE_ORIGIN_ICMP6 (3) for an ICMPv6 error */
	unsigned char type;            /* ICMPv6 type (2: Packet Too Big) */
	unsigned char code;
	unsigned char _pad;
};

/* One recvmsg(2) of the error queue (MSG_ERRQUEUE | MSG_DONTWAIT). Returns 0 or -errno
 * (-EAGAIN: the queue is empty). */
int cmip6_recv_tunnel_error(int fd, struct cmip6_tunnel_error *out);


#endif
