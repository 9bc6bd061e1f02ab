#!/bin/sh
# Build the local Debian 12 base image (default tag kvmock-base:bookworm) with
# debootstrap, for machines that cannot pull debian:bookworm-slim from a
# registry. Skips the work when the tag exists. As root; needs a running
# Docker daemon.
#
#   scripts/docker-base.sh [TAG]
#   docker build -f docker/Dockerfile --build-arg BASE=kvmock-base:bookworm .
#
# The image is a minbase debootstrap with debian:bookworm-slim's apt sources
# (bookworm, bookworm-updates, bookworm-security) and its dpkg excludes (no
# documentation, man pages or locales), without package lists or caches.
set -eu
tag=${1:-kvmock-base:bookworm}
mirror=${KVMOCK_DEBIAN_MIRROR:-http://deb.debian.org/debian}

if docker image inspect "$tag" >/dev/null 2>&1; then
    echo "docker-base: $tag exists, kept"
    exit 0
fi
if ! command -v debootstrap >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root
echo "docker-base: debootstrap --variant=minbase bookworm from $mirror"
if ! debootstrap --variant=minbase bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1; then
    tail -n 30 "$work/debootstrap.log" >&2
    echo "docker-base: debootstrap failed" >&2
    exit 1
fi

rm -f "$root/etc/apt/sources.list"
cat >"$root/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${mirror%/debian}/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES

cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
DPKG
cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT
find "$root/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete 2>/dev/null || true
find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
rm -rf "$root/usr/share/man/"* "$root/usr/share/info/"* "$root/usr/share/locale/"* \
       "$root/var/lib/apt/lists/"* "$root/var/cache/apt/"*.bin \
       "$root/var/cache/apt/archives/"*.deb "$root/var/log/"*.log "$root/tmp/"*
# Not the host's identity.
: >"$root/etc/hostname"
rm -f "$root/etc/machine-id" "$root/var/lib/dbus/machine-id"

tar -C "$root" --numeric-owner -c . |
    docker import -c 'CMD ["bash"]' \
        -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        -m "debootstrap --variant=minbase bookworm $mirror" - "$tag" >/dev/null
echo "docker-base: $tag built ($(docker image inspect -f '{{.Size}}' "$tag") bytes)"
