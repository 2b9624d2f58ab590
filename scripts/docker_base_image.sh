#!/usr/bin/env bash
# Make a local Debian 12 (bookworm) base image for podman on a machine that reaches no container
# registry (CI, the development machine): debootstrap a minimal root file system from the Debian
# mirror that the machine's apt sources name, add the machine's extra CA certificates (its
# package traffic goes through a TLS proxy, so pip inside a build needs them), import it.
#
#   scripts/docker_base_image.sh [TAG]      # default TAG: localhost/mario-debian:bookworm
#
# Does nothing when TAG already exists in podman's store (set FORCE=1 to rebuild it).
# Needs root, podman and debootstrap (apt-get install -y podman runc debootstrap).
# Then: podman build --build-arg BASE_IMAGE=TAG ...  (see docs/DOCKER.md).
set -euo pipefail

TAG="${1:-localhost/mario-debian:bookworm}"
SUITE="${SUITE:-bookworm}"

if [[ "${FORCE:-0}" != 1 ]] && podman image exists "$TAG"; then
    echo "base image $TAG exists (FORCE=1 rebuilds it)"
    exit 0
fi
if [[ $(id -u) != 0 ]]; then
    echo "error: debootstrap needs root" >&2
    exit 1
fi

# The mirror the machine's apt already uses (deb822 .sources or one-line sources.list).
mirror_from_apt() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f "$f" ]] || continue
        awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i ~ /\/debian\/?$/) { print $i; exit } }' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f "$f" ]] || continue
        awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^https?:\/\/.*\/debian\/?$/) { print $i; exit } }' "$f"
    done
}
MIRROR="${MIRROR:-$(mirror_from_apt | head -n 1)}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"

ROOTFS="$(mktemp -d /tmp/mario-rootfs.XXXXXX)"
trap 'rm -rf "$ROOTFS"' EXIT

echo "debootstrap $SUITE from $MIRROR into $ROOTFS"
debootstrap --variant=minbase --include=ca-certificates "$SUITE" "$ROOTFS" "$MIRROR" >"$ROOTFS.log" 2>&1 || {
    tail -n 30 "$ROOTFS.log" >&2
    rm -f "$ROOTFS.log"
    exit 1
}
rm -f "$ROOTFS.log"

# The proxy's CA (and any other local CA) so that apt-get/pip inside `podman build` trust it.
shopt -s nullglob
certs=(/usr/local/share/ca-certificates/*.crt)
if ((${#certs[@]})); then
    cp "${certs[@]}" "$ROOTFS/usr/local/share/ca-certificates/"
    if ! chroot "$ROOTFS" update-ca-certificates >/dev/null 2>&1; then
        echo "error: update-ca-certificates failed in $ROOTFS" >&2
        exit 1
    fi
fi

# Smaller image: no downloaded packages or package lists (the build runs apt-get update).
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/log/*.log

tar -C "$ROOTFS" -c . | podman import \
    --change 'CMD ["bash"]' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --quiet - "$TAG" >/dev/null
echo "base image $TAG: $(podman image inspect --format '{{.Size}}' "$TAG" | numfmt --to=iec) ready"
