#!/usr/bin/env bash
# Every k3s node: install nodetrace from the synced project folder with the README's own
# set-up command, run from the project root as the README runs it (as root: Vagrant's
# shell provisioner is privileged). Not a copy of its steps: whatever bin/setup installs,
# the nodes get. tests/vagrant checks that this is the README's command.
set -euo pipefail
src=${NODETRACE_SRC:?the synced project folder}
bindir=${NODETRACE_BIN_DIR:-/usr/local/bin}

cd "$src"
bin/setup

# `nodetrace` on root's PATH. bin/nodetrace finds the project from its own path, so a
# wrapper, not a symlink.
printf '#!/bin/sh\nexec %s/bin/nodetrace "$@"\n' "$src" > "$bindir/nodetrace"
chmod 0755 "$bindir/nodetrace"
