#!/usr/bin/env bash
# Install headless Chromium and its driver from Debian's packages, for the browser tests.
# Idempotent: does nothing when /usr/bin/chromium and /usr/bin/chromedriver are both present.
# (A test tool's own browser download cannot work here: no such host is reachable.)
set -euo pipefail

if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    echo "chromium and chromedriver already installed"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "error: installing chromium needs root (or sudo): apt-get install chromium chromium-driver" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y chromium chromium-driver fonts-noto-color-emoji

/usr/bin/chromium --version
/usr/bin/chromedriver --version
