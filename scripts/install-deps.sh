#!/bin/sh
# Install what kvmock needs on Debian 12, as root.
#
#   scripts/install-deps.sh          build and run the server
#   scripts/install-deps.sh --test   also everything the test suite needs:
#                                    the Python, JavaScript and Go Azure SDKs, the
#                                    Azure CLI, Chromium for the web view test, and
#                                    *.vault.localhost name resolution (libnss-myhostname)
set -eu
cd "$(dirname "$0")/.."

with_tests=0
[ "${1:-}" = "--test" ] && with_tests=1

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: run as root (apt-get is needed)" >&2
    exit 1
fi

# civetweb is compiled from Debian's source package (docs/architecture.md),
# which needs deb-src entries next to the deb ones.
if ! grep -rqs '^Types:.*deb-src\|^deb-src ' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
            >/etc/apt/sources.list.d/kvmock-src.sources
    else
        grep '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' \
            >/etc/apt/sources.list.d/kvmock-src.list
    fi
fi

export DEBIAN_FRONTEND=noninteractive
packages="build-essential cmake pkg-config dpkg-dev patch ca-certificates curl
          libcivetweb-dev liblmdb-dev lmdb-utils libcjson-dev libsodium-dev libssl-dev"
if [ "$with_tests" -eq 1 ]; then
    packages="$packages python3 python3-azure python3-aiohttp azure-cli libnss-myhostname chromium openssl clang libclang-rt-14-dev
              golang-go golang-github-azure-azure-sdk-for-go-dev"
    # Node.js and npm for the JavaScript SDK tests: Debian's, unless the machine
    # already has a Node.js with npm (apt must not replace it).
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        packages="$packages nodejs npm"
    fi
fi
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $packages

if [ "$with_tests" -eq 1 ]; then
    # libnss-myhostname's install adds "myhostname" to /etc/nsswitch.conf on a
    # fresh system; make sure of it on systems that edited the file before.
    if ! grep -q '^hosts:.*myhostname' /etc/nsswitch.conf; then
        sed -i 's/^hosts:\(.*\)$/hosts:\1 myhostname/' /etc/nsswitch.conf
    fi
    npm ci --prefix tests/e2e/js --no-audit --no-fund
    npm ci --prefix tests/ui --no-audit --no-fund
fi
