#!/usr/bin/env bash
# Install the headless browser the browser tests drive (tests/browser): Debian's chromium and
# chromium-driver. Does nothing when both are already present; never downloads browsers any other
# way (test tools' own downloads do not work offline).
set -euo pipefail

if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
    exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
echo "installed $(/usr/bin/chromium --version)"
