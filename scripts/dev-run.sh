#!/usr/bin/env bash
# `make run`: pdp for development, from a clean checkout to a decision in one command.
#
#   1. migrates the store (PDP_DATABASE_URL, default the SQLite file var/pdp.db);
#   2. publishes and activates the example policy set in policies/;
#   3. creates a development API key with the `decide` role, once: var/dev-key
#      (mode 0600), reused on later runs, replaced when the store no longer knows it;
#      and likewise a key with the `auditor` and `admin` roles for the console at
#      /console: var/dev-console-key;
#   4. creates the development token signing key (var/dev-signing-key.json) and its
#      JWKS (var/dev-jwks.json), which the server trusts (PDP_JWKS);
#   5. starts `pdp serve --dev` on $HOST:$PORT (default 127.0.0.1:8080), checks
#      that a decision for alice is an allow, and prints that call as a curl
#      command to paste; then serves in the foreground until Ctrl-C.
#
# var/ is the working directory's (run it from the project root); policies/ is the
# project's. Environment: PORT, HOST, PDP (the pdp command, default .venv/bin/pdp
# next to this script's project), PDP_* (see docs/operations.md). Development only:
# it sets PDP_DEV_MODE=1, under which anyone with the dev signing key mints tokens.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PDP="${PDP:-$ROOT/.venv/bin/pdp}"
PY="${PY:-$(dirname "$PDP")/python}"
HOST="${HOST:-127.0.0.1}"
PORT="${PORT:-8080}"
POLICIES="${POLICIES:-$ROOT/policies}"
VAR="$PWD/var"
URL="http://$HOST:$PORT"

export PDP_DEV_MODE=1
export PDP_JWKS="${PDP_JWKS:-$VAR/dev-jwks.json}"
mkdir -p "$VAR"

"$PDP" db upgrade
"$PDP" policy push "$POLICIES" --activate

# new_key FILE NAME ROLE…: create a key with these roles and keep it in $VAR/FILE (0600).
new_key() {
    local file="$1" name="$2" key
    shift 2
    key="$("$PDP" keys create --name "$name-$(date +%Y%m%d-%H%M%S)-$$" \
           $(printf -- '--role %s ' "$@") | tail -n 1)"
    (umask 077 && printf '%s\n' "$key" > "$VAR/$file.tmp")
    chmod 600 "$VAR/$file.tmp"
    mv "$VAR/$file.tmp" "$VAR/$file"
}
new_decide_key() {
    new_key dev-key dev-decide decide
    echo "created a development API key with the decide role: $VAR/dev-key"
}
new_console_key() {
    new_key dev-console-key dev-console auditor admin
    echo "created a development console key (auditor, admin): $VAR/dev-console-key"
}
[ -s "$VAR/dev-key" ] || new_decide_key
[ -s "$VAR/dev-console-key" ] || new_console_key
chmod 600 "$VAR/dev-key" "$VAR/dev-console-key"

# The signing key and JWKS are created by the first mint; the token is for alice, a
# viewer, who owns document d1: policies/documents.policy allows her to read it.
TOKEN="$("$PDP" token mint --sub alice --roles viewer --ttl 43200 --var-dir "$VAR")"
BODY="{\"subject\": {\"token\": \"$TOKEN\"}, \"action\": \"read\", \"resource\": {\"type\": \"document\", \"id\": \"d1\", \"attributes\": {\"owner\": \"alice\", \"classification\": \"internal\"}}}"

"$PDP" serve --dev --bind "$HOST:$PORT" --var-dir "$VAR" &
SERVER=$!
stop() { kill -TERM "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; }
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM
trap 'stop' EXIT

# decide: the decision ("allow", "deny") or the HTTP status of a refusal ("401").
decide() {
    DEV_KEY="$(cat "$VAR/dev-key")" BODY="$BODY" URL="$URL" "$PY" - <<'PYEOF'
import json, os, urllib.error, urllib.request
request = urllib.request.Request(
    os.environ["URL"] + "/v1/decide", data=os.environ["BODY"].encode(), method="POST",
    headers={"Authorization": "Bearer " + os.environ["DEV_KEY"],
             "Content-Type": "application/json"})
try:
    with urllib.request.urlopen(request, timeout=5) as response:
        print(json.load(response).get("decision"))
except urllib.error.HTTPError as exc:
    print(exc.code)
PYEOF
}

ready() {
    URL="$URL" "$PY" - <<'PYEOF'
import os, sys, urllib.request
try:
    with urllib.request.urlopen(os.environ["URL"] + "/readyz", timeout=1) as response:
        sys.exit(0 if response.status == 200 else 1)
except Exception:
    sys.exit(1)
PYEOF
}

for _ in $(seq 1 150); do
    ready && break
    kill -0 "$SERVER" 2>/dev/null || { echo "pdp serve stopped; see above" >&2; exit 1; }
    sleep 0.2
done
ready || { echo "pdp did not become ready at $URL/readyz" >&2; exit 1; }

RESULT="$(decide)"
if [ "$RESULT" = "401" ]; then             # a key from another store: make a new one
    echo "$VAR/dev-key is not known to this store; replacing it"
    new_decide_key
    sleep 0.5
    RESULT="$(decide)"
fi
# The console key: a 401 on the decision log means this store does not know it.
CONSOLE_STATUS="$(KEY="$(cat "$VAR/dev-console-key")" URL="$URL" "$PY" - <<'PYEOF'
import os, urllib.error, urllib.request
request = urllib.request.Request(os.environ["URL"] + "/v1/decisions?limit=1",
                                 headers={"Authorization": "Bearer " + os.environ["KEY"]})
try:
    with urllib.request.urlopen(request, timeout=5) as response:
        print(response.status)
except urllib.error.HTTPError as exc:
    print(exc.code)
PYEOF
)"
if [ "$CONSOLE_STATUS" = "401" ]; then
    echo "$VAR/dev-console-key is not known to this store; replacing it"
    new_console_key
fi

cat <<EOM

pdp is serving at $URL (development mode; Ctrl-C stops it). A decision, as a service
asks for it (alice may read document d1: expect "decision": "allow"):

curl -s $URL/v1/decide \\
  -H "Authorization: Bearer \$(cat $VAR/dev-key)" \\
  -H "Content-Type: application/json" \\
  -d '$BODY'

More tokens: PDP_DEV_MODE=1 $PDP token mint --sub bob --roles editor
Console: $URL/console (sign in with the key in $VAR/dev-console-key)
Metrics: $URL/metrics   Readiness: $URL/readyz   Docs: docs/operations.md
EOM
if [ "$RESULT" != "allow" ]; then
    echo "warning: the check above was answered '$RESULT', not allow" >&2
fi
echo "pdp dev: ready"

wait "$SERVER"
