/* SPDX-License-Identifier: GPL-2.0 */
/* The one BCC module nodetrace compiles per run: program families are switched on
 * with -D WITH_<FAMILY> so that every family shares the ring buffer, loss counters
 * and scope maps of common.h. */
#include "common.h"

#ifdef WITH_DROPS
#include "drops.c"
#endif
