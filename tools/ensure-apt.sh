#!/bin/sh
# Install Debian/Ubuntu packages when apt-get is there and we may use it (root, or
# sudo without a password); otherwise print how to do it and fail, so the caller
# can decide whether that is fatal.
set -e
if ! command -v apt-get >/dev/null 2>&1; then
    echo "note: no apt-get on this machine; install $* yourself (see README)" >&2
    exit 1
fi
if [ "$(id -u)" = 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
else
    echo "note: run 'sudo apt-get install $*' once (it needs root)" >&2
    exit 1
fi
echo "installing $* with apt-get..."
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
