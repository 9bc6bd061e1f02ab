#!/bin/sh
# Fetch civetweb's source from Debian's own source package into DEST.
#
# kvmock compiles civetweb from Debian's source package instead of linking
# Debian's prebuilt libcivetweb: that library was built for the OpenSSL 1.1 API
# (it dlopen()s libssl.so and fails on OpenSSL 3) and has IPv6 switched off.
# See docs/architecture.md. Needs deb-src entries (scripts/install-deps.sh adds them).
set -eu
dest=${1:?usage: fetch-civetweb.sh DEST}
[ -f "$dest/src/civetweb.c" ] && exit 0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
if ! apt-get source --download-only civetweb >apt.log 2>&1; then
    cat apt.log >&2
    echo "fetch-civetweb: 'apt-get source civetweb' failed; enable deb-src (run scripts/install-deps.sh as root)" >&2
    exit 1
fi
dpkg-source --no-check -x civetweb_*.dsc src >/dev/null
mkdir -p "$(dirname "$dest")"
rm -rf "$dest"
mv src "$dest"
echo "fetch-civetweb: civetweb source in $dest"
