#!/usr/bin/env bash
# Every k3s node: install nodetrace from the synced project folder with the README's own
# set-up command, bin/setup (not a copy of its steps: whatever it installs, the nodes
# get), and put `nodetrace` on root's PATH.
set -euo pipefail
src=${NODETRACE_SRC:?the synced project folder}
bindir=${NODETRACE_BIN_DIR:-/usr/local/bin}

"$src/bin/setup"

# bin/nodetrace finds the project from its own path, so a wrapper, not a symlink.
printf '#!/bin/sh\nexec %s/bin/nodetrace "$@"\n' "$src" > "$bindir/nodetrace"
chmod 0755 "$bindir/nodetrace"
