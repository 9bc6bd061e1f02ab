#!/bin/sh
# Install what kvmock needs, build it, and run it with its defaults:
# data in ./kvmock-data, HTTPS on 8443, HTTP on 8080, vault "default".
# Extra arguments go to kvmock (see `build/kvmock --help`).
set -eu
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)"
exec build/kvmock "$@"
