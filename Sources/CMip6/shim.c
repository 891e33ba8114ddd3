#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <sched.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <linux/errqueue.h>
#include "cmip6.h"

#define MIP6_COUNTER_STR(name, str) str,
static const char *const counter_names[] = { MIP6_COUNTERS(MIP6_COUNTER_STR) };
#undef MIP6_COUNTER_STR
_Static_assert(sizeof(counter_names) / sizeof(counter_names[0]) == MIP6_CNT_MAX, "one name per counter");

const char *cmip6_counter_name(unsigned idx)
{
	return idx < MIP6_CNT_MAX ? counter_names[idx] : NULL;
}

static cmip6_log_fn log_fn;

/* Set around the netlink calls whose failure is an answer, not a problem: a query of a hook
 * with no filter ("Cannot find specified filter chain"), creating a clsact that exists
 * ("Exclusivity flag on, cannot modify"). libbpf prints the kernel's message for those as a
 * warning; logged as one, every daemon start and every readiness probe looked broken. */
static __thread int expected_failure;

static int print_to_logger(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char buf[1024];
	if (!log_fn)
		return 0;
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	if (n > 0 && buf[(n < (int)sizeof(buf) ? n : (int)sizeof(buf) - 1) - 1] == '\n')
		buf[(n < (int)sizeof(buf) ? n : (int)sizeof(buf) - 1) - 1] = 0;
	if (level == LIBBPF_WARN && expected_failure && strstr(buf, "Kernel error message"))
		level = LIBBPF_DEBUG;
	log_fn(level == LIBBPF_WARN ? 0 : level == LIBBPF_INFO ? 1 : 2, buf);
	return n;
}

void cmip6_set_libbpf_logger(cmip6_log_fn fn)
{
	log_fn = fn;
	libbpf_set_print(fn ? print_to_logger : NULL);
}

struct bpf_object *cmip6_object_open_mem(const void *buf, size_t size, const char *name)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = name);
	return bpf_object__open_mem(buf, size, &opts);
}

int cmip6_xdp_link_create(int prog_fd, int ifindex, unsigned int flags)
{
	LIBBPF_OPTS(bpf_link_create_opts, opts, .flags = flags);
	int fd = bpf_link_create(prog_fd, ifindex, BPF_XDP, &opts);
	return fd < 0 ? -errno : fd;
}

int cmip6_xdp_test_run(int prog_fd, const void *data_in, unsigned int size_in,
		       void *data_out, unsigned int *size_out, unsigned int repeat,
		       unsigned int ingress_ifindex, unsigned int flags, unsigned int batch_size,
		       unsigned int *retval, unsigned int *duration_ns)
{
	struct xdp_md ctx = { .data_end = size_in, .ingress_ifindex = ingress_ifindex };
	LIBBPF_OPTS(bpf_test_run_opts, opts,
		.data_in = data_in, .data_size_in = size_in,
		.data_out = data_out, .data_size_out = size_out ? *size_out : 0,
		.ctx_in = ingress_ifindex ? &ctx : NULL,
		.ctx_size_in = ingress_ifindex ? sizeof(ctx) : 0,
		.repeat = repeat, .flags = flags, .batch_size = batch_size);
	int err = bpf_prog_test_run_opts(prog_fd, &opts);
	if (err < 0)
		return -errno;
	if (size_out)
		*size_out = opts.data_size_out;
	if (retval)
		*retval = opts.retval;
	if (duration_ns)
		*duration_ns = opts.duration;
	return 0;
}

int cmip6_xdp_query_id(int ifindex, unsigned int flags, unsigned int *prog_id)
{
	__u32 id = 0;
	int err = bpf_xdp_query_id(ifindex, (int)flags, &id);
	if (err < 0)
		return err;
	*prog_id = id;
	return 0;
}

int cmip6_setns(int fd, int nstype)
{
	return setns(fd, nstype) < 0 ? -errno : 0;
}

/* ---- mobile node: counters, TC attach, skb test runs ---- */

#define MIP6_MN_COUNTER_STR(name, str) str,
static const char *const mn_counter_names[] = { MIP6_MN_COUNTERS(MIP6_MN_COUNTER_STR) };
#undef MIP6_MN_COUNTER_STR
_Static_assert(sizeof(mn_counter_names) / sizeof(mn_counter_names[0]) == MIP6_MN_CNT_MAX, "one name per MN counter");

const char *cmip6_mn_counter_name(unsigned idx)
{
	return idx < MIP6_MN_CNT_MAX ? mn_counter_names[idx] : NULL;
}

/* ---- proxy mobility: counter names of the LMA and the MAG ---- */

#define MIP6_LMA_COUNTER_STR(name, str) str,
static const char *const lma_counter_names[] = { MIP6_LMA_COUNTERS(MIP6_LMA_COUNTER_STR) };
#undef MIP6_LMA_COUNTER_STR
_Static_assert(sizeof(lma_counter_names) / sizeof(lma_counter_names[0]) == MIP6_LMA_CNT_MAX, "one name per LMA counter");

const char *cmip6_lma_counter_name(unsigned idx)
{
	return idx < MIP6_LMA_CNT_MAX ? lma_counter_names[idx] : NULL;
}

#define MIP6_MAG_COUNTER_STR(name, str) str,
static const char *const mag_counter_names[] = { MIP6_MAG_COUNTERS(MIP6_MAG_COUNTER_STR) };
#undef MIP6_MAG_COUNTER_STR
_Static_assert(sizeof(mag_counter_names) / sizeof(mag_counter_names[0]) == MIP6_MAG_CNT_MAX, "one name per MAG counter");

const char *cmip6_mag_counter_name(unsigned idx)
{
	return idx < MIP6_MAG_CNT_MAX ? mag_counter_names[idx] : NULL;
}

int cmip6_tc_hook_create(int ifindex)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS);
	expected_failure = 1; /* EEXIST: the clsact is there already */
	int err = bpf_tc_hook_create(&hook);
	expected_failure = 0;
	return err < 0 ? err : 0;
}

int cmip6_tc_hook_destroy(int ifindex)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS);
	int err = bpf_tc_hook_destroy(&hook);
	return err < 0 ? err : 0;
}

int cmip6_tc_attach(int ifindex, unsigned int attach_point, int prog_fd, unsigned int handle,
		    unsigned int priority, unsigned int flags, unsigned int *prog_id)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = attach_point);
	LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = prog_fd, .flags = flags, .handle = handle, .priority = priority);
	int err = bpf_tc_attach(&hook, &opts);
	if (err < 0)
		return err;
	if (prog_id)
		*prog_id = opts.prog_id;
	return 0;
}

int cmip6_tc_detach(int ifindex, unsigned int attach_point, unsigned int handle, unsigned int priority)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = attach_point);
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = handle, .priority = priority);
	int err = bpf_tc_detach(&hook, &opts);
	return err < 0 ? err : 0;
}

int cmip6_tc_query(int ifindex, unsigned int attach_point, unsigned int handle, unsigned int priority,
		   unsigned int *prog_id)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = attach_point);
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = handle, .priority = priority);
	expected_failure = 1; /* ENOENT: no filter there */
	int err = bpf_tc_query(&hook, &opts);
	expected_failure = 0;
	if (err < 0)
		return err;
	if (prog_id)
		*prog_id = opts.prog_id;
	return 0;
}

int cmip6_pin_to_cpu(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof(set), &set) < 0 ? -errno : 0;
}

int cmip6_send_ipv6_batch(int fd, const void *const *packets, const unsigned int *lens, unsigned int n, int *errs)
{
	enum { CHUNK = 64 };
	struct mmsghdr msgs[CHUNK];
	struct iovec iov[CHUNK];
	struct sockaddr_in6 dst[CHUNK];
	unsigned int done = 0, sent = 0;

	while (done < n) {
		unsigned int k = n - done < CHUNK ? n - done : CHUNK;
		for (unsigned int i = 0; i < k; i++) {
			const unsigned char *p = packets[done + i];
			memset(&dst[i], 0, sizeof(dst[i]));
			dst[i].sin6_family = AF_INET6;
			if (lens[done + i] >= 40)
				memcpy(&dst[i].sin6_addr, p + 24, 16);
			iov[i].iov_base = (void *)p;
			iov[i].iov_len = lens[done + i];
			memset(&msgs[i], 0, sizeof(msgs[i]));
			msgs[i].msg_hdr.msg_name = &dst[i];
			msgs[i].msg_hdr.msg_namelen = sizeof(dst[i]);
			msgs[i].msg_hdr.msg_iov = &iov[i];
			msgs[i].msg_hdr.msg_iovlen = 1;
			errs[done + i] = 0;
		}
		int r = sendmmsg(fd, msgs, k, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			/* The first message failed: note it, go on with the next. */
			errs[done] = errno;
			done += 1;
			continue;
		}
		sent += (unsigned int)r;
		done += (unsigned int)(r > 0 ? r : 1);
	}
	return (int)sent;
}

int cmip6_skb_test_run(int prog_fd, const void *data_in, unsigned int size_in,
		       void *data_out, unsigned int *size_out, unsigned int repeat, unsigned int ifindex,
		       unsigned int gso_size, unsigned int gso_segs, unsigned int *gso_segs_out,
		       unsigned int *retval, unsigned int *duration_ns)
{
	struct __sk_buff ctx = { .ifindex = ifindex, .gso_size = gso_size, .gso_segs = gso_segs };
	struct __sk_buff ctx_out = { 0 };
	LIBBPF_OPTS(bpf_test_run_opts, opts,
		.data_in = data_in, .data_size_in = size_in,
		.data_out = data_out, .data_size_out = size_out ? *size_out : 0,
		.ctx_in = &ctx, .ctx_size_in = sizeof(ctx),
		.ctx_out = &ctx_out, .ctx_size_out = sizeof(ctx_out),
		.repeat = repeat);
	int err = bpf_prog_test_run_opts(prog_fd, &opts);
	if (err < 0)
		return -errno;
	if (size_out)
		*size_out = opts.data_size_out;
	if (gso_segs_out)
		*gso_segs_out = ctx_out.gso_segs;
	if (retval)
		*retval = opts.retval;
	if (duration_ns)
		*duration_ns = opts.duration;
	return 0;
}

int cmip6_recv_tunnel(int fd, void *buf, unsigned int cap, unsigned char src[16], unsigned char dst[16])
{
	struct sockaddr_in6 from;
	char control[CMSG_SPACE(sizeof(struct in6_pktinfo)) + 64] __attribute__((aligned(8)));
	struct iovec iov = { .iov_base = buf, .iov_len = cap };
	struct msghdr msg = {
		.msg_name = &from, .msg_namelen = sizeof(from),
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = control, .msg_controllen = sizeof(control),
	};
	memset(&from, 0, sizeof(from));
	memset(dst, 0, 16);
	ssize_t n;
	do {
		n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_TRUNC);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	memcpy(src, &from.sin6_addr, 16);
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO &&
		    c->cmsg_len >= CMSG_LEN(sizeof(struct in6_pktinfo))) {
			struct in6_pktinfo info;
			memcpy(&info, CMSG_DATA(c), sizeof(info));
			memcpy(dst, &info.ipi6_addr, 16);
		}
	}
	return n > 0x7fffffff ? 0x7fffffff : (int)n;
}

int cmip6_recv_tunnel_error(int fd, struct cmip6_tunnel_error *out)
{
	struct sockaddr_in6 to;
	unsigned char payload[64]; /* the start of our packet: not needed, the destination is in msg_name */
	/* Room for IPV6_PKTINFO too: with IPV6_RECVPKTINFO the kernel puts it first. */
	char control[CMSG_SPACE(sizeof(struct sock_extended_err) + sizeof(struct sockaddr_in6)) +
		     CMSG_SPACE(sizeof(struct in6_pktinfo)) + 64] __attribute__((aligned(8)));
	struct iovec iov = { .iov_base = payload, .iov_len = sizeof(payload) };
	struct msghdr msg = {
		.msg_name = &to, .msg_namelen = sizeof(to),
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = control, .msg_controllen = sizeof(control),
	};
	memset(&to, 0, sizeof(to));
	memset(out, 0, sizeof(*out));
	ssize_t n;
	do {
		n = recvmsg(fd, &msg, MSG_ERRQUEUE | MSG_DONTWAIT);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	memcpy(out->destination, &to.sin6_addr, 16);
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level != IPPROTO_IPV6 || c->cmsg_type != IPV6_RECVERR ||
		    c->cmsg_len < CMSG_LEN(sizeof(struct sock_extended_err)))
			continue;
		struct sock_extended_err ee;
		memcpy(&ee, CMSG_DATA(c), sizeof(ee));
		out->err = ee.ee_errno;
		out->origin = ee.ee_origin;
		out->type = ee.ee_type;
		out->code = ee.ee_code;
		out->info = ee.ee_info;
		if (c->cmsg_len >= CMSG_LEN(sizeof(ee) + sizeof(struct sockaddr_in6))) {
			struct sockaddr_in6 offender;
			memcpy(&offender, CMSG_DATA(c) + sizeof(ee), sizeof(offender));
			if (offender.sin6_family == AF_INET6)
				memcpy(out->offender, &offender.sin6_addr, 16);
		}
	}
	return 0;
}
