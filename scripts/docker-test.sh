#!/bin/sh
# The Docker stage of CI: build kvmock's images and test them end to end.
#
#   scripts/docker-test.sh          (as root on Debian 12; .ci/run runs it
#                                    after scripts/test.sh)
#
# 1. Installs what is missing (docker.io, debootstrap, docker-compose, curl,
#    python3-azure, libnss-myhostname, Node.js), starts dockerd in the
#    background when no daemon answers (and stops it at the end). If no Docker
#    daemon can be started, prints why and "SKIPPED" and exits 0: the only
#    case that is not a failure.
# 2. Builds the base image kvmock-base:bookworm with debootstrap (kept once
#    built; scripts/docker-base.sh) unless KVMOCK_DOCKER_BASE names another,
#    then both targets of docker/Dockerfile: kvmock:debian, kvmock:latest
#    (scratch). Checks the scratch image's size (<= 40 MB) and configuration.
# 3. Runs the scratch image with host ports that differ from the container's
#    (-p 28443:8443 -p 28080:8080) and KVMOCK_HOSTNAMES, on a named volume:
#    /healthz, /ca.pem (= /data/tls/ca.pem), file ownership, Docker's health
#    status; tests/docker/test_container.py (raw HTTPS: challenge, kid and
#    nextLink on the mapped port, certificate names; Python SDK with
#    DefaultAzureCredential), tests/docker/container.test.mjs (JS SDK),
#    the end-to-end JS scenario tests/e2e/js/scenario.mjs in both modes;
#    another container reaching it with --add-host ...:host-gateway, and
#    /admin/clock from a container in its network namespace.
# 4. Persistence: a key and a wrapped secret; docker stop (SIGTERM, exit code
#    0), docker start, the key and the secret are there and the CA is the
#    same; then the `debian` image on the same volume, same check.
# 5. --network host with KVMOCK_HTTP_PORT: the health probe follows it and the
#    loopback-only admin endpoint answers.
# 6. The examples: docker/docker-compose.yml (app container talks to kvmock
#    by service name), docker/github-actions.yml (tests/docker/run_workflow.py),
#    docker/examples/testcontainers.mjs.
# Every container, volume and network it creates is removed at the end.
#
# Environment: KVMOCK_DOCKER_HTTPS_PORT (28443), KVMOCK_DOCKER_HTTP_PORT
# (28080; the host-network test uses both + 1), KVMOCK_DOCKER_BASE
# (kvmock-base:bookworm), KVMOCK_DOCKER_IMAGE (kvmock), DOCKER_BUILDKIT (0).
set -eu
cd "$(dirname "$0")/.."

HTTPS_PORT=${KVMOCK_DOCKER_HTTPS_PORT:-28443}
HTTP_PORT=${KVMOCK_DOCKER_HTTP_PORT:-28080}
BASE=${KVMOCK_DOCKER_BASE:-kvmock-base:bookworm}
IMAGE=${KVMOCK_DOCKER_IMAGE:-kvmock}
MAX_SCRATCH_BYTES=40000000
export DOCKER_BUILDKIT="${DOCKER_BUILDKIT:-0}"
PY=/usr/bin/python3
run_id=kvmock-dt-$$
compose_project=kvmockdockertest
work=$(mktemp -d)
started_dockerd=
compose=
t0=$(date +%s)

log() { printf '%s docker-test: %s\n' "$(date +%H:%M:%S)" "$*"; }
fail() {
    log "FAIL: $*"
    exit 1
}
skip() {
    log "SKIPPED: $*"
    log "SKIPPED: the Docker stage did not run (no Docker daemon)"
    exit 0
}
phase() { log "--- $* ($(($(date +%s) - t0)) s)"; }

cleanup() {
    rc=$?
    trap - EXIT INT TERM
    if docker info >/dev/null 2>&1; then
        for c in $(docker ps -aq --filter "label=kvmock-docker-test=$run_id"); do
            docker rm -fv "$c" >/dev/null 2>&1 || true
        done
        docker volume rm -f "$run_id-data" >/dev/null 2>&1 || true
        if [ -n "$compose" ]; then
            $compose -f docker/docker-compose.yml -p "$compose_project" down -v --remove-orphans \
                >/dev/null 2>&1 || true
        fi
    fi
    if [ -n "$started_dockerd" ]; then
        log "stopping the dockerd this script started (pid $started_dockerd)"
        kill "$started_dockerd" 2>/dev/null || true
        i=0
        while kill -0 "$started_dockerd" 2>/dev/null && [ $i -lt 40 ]; do
            sleep 0.5
            i=$((i + 1))
        done
    fi
    rm -rf "$work"
    log "finished in $(($(date +%s) - t0)) s, exit code $rc"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The client side of the tests: nothing inherited that could steer an SDK
# elsewhere; the three settings an application gives DefaultAzureCredential.
client() {
    env -u http_proxy -u https_proxy -u HTTP_PROXY -u HTTPS_PROXY -u all_proxy -u ALL_PROXY \
        -u AZURE_CLIENT_ID -u AZURE_TENANT_ID -u AZURE_CLIENT_SECRET -u AZURE_USERNAME \
        -u AZURE_AUTHORITY_HOST -u AZURE_FEDERATED_TOKEN_FILE -u MSI_ENDPOINT -u MSI_SECRET \
        -u IMDS_ENDPOINT -u NODE_OPTIONS -u NODE_TLS_REJECT_UNAUTHORIZED \
        IDENTITY_ENDPOINT="http://127.0.0.1:$HTTP_PORT/msi/token" IDENTITY_HEADER=kvmock \
        REQUESTS_CA_BUNDLE="$work/ca.pem" NODE_EXTRA_CA_CERTS="$work/ca.pem" "$@"
}

http_get() { curl -fsS --noproxy '*' --max-time 5 "$@"; }

# wait_healthz CONTAINER HTTP_PORT: /healthz answers 200, or fail with the log.
wait_healthz() {
    i=0
    until http_get -o /dev/null "http://127.0.0.1:$2/healthz" 2>/dev/null; do
        st=$(docker inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$1")
        if [ "${st%% *}" != running ]; then
            docker logs --tail 30 "$1" 2>&1
            fail "container $1 is not running ($st)"
        fi
        i=$((i + 1))
        if [ $i -ge 120 ]; then
            docker logs --tail 30 "$1" 2>&1
            fail "GET http://127.0.0.1:$2/healthz did not answer 200 within 60 s"
        fi
        sleep 0.5
    done
}

# wait_healthy CONTAINER: Docker's HEALTHCHECK (the image's probe) says healthy.
wait_healthy() {
    i=0
    while :; do
        st=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$1")
        [ "$st" = healthy ] && return 0
        i=$((i + 1))
        if [ "$st" = none ] || [ $i -ge 120 ]; then
            docker inspect -f '{{json .State.Health}}' "$1"
            fail "container $1: health status '$st', want healthy"
        fi
        sleep 0.5
    done
}

# stop_clean CONTAINER: docker stop sends SIGTERM; kvmock must exit 0 by itself.
stop_clean() {
    s=$(date +%s)
    docker stop -t 30 "$1" >/dev/null
    code=$(docker inspect -f '{{.State.ExitCode}}' "$1")
    if [ "$code" != 0 ]; then
        docker logs --tail 30 "$1" 2>&1
        fail "$1 exited with code $code after docker stop (SIGTERM), want 0"
    fi
    docker logs "$1" 2>&1 | grep -q 'signal 15: stopping' ||
        fail "$1: no 'signal 15: stopping' in its log"
    log "PASS docker stop $1: SIGTERM, exit code 0 in $(($(date +%s) - s)) s"
}

# file_in CONTAINER PATH: the file's bytes, read with docker cp (no shell needed).
file_in() { docker cp "$1:$2" - | tar -xO; }

# ------------------------------------------------------------ 1. set-up ----
phase "set-up"
need=
if ! command -v docker >/dev/null 2>&1 ||
    { ! docker info >/dev/null 2>&1 && ! command -v dockerd >/dev/null 2>&1; }; then
    need="$need docker.io"
fi
if [ "$BASE" = kvmock-base:bookworm ] && ! command -v debootstrap >/dev/null 2>&1; then
    need="$need debootstrap"
fi
command -v curl >/dev/null 2>&1 || need="$need curl"
command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1 ||
    need="$need docker-compose"
$PY -c 'import azure.identity, azure.keyvault.keys, cryptography, yaml' 2>/dev/null ||
    need="$need python3 python3-azure python3-yaml"
getent hosts default.vault.localhost >/dev/null 2>&1 || need="$need libnss-myhostname"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    need="$need nodejs npm"
fi
if [ -n "$need" ]; then
    [ "$(id -u)" -eq 0 ] || fail "missing:$need; run as root to install them"
    log "installing:$need"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >"$work/apt.log" 2>&1 || { cat "$work/apt.log"; fail "apt-get update"; }
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $need >>"$work/apt.log" 2>&1 ||
        { tail -n 30 "$work/apt.log"; fail "apt-get install$need"; }
    if ! grep -q '^hosts:.*myhostname' /etc/nsswitch.conf; then
        sed -i 's/^hosts:\(.*\)$/hosts:\1 myhostname/' /etc/nsswitch.conf
    fi
fi
getent hosts default.vault.localhost >/dev/null ||
    fail "default.vault.localhost does not resolve (libnss-myhostname in /etc/nsswitch.conf, or /etc/hosts)"
node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)' ||
    fail "Node.js $(node --version) is too old for the pinned Azure SDK (needs 20 or later)"
if command -v docker-compose >/dev/null 2>&1; then
    compose=docker-compose
elif docker compose version >/dev/null 2>&1; then
    compose="docker compose"
fi

if ! docker info >/dev/null 2>&1; then
    [ "$(id -u)" -eq 0 ] || skip "no Docker daemon answers and only root can start dockerd"
    command -v dockerd >/dev/null 2>&1 || skip "no Docker daemon answers and dockerd is not installed"
    log "starting dockerd in the background (log: $work/dockerd.log)"
    dockerd >"$work/dockerd.log" 2>&1 &
    started_dockerd=$!
    i=0
    until docker info >/dev/null 2>&1; do
        if ! kill -0 "$started_dockerd" 2>/dev/null || [ $i -ge 120 ]; then
            tail -n 30 "$work/dockerd.log" | sed 's/^/    dockerd: /'
            kill "$started_dockerd" 2>/dev/null || true
            started_dockerd=
            skip "dockerd could not start (its log is above)"
        fi
        i=$((i + 1))
        sleep 0.5
    done
fi
log "docker: client $(docker version -f '{{.Client.Version}}' 2>/dev/null), server $(docker version -f '{{.Server.Version}}')"

# ------------------------------------------------------------- 2. images ----
phase "images"
if [ "$BASE" = kvmock-base:bookworm ]; then
    scripts/docker-base.sh "$BASE"
fi
build() { # LOGNAME TAG [docker build args]
    name=$1 tag=$2
    shift 2
    s=$(date +%s)
    if ! docker build -f docker/Dockerfile --build-arg BASE="$BASE" -t "$tag" "$@" . \
        >"$work/build-$name.log" 2>&1; then
        tail -n 60 "$work/build-$name.log"
        fail "docker build $tag"
    fi
    log "PASS docker build $tag ($(($(date +%s) - s)) s)"
}
build debian "$IMAGE:debian" --target debian
build scratch "$IMAGE:latest"
# The compose example's application image; section 3 also uses it as a
# client container.
[ -n "$compose" ] || fail "neither docker-compose nor docker compose is available"
export KVMOCK_IMAGE="$IMAGE:latest" KVMOCK_BASE="$BASE" \
    KVMOCK_HOST_HTTPS_PORT="$HTTPS_PORT" KVMOCK_HOST_HTTP_PORT="$HTTP_PORT"
$compose -f docker/docker-compose.yml -p "$compose_project" config -q || fail "compose config"
s=$(date +%s)
$compose -f docker/docker-compose.yml -p "$compose_project" build app >"$work/compose-build.log" 2>&1 ||
    { tail -n 40 "$work/compose-build.log"; fail "compose build app"; }
log "PASS $compose build app: kvmock-example-app ($(($(date +%s) - s)) s)"
size_scratch=$(docker image inspect -f '{{.Size}}' "$IMAGE:latest")
size_debian=$(docker image inspect -f '{{.Size}}' "$IMAGE:debian")
size_base=$(docker image inspect -f '{{.Size}}' "$BASE" 2>/dev/null || echo 0)
mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1000000 }'; }
log "image sizes (uncompressed): $IMAGE:latest (scratch) $(mb "$size_scratch"), $IMAGE:debian $(mb "$size_debian") (base $BASE $(mb "$size_base"))"
[ "$size_scratch" -le "$MAX_SCRATCH_BYTES" ] ||
    fail "the scratch image is $(mb "$size_scratch"), over $(mb "$MAX_SCRATCH_BYTES")"
for img in "$IMAGE:latest" "$IMAGE:debian"; do
    cfg=$(docker image inspect -f '{{.Config.User}}|{{json .Config.Entrypoint}}|{{.Config.StopSignal}}|{{json .Config.Healthcheck.Test}}|{{range $k, $v := .Config.ExposedPorts}}{{$k}} {{end}}|{{range .Config.Env}}{{.}} {{end}}|{{range $k, $v := .Config.Volumes}}{{$k}}{{end}}' "$img")
    want='10001:10001|["/usr/local/bin/kvmock"]|SIGTERM|["CMD","/usr/local/bin/kvmock-healthcheck"]|8080/tcp 8443/tcp |'
    case $cfg in "$want"*KVMOCK_DATA=/data*"|/data") ;; *) fail "$img configuration: $cfg" ;; esac
done
log "PASS image configuration: user 10001, ENTRYPOINT kvmock, STOPSIGNAL SIGTERM, HEALTHCHECK, EXPOSE 8443 8080, KVMOCK_DATA=/data, VOLUME /data"
docker run --rm --label "kvmock-docker-test=$run_id" "$IMAGE:latest" --help | grep -q -- '--https-port' || fail "kvmock --help in the scratch image"
docker run --rm --label "kvmock-docker-test=$run_id" --entrypoint /bin/sh "$IMAGE:latest" -c true >/dev/null 2>&1 &&
    fail "the scratch image has a shell"
log "PASS scratch image: kvmock --help runs; no shell"

# ---------------------------------------- 3. scratch image, mapped ports ----
phase "scratch image on $HTTPS_PORT:8443 and $HTTP_PORT:8080"
docker volume create "$run_id-data" >/dev/null
c1=$run_id-scratch
docker run -d --name "$c1" --label "kvmock-docker-test=$run_id" \
    -p "$HTTPS_PORT:8443" -p "$HTTP_PORT:8080" -e KVMOCK_HOSTNAMES=kvmock,kvmock-test \
    --health-interval 2s -v "$run_id-data:/data" "$IMAGE:latest" >/dev/null ||
    fail "docker run $IMAGE:latest (are ports $HTTPS_PORT and $HTTP_PORT free? KVMOCK_DOCKER_HTTPS_PORT/KVMOCK_DOCKER_HTTP_PORT)"
wait_healthz "$c1" "$HTTP_PORT"
ready=$(docker logs "$c1" 2>/dev/null | grep -m1 '^kvmock ready' || true)
case $ready in *" https=8443 http=8080 "*" data=/data "*) ;; *) fail "ready line: '$ready'" ;; esac
log "PASS $ready"
http_get "http://127.0.0.1:$HTTP_PORT/ca.pem" -o "$work/ca.pem"
file_in "$c1" /data/tls/ca.pem >"$work/ca-in-volume.pem"
cmp -s "$work/ca.pem" "$work/ca-in-volume.pem" || fail "GET /ca.pem differs from /data/tls/ca.pem"
log "PASS curl http://127.0.0.1:$HTTP_PORT/ca.pem = /data/tls/ca.pem in the container"
owner=$(docker cp "$c1:/data/root.key" - | tar --numeric-owner -tvf - | awk '{print $1, $2}')
[ "$owner" = "-rw------- 10001/10001" ] || fail "/data/root.key: '$owner', want -rw------- 10001/10001"
log "PASS /data/root.key is -rw------- 10001/10001 (not root)"
curl -fsS --noproxy '*' --cacert "$work/ca.pem" -o /dev/null "https://default.vault.localhost:$HTTPS_PORT/healthz" ||
    fail "curl https://default.vault.localhost:$HTTPS_PORT/healthz with the CA"
log "PASS curl --cacert ca.pem https://default.vault.localhost:$HTTPS_PORT/healthz"
# what a vault firewall sees through a published port (README, Docker): not the host's loopback
info=$(curl -sS --noproxy '*' --cacert "$work/ca.pem" -o /dev/null \
    -w '%header{x-ms-keyvault-network-info}' "https://default.vault.localhost:$HTTPS_PORT/keys?api-version=7.4")
case "$info" in
    conn_type=Ipv4\;addr=*\;act_addr_fam=InterNetwork\; | conn_type=Ipv6\;addr=*\;act_addr_fam=InterNetworkV6\;) ;;
    *) fail "x-ms-keyvault-network-info through the published port: '$info'" ;;
esac
case "$info" in
    *addr=127.* | *addr=::1\;*) fail "through the published port kvmock saw the host's loopback: '$info'" ;;
esac
log "PASS through the published port a vault firewall sees the Docker network: $info"
docker run --rm --label "kvmock-docker-test=$run_id" --add-host default.vault.localhost:host-gateway \
    -v "$work/ca.pem:/kvmock-ca.pem:ro" --entrypoint python3 kvmock-example-app -c "
import ssl, urllib.request
ctx = ssl.create_default_context(cafile='/kvmock-ca.pem')
url = 'https://default.vault.localhost:$HTTPS_PORT/healthz'
assert urllib.request.urlopen(url, context=ctx, timeout=10).status == 200, url
" || fail "a container with --add-host default.vault.localhost:host-gateway cannot reach kvmock"
log "PASS another container reaches https://default.vault.localhost:$HTTPS_PORT with --add-host default.vault.localhost:host-gateway"
admin=$(curl -s --noproxy '*' -o /dev/null -w '%{http_code}' -X POST -d '{"advanceSeconds":1}' \
    "http://127.0.0.1:$HTTP_PORT/admin/clock" || true)
log "INFO POST /admin/clock through the published port: $admin (admin endpoints are loopback-only)"
docker run --rm --label "kvmock-docker-test=$run_id" --network "container:$c1" \
    --entrypoint python3 kvmock-example-app -c "
import urllib.request
req = urllib.request.Request('http://127.0.0.1:8080/admin/clock', data=b'{\"advanceSeconds\": 1}',
                             headers={'Content-Type': 'application/json'}, method='POST')
with urllib.request.urlopen(req, timeout=10) as r:
    assert r.status == 200, r.status
    print(r.read().decode())
" >"$work/admin.out" || fail "POST /admin/clock from a container in kvmock's network namespace"
log "PASS POST /admin/clock from a container with --network container:kvmock: $(cat "$work/admin.out")"

phase "Python: tests/docker/test_container.py smoke"
client "$PY" tests/docker/test_container.py smoke --https-port "$HTTPS_PORT" --http-port "$HTTP_PORT" \
    --ca "$work/ca.pem" --hostname kvmock --hostname kvmock-test || fail "tests/docker/test_container.py smoke"

phase "JavaScript: tests/docker/container.test.mjs"
js_ok=1
for p in @azure/identity @azure/keyvault-keys; do
    [ -f "tests/e2e/js/node_modules/$p/package.json" ] || js_ok=0
done
if [ $js_ok -eq 0 ]; then
    log "installing the pinned JS SDK: npm ci --prefix tests/e2e/js"
    npm ci --prefix tests/e2e/js --no-audit --no-fund >"$work/npm-e2e.log" 2>&1 ||
        { tail -n 30 "$work/npm-e2e.log"; fail "npm ci --prefix tests/e2e/js"; }
fi
client node tests/docker/container.test.mjs --https-port "$HTTPS_PORT" || fail "tests/docker/container.test.mjs"

if [ -f tests/e2e/js/scenario.mjs ]; then
    for mode in a b; do
        if [ $mode = a ]; then url=https://default.vault.localhost:$HTTPS_PORT; else url=https://localhost:$HTTPS_PORT; fi
        phase "JavaScript: the end-to-end scenario tests/e2e/js/scenario.mjs mode $mode against the container ($url)"
        client env KVMOCK_HTTPS_PORT="$HTTPS_PORT" KVMOCK_HTTP_URL="http://127.0.0.1:$HTTP_PORT" \
            KVMOCK_READY_LINE="$ready" KVMOCK_MODE=$mode KVMOCK_VAULT_URL="$url" \
            node tests/e2e/js/scenario.mjs --mode $mode --vault-url "$url" >"$work/scenario-$mode.log" 2>&1 ||
            { cat "$work/scenario-$mode.log"; fail "tests/e2e/js/scenario.mjs mode $mode against the container"; }
        grep -v '^PASS' "$work/scenario-$mode.log" || true
    done
else
    log "NOT RUN: tests/e2e/js/scenario.mjs does not exist"
fi

wait_healthy "$c1"
log "PASS Docker health status of $c1: healthy (kvmock-healthcheck)"

# ------------------------------------------------------- 4. persistence ----
phase "persistence: docker stop / docker start on the named volume $run_id-data"
client "$PY" tests/docker/test_container.py persist-put --https-port "$HTTPS_PORT" --http-port "$HTTP_PORT" \
    --ca "$work/ca.pem" --state "$work/persist.json" || fail "persist-put"
stop_clean "$c1"
docker start "$c1" >/dev/null
wait_healthz "$c1" "$HTTP_PORT"
http_get "http://127.0.0.1:$HTTP_PORT/ca.pem" -o "$work/ca-after.pem"
cmp -s "$work/ca.pem" "$work/ca-after.pem" || fail "the CA changed across docker stop/start"
log "PASS the CA is the same after the restart"
client "$PY" tests/docker/test_container.py persist-check --https-port "$HTTPS_PORT" --http-port "$HTTP_PORT" \
    --ca "$work/ca.pem" --state "$work/persist.json" || fail "persist-check after docker start"
stop_clean "$c1"
docker rm -v "$c1" >/dev/null

phase "the debian image on the same volume"
c2=$run_id-debian
docker run -d --name "$c2" --label "kvmock-docker-test=$run_id" \
    -p "$HTTPS_PORT:8443" -p "$HTTP_PORT:8080" -v "$run_id-data:/data" "$IMAGE:debian" >/dev/null
wait_healthz "$c2" "$HTTP_PORT"
uid=$(docker exec "$c2" sh -c 'id -u')
[ "$uid" = 10001 ] || fail "$c2 runs as uid $uid, want 10001"
client "$PY" tests/docker/test_container.py persist-check --https-port "$HTTPS_PORT" --http-port "$HTTP_PORT" \
    --ca "$work/ca.pem" --state "$work/persist.json" || fail "persist-check in the debian image"
log "PASS the debian image (uid 10001, has a shell) reads the scratch image's volume"
stop_clean "$c2"

# ---------------------------------------------------- 5. host network ----
hp=$((HTTPS_PORT + 1)) qp=$((HTTP_PORT + 1))
phase "--network host with KVMOCK_HTTPS_PORT=$hp KVMOCK_HTTP_PORT=$qp"
c3=$run_id-host
docker run -d --name "$c3" --label "kvmock-docker-test=$run_id" --network host \
    -e KVMOCK_HTTPS_PORT=$hp -e KVMOCK_HTTP_PORT=$qp --health-interval 2s "$IMAGE:latest" >/dev/null
wait_healthz "$c3" "$qp"
wait_healthy "$c3"
log "PASS the health probe follows KVMOCK_HTTP_PORT=$qp"
now=$(curl -fsS --noproxy '*' -X POST -H 'Content-Type: application/json' -d '{"advanceSeconds":1}' \
    "http://127.0.0.1:$qp/admin/clock") || fail "POST /admin/clock with --network host"
log "PASS POST /admin/clock from the host with --network host: $now"
stop_clean "$c3"

# --------------------------------------------------------- 6. examples ----
phase "example: docker/docker-compose.yml"
if [ -n "$compose" ]; then
    rc=0
    $compose -f docker/docker-compose.yml -p "$compose_project" up --no-build --no-color \
        --abort-on-container-exit --exit-code-from app >"$work/compose.log" 2>&1 || rc=$?
    grep 'app: ' "$work/compose.log" | sed 's/^.*| //' || true
    if [ $rc -ne 0 ] || ! grep -q 'app: OK' "$work/compose.log"; then
        tail -n 40 "$work/compose.log"
        fail "compose up: exit code $rc"
    fi
    $compose -f docker/docker-compose.yml -p "$compose_project" down -v --remove-orphans >/dev/null 2>&1
    log "PASS docker/docker-compose.yml with $compose: the app reached kvmock by service name and alias"
fi

phase "example: docker/github-actions.yml (job test, tests/docker/run_workflow.py)"
PATH=/usr/bin:$PATH client "$PY" tests/docker/run_workflow.py docker/github-actions.yml --job test \
    --image "$IMAGE:latest" --skip sdk-install || fail "docker/github-actions.yml"

phase "example: docker/examples/testcontainers.mjs"
tc_ok=1
for p in testcontainers @azure/identity @azure/keyvault-keys; do
    want=$(node -e "console.log(require('./docker/examples/package.json').dependencies['$p'])")
    got=$(node -e "try{console.log(require('./docker/examples/node_modules/$p/package.json').version)}catch{console.log('none')}")
    [ "$want" = "$got" ] || tc_ok=0
done
if [ $tc_ok -eq 0 ]; then
    log "installing the example's pinned packages: npm ci --prefix docker/examples"
    npm ci --prefix docker/examples --no-audit --no-fund >"$work/npm-examples.log" 2>&1 ||
        { tail -n 30 "$work/npm-examples.log"; fail "npm ci --prefix docker/examples"; }
fi
env -u IDENTITY_ENDPOINT -u IDENTITY_HEADER -u NODE_EXTRA_CA_CERTS -u http_proxy -u https_proxy \
    -u HTTP_PROXY -u HTTPS_PROXY TESTCONTAINERS_RYUK_DISABLED=true KVMOCK_IMAGE="$IMAGE:latest" \
    node docker/examples/testcontainers.mjs || fail "docker/examples/testcontainers.mjs"
left=$(docker ps -aq --filter label=org.testcontainers=true --filter "ancestor=$IMAGE:latest")
[ -z "$left" ] || fail "the testcontainers example left containers behind: $left"

phase "done"
log "image sizes (uncompressed): $IMAGE:latest (scratch) $(mb "$size_scratch"), $IMAGE:debian $(mb "$size_debian")"
log "ALL PASSED"
