#!/usr/bin/env bash
# Build pdp's Docker image and prove that it works: it starts, becomes healthy, runs
# as uid 10001, takes a key and a policy set the way docs/operations.md shows,
# answers a decision with allow, and stops gracefully on `docker stop`.
#
#   scripts/docker-smoke.sh                                    # FROM python:3.11-slim
#   scripts/docker-base.sh && BASE_IMAGE=pdp-base:bookworm scripts/docker-smoke.sh
#   scripts/docker-smoke.sh --build-base                       # both in one go
#
# Options / environment:
#   --build-base, BUILD_BASE=1  first build the local base image (scripts/docker-base.sh,
#                     needs root and debootstrap); BASE_IMAGE defaults to
#                     pdp-base:bookworm then
#   --no-cache, NO_CACHE=1      build without Docker's layer cache (a cold build time)
#   BASE_IMAGE        the Dockerfile's base (build argument; default: the Dockerfile's,
#                     python:3.11-slim)
#   IMAGE             the tag to build (default pdp:smoke); kept afterwards
#   DOCKER_NETWORK    host: build and run with --network host (for engines started
#                     with --bridge=none); PORT (default 18080) is then the port pdp
#                     binds on 127.0.0.1
#   STOP_TIMEOUT      docker stop's timeout in seconds (default 25)
# Package index and proxy settings are taken from this environment at run time and
# passed as build arguments when set: HTTP(S)_PROXY, NO_PROXY (either case),
# PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, PIP_TRUSTED_HOST (else pip's own configuration,
# `pip config get global.index-url` …). file:// indexes are skipped: a build cannot see
# them.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IMAGE="${IMAGE:-pdp:smoke}"
BUILD_BASE="${BUILD_BASE:-0}"
NO_CACHE="${NO_CACHE:-0}"
STOP_TIMEOUT="${STOP_TIMEOUT:-25}"
DOCKER_NETWORK="${DOCKER_NETWORK:-}"
PORT="${PORT:-18080}"
for arg in "$@"; do
    case "$arg" in
        --build-base) BUILD_BASE=1 ;;
        --no-cache) NO_CACHE=1 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "docker-smoke: unknown argument $arg (see --help)" >&2; exit 2 ;;
    esac
done

NAME="pdp-smoke-$$"
VOLUME="pdp-smoke-$$"
step() { printf '\n==> %s\n' "$*"; }
fail() { echo "docker-smoke: FAILED: $*" >&2; exit 1; }
cleanup() {
    local status=$?
    if docker container inspect "$NAME" >/dev/null 2>&1; then
        if [ "$status" != 0 ]; then
            echo "--- the container's last log lines ---" >&2
            docker logs --tail 40 "$NAME" >&2 2>&1 || true
        fi
        docker rm -f "$NAME" >/dev/null 2>&1 || true
    fi
    docker volume rm -f "$VOLUME" >/dev/null 2>&1 || true
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

docker info >/dev/null 2>&1 || fail "no Docker engine answers (docker info)"

if [ "$BUILD_BASE" = 1 ]; then
    BASE_IMAGE="${BASE_IMAGE:-pdp-base:bookworm}"
    step "building the base image $BASE_IMAGE (scripts/docker-base.sh)"
    BASE_IMAGE="$BASE_IMAGE" "$ROOT/scripts/docker-base.sh"
fi

# Build arguments from this environment (nothing host-specific is written in files).
build_args=()
[ -z "${BASE_IMAGE:-}" ] || build_args+=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
for var in HTTP_PROXY HTTPS_PROXY NO_PROXY http_proxy https_proxy no_proxy; do
    [ -z "${!var:-}" ] || build_args+=(--build-arg "$var=${!var}")
done
pip_setting() {     # pip_setting ENV_NAME CONFIG_KEY: the environment's, else pip's config
    local value="${!1:-}"
    if [ -z "$value" ] && command -v pip >/dev/null; then
        value="$(pip config get "global.$2" 2>/dev/null || true)"
    fi
    # Drop local (file://) indexes; keep the rest.
    printf '%s\n' $value | grep -v '^file:' | paste -sd ' ' - || true
}
for pair in PIP_INDEX_URL:index-url PIP_EXTRA_INDEX_URL:extra-index-url PIP_TRUSTED_HOST:trusted-host; do
    value="$(pip_setting "${pair%%:*}" "${pair#*:}")"
    [ -z "$value" ] || build_args+=(--build-arg "${pair%%:*}=$value")
done
[ "$NO_CACHE" != 1 ] || build_args+=(--no-cache)
run_net=(-p 127.0.0.1::8080)
if [ "$DOCKER_NETWORK" = host ]; then
    build_args+=(--network host)
    run_net=(--network host -e "PDP_BIND=127.0.0.1:$PORT")
fi

step "docker build -t $IMAGE ${build_args[*]} ."
build_start=$(date +%s)
docker build -t "$IMAGE" "${build_args[@]}" "$ROOT"
build_seconds=$(( $(date +%s) - build_start ))

step "docker run $IMAGE"
docker volume create "$VOLUME" >/dev/null
run_start=$(date +%s)
docker run -d --name "$NAME" --stop-timeout "$STOP_TIMEOUT" \
    -v "$VOLUME:/var/lib/pdp" "${run_net[@]}" "$IMAGE" >/dev/null
if [ "$DOCKER_NETWORK" = host ]; then
    URL="http://127.0.0.1:$PORT"
else
    URL="http://$(docker port "$NAME" 8080/tcp | grep -m1 '^127\.0\.0\.1:')"
fi
echo "container $NAME at $URL"

http() {    # http METHOD PATH [BODY] [KEY]: prints the status, then the body
    local args=(-sS --noproxy '*' --max-time 10 -o /tmp/"$NAME".body -w '%{http_code}' -X "$1")
    [ -z "${3:-}" ] || args+=(-H 'Content-Type: application/json' --data "$3")
    [ -z "${4:-}" ] || args+=(-H "Authorization: Bearer $4")
    local code
    code="$(curl "${args[@]}" "$URL$2" 2>/dev/null || echo 000)"
    echo "$code"
    cat /tmp/"$NAME".body 2>/dev/null || true
    rm -f /tmp/"$NAME".body
}

step "waiting for the HEALTHCHECK (/healthz)"
health=""
for _ in $(seq 1 90); do
    health="$(docker inspect -f '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}' "$NAME")"
    case "$health" in
        "running healthy") break ;;
        running*) sleep 1 ;;
        *) fail "the container is $health" ;;
    esac
done
[ "$health" = "running healthy" ] || fail "not healthy after 90 s: $health"
healthy_seconds=$(( $(date +%s) - run_start ))
[ "$(http GET /healthz | head -n 1)" = 200 ] || fail "GET /healthz from the host is not 200"
echo "healthy after ${healthy_seconds} s; GET $URL/healthz: 200"

step "the processes run as uid 10001"
[ "$(docker inspect -f '{{.Config.User}}' "$IMAGE")" = "10001:10001" ] || fail "the image's USER is not 10001:10001"
uids="$(docker top "$NAME" -eo uid,pid,args | tail -n +2)"
echo "$uids"
[ -n "$uids" ] || fail "docker top lists no processes"
echo "$uids" | awk '$1 != 10001 { bad = 1 } END { exit bad }' || fail "a process runs as another uid"
[ "$(docker exec "$NAME" id -u)" = 10001 ] || fail "docker exec id -u is not 10001"

step "docker exec $NAME pdp keys create --name smoke --role decide --trusted-claims"
KEY="$(docker exec "$NAME" pdp keys create --name smoke --role decide --trusted-claims | tail -n 1)"
[ -n "$KEY" ] || fail "pdp keys create printed no key"
echo "a decide key with trusted claims: ${KEY:0:8}…"

step "docker run --rm --volumes-from $NAME -v policies:/policies:ro $IMAGE pdp policy push /policies --activate"
docker run --rm --network none --volumes-from "$NAME" \
    -v "$ROOT/policies:/policies:ro" "$IMAGE" pdp policy push /policies --activate

step "waiting for /readyz (the workers load the active version)"
ready=""
for _ in $(seq 1 30); do
    ready="$(http GET /readyz | tr -d '\n')"
    case "$ready" in 200*) break ;; esac
    sleep 1
done
case "$ready" in 200*) echo "GET /readyz: $ready" ;; *) fail "/readyz: $ready" ;; esac

step "POST /v1/decide: alice, a viewer, reads her own document d1 (expect allow)"
BODY='{"subject": {"claims": {"sub": "alice", "roles": ["viewer"]}}, "action": "read", "resource": {"type": "document", "id": "d1", "attributes": {"owner": "alice", "classification": "internal"}}}'
# /readyz is one worker's answer; each worker polls for the activation on its own
# (PDP_POLL_INTERVAL), so another may answer 503 no_active_version for a moment.
for _ in $(seq 1 10); do
    answer="$(http POST /v1/decide "$BODY" "$KEY")"
    [ "$(echo "$answer" | head -n 1)" = 503 ] || break
    sleep 1
done
echo "$answer"
[ "$(echo "$answer" | head -n 1)" = 200 ] || fail "POST /v1/decide is not a 200"
decision="$(echo "$answer" | tail -n +2 | python3 -c 'import json, sys; print(json.load(sys.stdin)["decision"])')"
[ "$decision" = allow ] || fail "the decision is $decision, not allow"
wrong="$(http POST /v1/decide "$BODY" "not-a-key" | head -n 1)"
[ "$wrong" = 401 ] || fail "a request with an unknown key answered $wrong, not 401"

step "docker stop (SIGTERM, timeout ${STOP_TIMEOUT} s): a graceful stop"
stop_start=$(date +%s%N)
docker stop "$NAME" >/dev/null
stop_ms=$(( ($(date +%s%N) - stop_start) / 1000000 ))
exit_code="$(docker inspect -f '{{.State.ExitCode}} {{.State.OOMKilled}}' "$NAME")"
logs="$(docker logs "$NAME" 2>&1)"
echo "$logs" | grep -i -E 'handling signal|shutting down' | tail -n 3
[ "$exit_code" = "0 false" ] || fail "exit code/OOM: $exit_code (0 false expected)"
[ "$stop_ms" -lt $(( STOP_TIMEOUT * 1000 )) ] || fail "docker stop took ${stop_ms} ms: killed at the timeout"
echo "$logs" | grep -q -i 'shutting down' || fail "the logs show no graceful shutdown"
echo "stopped in ${stop_ms} ms with exit code 0"
docker rm "$NAME" >/dev/null

size_mb="$(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{ printf "%.0f", $1 / 1e6 }')"
base="${BASE_IMAGE:-python:3.11-slim, the default}"
cache="layer cache allowed"
[ "$NO_CACHE" != 1 ] || cache="--no-cache"
cat <<EOM

docker-smoke: OK ($(date -u +%Y-%m-%dT%H:%MZ))
  image       $IMAGE (FROM $base)
  size        ${size_mb} MB
  build       ${build_seconds} s ($cache)
  healthy     ${healthy_seconds} s after docker run
  checks      uid 10001; key created; policies/ published and activated; decide: allow; unknown key: 401
  stop        ${stop_ms} ms after SIGTERM, exit code 0
EOM
