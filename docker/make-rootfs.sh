#!/bin/sh
# Run in the Dockerfile's build stage: assemble ROOTFS, the whole scratch image.
#
#   make-rootfs.sh BINARY PROBE ROOTFS PACKAGES
#
# - BINARY (kvmock) and PROBE (the static health probe) in /usr/local/bin;
# - every shared library `ldd BINARY` lists, dereferenced, at the path ldd
#   prints, and the dynamic loader named in the binary's PT_INTERP;
# - libgcc_s.so.1: glibc dlopen()s it when a thread exits or is cancelled, and
#   ldd cannot see that;
# - /etc/passwd and /etc/group with root and kvmock (10001:10001);
# - /data owned by kvmock (0700), /tmp (1777).
# PACKAGES receives the Debian packages that own those libraries, for the
# `debian` target. Finally the binary is started in a chroot of ROOTFS with
# --help: proof that the loader finds every library without ld.so.cache.
set -eu
bin=$1 probe=$2 r=$3 pkgs=$4

mkdir -p "$r/usr/local/bin" "$r/etc" "$r/data" "$r/tmp"
install -m 0755 "$bin" "$r/usr/local/bin/kvmock"
install -m 0755 "$probe" "$r/usr/local/bin/kvmock-healthcheck"

interp=$(readelf -l "$bin" | sed -n 's/.*Requesting program interpreter: \(.*\)]$/\1/p')
[ -n "$interp" ] || { echo "make-rootfs: $bin has no program interpreter" >&2; exit 1; }
libs=$(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}')
gcc_s=$(ldconfig -p | awk '$1 == "libgcc_s.so.1" {print $NF; exit}')
[ -n "$gcc_s" ] || { echo "make-rootfs: libgcc_s.so.1 not found" >&2; exit 1; }

for f in $interp $libs $gcc_s; do
    mkdir -p "$r$(dirname "$f")"
    cp -L "$f" "$r$f"
done

for f in $libs $gcc_s; do
    dpkg -S "$f" 2>/dev/null || dpkg -S "$(readlink -f "$f")"
done | cut -d: -f1 | sort -u >"$pkgs"

printf 'root:x:0:0:root:/root:/sbin/nologin\nkvmock:x:10001:10001:kvmock:/data:/sbin/nologin\n' \
    >"$r/etc/passwd"
printf 'root:x:0:\nkvmock:x:10001:\n' >"$r/etc/group"
chown 10001:10001 "$r/data"
chmod 0700 "$r/data"
chmod 1777 "$r/tmp"

chroot "$r" /usr/local/bin/kvmock --help >/dev/null
echo "make-rootfs: runtime packages: $(tr '\n' ' ' <"$pkgs")"
echo "make-rootfs: files (KiB):"
(cd "$r" && find . -type f -exec du -k {} + | sort -n)
echo "make-rootfs: total $(du -sk "$r" | cut -f1) KiB"
