/* SPDX-License-Identifier: GPL-2.0 */
/* The current task's network namespace (task->nsproxy->net_ns), for hooks that run
 * in process context and carry no namespace of their own. */
#ifndef NODETRACE_TASK_H
#define NODETRACE_TASK_H

static __always_inline u32 task_netns(void)
{
	const void *task = (const void *)bpf_get_current_task();
	const void *nsproxy = (const void *)rd_u64(task, OFF_TASK_NSPROXY);
	if (!nsproxy)
		return 0;
	return net_inum((const void *)rd_u64(nsproxy, OFF_NSPROXY_NET));
}

#endif
