/* SPDX-License-Identifier: GPL-2.0 */
/* Failed bind(), connect() and listen() on IPv4/IPv6 sockets, from the syscall
 * tracepoints: the caller's own words (the errno it got), its pid, comm and cgroup.
 *
 * sys_enter_* keeps the arguments per thread (only for AF_INET/AF_INET6 addresses in
 * scope: AF_UNIX connects are the common case and are dropped at once); sys_exit_*
 * reports when the return value is an error.  A non-blocking connect()'s
 * EINPROGRESS/EALREADY are not failures; how that connect ends is the TCP family's.
 */
#define NT_EINPROGRESS 115
#define NT_EALREADY 114
#ifndef NT_AF_INET
#define NT_AF_INET 2
#define NT_AF_INET6 10
#endif

#include "task.h"

BPF_HASH(sock_calls, u64, struct sock_call, 4096);

static __always_inline int on_sock_enter(u8 op, u32 fd, const void *uaddr)
{
	if (uaddr) {
		u16 family = 0;
		bpf_probe_read_user(&family, sizeof(family), uaddr);
		if (family != NT_AF_INET && family != NT_AF_INET6)
			return 0;
	}
	if (!netns_in_scope(task_netns()))
		return 0;
	u64 id = bpf_get_current_pid_tgid();
	struct sock_call c = {};
	c.uaddr = (u64)uaddr;
	c.fd = fd;
	c.op = op;
	sock_calls.update(&id, &c);
	return 0;
}

static __always_inline int on_sock_exit(long ret)
{
	u64 id = bpf_get_current_pid_tgid();
	struct sock_call *c = sock_calls.lookup(&id);
	if (!c)
		return 0;
	struct sock_call call = *c;
	sock_calls.delete(&id);
	if (ret >= 0)
		return 0;
	u32 err = (u32)-ret;
	if (call.op == SOCK_OP_CONNECT && (err == NT_EINPROGRESS || err == NT_EALREADY))
		return 0;

	struct ev_sock *e = ev_reserve(sizeof(struct ev_sock), EV_SOCK, task_netns(), bpf_ktime_get_ns());
	if (!e)
		return 0;
	e->op = call.op;
	e->err = err;
	e->fd = call.fd;
	e->pid = id >> 32;
	e->cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	if (call.uaddr) {
		const char *sa = (const char *)call.uaddr;
		u16 family = 0, port = 0;
		bpf_probe_read_user(&family, sizeof(family), sa);
		bpf_probe_read_user(&port, sizeof(port), sa + 2);	/* sin_port == sin6_port */
		e->port = bpf_ntohs(port);
		if (family == NT_AF_INET) {
			e->family = 4;
			bpf_probe_read_user(e->addr, 4, sa + 4);	/* sin_addr */
		} else {
			e->family = 6;
			bpf_probe_read_user(e->addr, 16, sa + 8);	/* sin6_addr */
		}
	}
	events.ringbuf_submit(e, RB_FLAGS);
	return 0;
}
