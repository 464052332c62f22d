#!/usr/bin/env bash
# The multi-host tests (pytest -m multihost) make network and mount namespaces with iproute2's
# `ip netns` and util-linux's `unshare`/`nsenter`. Install them from Debian's packages if missing.
# Without root the tests skip (saying why), so there is nothing to install then.
set -euo pipefail

if command -v ip >/dev/null && command -v unshare >/dev/null && command -v nsenter >/dev/null; then
    exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
    echo "install-multihost-tools: not root; the multi-host tests will be skipped" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends iproute2 util-linux mount >/dev/null
echo "installed $(ip -V)"
