#!/usr/bin/env bash
# A local base image for pdp's Dockerfile where no container registry is reachable:
# a minimal Debian bookworm root filesystem made with debootstrap from the Debian
# mirror this host's apt already uses, with Python 3.11 (python3, python3-venv,
# python3-pip, python-is-python3, so that `python -m venv` works as in
# python:3.11-slim) and ca-certificates, imported as $BASE_IMAGE.
#
#   sudo scripts/docker-base.sh                 # then:
#   BASE_IMAGE=pdp-base:bookworm scripts/docker-smoke.sh
#
# Environment:
#   BASE_IMAGE    the tag to create (default pdp-base:bookworm)
#   SUITE         the Debian suite (default bookworm)
#   MIRROR        the Debian mirror (default: the first .../debian URI in
#                 /etc/apt/sources.list and /etc/apt/sources.list.d/*)
#   SECURITY_MIRROR  the security mirror (default: the .../debian-security URI there,
#                 if any); with it the image gets bookworm-security's updates
#   EXTRA_CA_DIR  a directory of *.crt files added to the image's trust store
#                 (default /usr/local/share/ca-certificates, what this host adds to
#                 its own; EXTRA_CA_DIR= for none). Needed behind a TLS-intercepting
#                 egress proxy, for pip in the build and HTTPS (JWKS) at run time.
#   KEEP_ROOTFS=1 keep the root filesystem directory (default: removed)
#
# Needs root, debootstrap (apt-get install debootstrap) and a running Docker engine.
set -euo pipefail

BASE_IMAGE="${BASE_IMAGE:-pdp-base:bookworm}"
SUITE="${SUITE:-bookworm}"
EXTRA_CA_DIR="${EXTRA_CA_DIR-/usr/local/share/ca-certificates}"
PACKAGES="python3,python3-venv,python3-pip,python-is-python3,ca-certificates"

die() { echo "docker-base: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (debootstrap and chroot need it)"
command -v debootstrap >/dev/null || die "debootstrap is missing: apt-get install -y debootstrap"
docker info >/dev/null 2>&1 || die "no Docker engine answers (docker info)"

# The mirror URIs apt uses on this host, one-line (deb URI suite…) and deb822 (URIs:).
apt_uris() {
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        case "$f" in
            *.sources) sed -n 's/^URIs:[[:space:]]*//p' "$f" | tr ' ' '\n' ;;
            *) sed -n 's/^[[:space:]]*deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]\+\).*/\2/p' "$f" ;;
        esac
    done | sed 's:/*$::' | awk 'NF && !seen[$0]++'
}
MIRROR="${MIRROR:-$(apt_uris | grep -E '/debian$' | head -n 1 || true)}"
SECURITY_MIRROR="${SECURITY_MIRROR-$(apt_uris | grep -E '/debian-security$' | head -n 1 || true)}"
[ -n "$MIRROR" ] || die "no Debian mirror found in /etc/apt/sources.list*; set MIRROR"

WORK="$(mktemp -d /var/tmp/pdp-base.XXXXXX)"
ROOTFS="$WORK/rootfs"
cleanup() {
    local m
    for m in proc sys dev/pts dev; do
        mountpoint -q "$ROOTFS/$m" 2>/dev/null && umount -l "$ROOTFS/$m" || true
    done
    if [ "${KEEP_ROOTFS:-0}" = 1 ]; then echo "root filesystem kept in $ROOTFS"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

start=$(date +%s)
echo "debootstrap $SUITE from $MIRROR into $ROOTFS"
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOTFS" "$MIRROR"

in_root() { chroot "$ROOTFS" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
                DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 "$@"; }

# The suite's updates and security updates, then no apt lists or caches in the image.
{
    echo "deb $MIRROR $SUITE main"
    echo "deb $MIRROR $SUITE-updates main"
    [ -z "$SECURITY_MIRROR" ] || echo "deb $SECURITY_MIRROR $SUITE-security main"
} > "$ROOTFS/etc/apt/sources.list"
cp /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
mount -t proc proc "$ROOTFS/proc"
in_root apt-get update -q
in_root apt-get -y -q -o Dpkg::Options::=--force-confold upgrade

if [ -n "$EXTRA_CA_DIR" ] && compgen -G "$EXTRA_CA_DIR/*.crt" >/dev/null; then
    echo "adding the CA certificates in $EXTRA_CA_DIR: $(cd "$EXTRA_CA_DIR" && echo *.crt)"
    cp "$EXTRA_CA_DIR"/*.crt "$ROOTFS/usr/local/share/ca-certificates/"
    in_root update-ca-certificates
fi

in_root apt-get clean
umount "$ROOTFS/proc"
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin \
       "$ROOTFS"/var/cache/debconf/*-old "$ROOTFS"/var/log/apt/* \
       "$ROOTFS"/var/log/dpkg.log "$ROOTFS"/var/log/bootstrap.log \
       "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* \
       "$ROOTFS"/usr/share/locale/* "$ROOTFS"/tmp/* "$ROOTFS"/root/.cache
find "$ROOTFS/usr/share/doc" -type f ! -name copyright -delete   # keep the licences
find "$ROOTFS/usr/share/doc" -type l -delete
: > "$ROOTFS/etc/resolv.conf"             # Docker provides it at run time
# As python:3.11-slim: C.UTF-8, an empty hostname, no machine-id.
: > "$ROOTFS/etc/hostname"
rm -f "$ROOTFS/etc/machine-id" "$ROOTFS/var/lib/dbus/machine-id"

echo "importing into Docker as $BASE_IMAGE"
tar --numeric-owner --xattrs -C "$ROOTFS" -c . \
    | docker import \
        -c 'ENV LANG=C.UTF-8' \
        -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        -c 'CMD ["python3"]' \
        -m "debootstrap --variant=minbase $SUITE + $PACKAGES" \
        - "$BASE_IMAGE"
docker run --rm "$BASE_IMAGE" python --version
echo "$BASE_IMAGE: $(docker image inspect -f '{{.Size}}' "$BASE_IMAGE" | awk '{printf "%.0f MB", $1/1e6}'), built in $(( $(date +%s) - start )) s"
