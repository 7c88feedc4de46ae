/* SPDX-License-Identifier: GPL-2.0 */
/* Failed bind(), connect() and listen() on IPv4/IPv6 sockets, from the syscall
 * tracepoints: the caller's own words (the errno it got), its pid, comm and cgroup.
 *
 * sys_enter_* keeps the arguments per thread (only for AF_INET/AF_INET6 addresses in
 * scope: AF_UNIX connects are the common case and are dropped at once); sys_exit_*
 * reports when the return value is an error.  A non-blocking connect()'s
 * EINPROGRESS/EALREADY are not failures: its outcome is what the caller reads with
 * getsockopt(SO_ERROR) once the socket is writable.  The TCP family cannot tell that
 * errno reliably: the caller, woken by the error report, takes sk_err (SO_ERROR reads
 * and clears it) before inet_sk_error_report's tracepoint runs.  So a connect that
 * returned EINPROGRESS is kept (`connecting`, per process and fd) and the SO_ERROR the
 * caller reads for it is reported as that connect's failure.
 */
#define NT_EINPROGRESS 115
#define NT_EALREADY 114
#define NT_SOL_SOCKET 1
#define NT_SO_ERROR 4
#ifndef NT_AF_INET
#define NT_AF_INET 2
#define NT_AF_INET6 10
#endif

#include "task.h"

BPF_HASH(sock_calls, u64, struct sock_call, 4096);
/* (tgid << 32 | fd) -> the record a failed outcome will carry (address, port, fd) */
BPF_TABLE("lru_hash", u64, struct ev_sock, connecting, 4096);

static __always_inline u64 fd_key(u64 pid_tgid, u32 fd)
{
	return (pid_tgid & 0xffffffff00000000ULL) | fd;
}

static __always_inline void sock_fill_addr(struct ev_sock *e, u64 uaddr)
{
	if (!uaddr)
		return;
	const char *sa = (const char *)uaddr;
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

static __always_inline void sock_fill_caller(struct ev_sock *e, u64 pid_tgid)
{
	e->pid = pid_tgid >> 32;
	e->cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(e->comm, sizeof(e->comm));
}

/* getsockopt(fd, SOL_SOCKET, SO_ERROR, ...) on a socket whose connect is pending */
static __always_inline int on_getsockopt_enter(u32 fd, int level, int optname,
					       const void *optval)
{
	if (level != NT_SOL_SOCKET || optname != NT_SO_ERROR || !optval)
		return 0;
	u64 id = bpf_get_current_pid_tgid();
	u64 key = fd_key(id, fd);
	if (!connecting.lookup(&key))
		return 0;
	struct sock_call c = {};
	c.uaddr = (u64)optval;
	c.fd = fd;
	c.op = SOCK_OP_CONNECT_ASYNC;
	sock_calls.update(&id, &c);
	return 0;
}

static __always_inline int on_so_error(u64 id, struct sock_call *call, long ret)
{
	u64 key = fd_key(id, call->fd);
	struct ev_sock *pending = connecting.lookup(&key);
	if (!pending || ret < 0)
		return 0;
	u32 err = 0;
	bpf_probe_read_user(&err, sizeof(err), (const void *)call->uaddr);
	if (err == 0 || err == NT_EINPROGRESS) {	/* connected, or not yet decided */
		if (err == 0)
			connecting.delete(&key);
		return 0;
	}
	struct ev_sock *e = ev_reserve(sizeof(struct ev_sock), EV_SOCK, task_netns(),
				       bpf_ktime_get_ns());
	if (e) {
		__builtin_memcpy(e->addr, pending->addr, sizeof(e->addr));
		e->port = pending->port;
		e->family = pending->family;
		e->fd = call->fd;
		e->op = SOCK_OP_CONNECT_ASYNC;
		e->err = err;
		sock_fill_caller(e, id);
		events.ringbuf_submit(e, RB_FLAGS);
	}
	connecting.delete(&key);
	return 0;
}

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
	if (call.op == SOCK_OP_CONNECT_ASYNC)
		return on_so_error(id, &call, ret);
	if (ret >= 0)
		return 0;
	u32 err = (u32)-ret;
	if (call.op == SOCK_OP_CONNECT && err == NT_EINPROGRESS) {
		struct ev_sock pending = {};
		sock_fill_addr(&pending, call.uaddr);
		u64 key = fd_key(id, call.fd);
		connecting.update(&key, &pending);
		return 0;
	}
	if (call.op == SOCK_OP_CONNECT && err == NT_EALREADY)
		return 0;

	struct ev_sock *e = ev_reserve(sizeof(struct ev_sock), EV_SOCK, task_netns(),
				       bpf_ktime_get_ns());
	if (!e)
		return 0;
	e->op = call.op;
	e->err = err;
	e->fd = call.fd;
	sock_fill_caller(e, id);
	sock_fill_addr(e, call.uaddr);
	events.ringbuf_submit(e, RB_FLAGS);
	return 0;
}
