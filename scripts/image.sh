#!/usr/bin/env bash
# Builds the Sluice image without a Docker daemon: the same contents as the Dockerfile
# (Python 3.11, the project's wheel and its dependencies, user 65532, entrypoint `sluice`),
# from a Debian rootfs made by mmdebstrap, assembled into an OCI image by umoci.
#
#   scripts/image.sh build    build (or reuse) the image; prints the OCI layout reference
#   scripts/image.sh archive  build, then write a docker-archive tar; prints its path
#   scripts/image.sh name     print the image name the archive carries
#
# The Debian+Python base layer is built once and cached; the layer with the wheels is rebuilt
# only when the project's sources change (the tag is a hash of them). Needs root (chroot,
# file ownership) and the Debian packages mmdebstrap, umoci and skopeo, which it installs
# with apt-get when they are missing.
#
# Environment: SLUICE_IMAGE_REPOSITORY (default sluice.local/sluice), SLUICE_DEBIAN_SOURCES
# (an apt .sources or .list file for mmdebstrap; default: this machine's own apt sources).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

REPOSITORY="${SLUICE_IMAGE_REPOSITORY:-sluice.local/sluice}"
SUITE=bookworm
# What the Dockerfile's python:3.11-slim-bookworm base provides that Sluice uses at run time
# (libstdc++6: pysimdjson's extension is C++; the slim image has it through apt).
BASE_PACKAGES="python3,ca-certificates,libstdc++6"
# usrmerge (and through it perl) is pulled in by the bootstrap only; nothing runs it later.
BASE_PURGE="usrmerge libfile-find-rule-perl libnumber-compare-perl libtext-glob-perl perl
perl-modules-5.36 libperl5.36"
IMAGE_DIR="$SLUICE_TOOLS_CACHE/image"
LAYOUT="$IMAGE_DIR/oci"
BASE_TAG="base-$SUITE-py311-v3"

source_hash() {
  # The image's tag: the contents of what goes into the wheel (committed or not), hashed, so
  # a changed source makes a new tag.
  (
    cd "$SLUICE_ROOT"
    git ls-files -co --exclude-standard -- pyproject.toml README.md operator runtime cli scripts/image.sh |
      LC_ALL=C sort | xargs sha256sum
  ) | sha256sum | cut -c1-12
}

VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' "$SLUICE_ROOT/pyproject.toml")"
TAG="$VERSION-$(source_hash)"

debian_sources() {
  if [ -n "${SLUICE_DEBIAN_SOURCES:-}" ]; then
    echo "$SLUICE_DEBIAN_SOURCES"
  elif [ -f /etc/apt/sources.list.d/debian.sources ]; then
    echo /etc/apt/sources.list.d/debian.sources
  elif [ -s /etc/apt/sources.list ]; then
    echo /etc/apt/sources.list
  else
    die "no Debian apt sources found; set SLUICE_DEBIAN_SOURCES to a .sources or .list file"
  fi
}

has_tag() {
  umoci ls --layout "$LAYOUT" 2>/dev/null | grep -qx "$1"
}

build_base() {
  has_tag "$BASE_TAG" && return 0
  local work="$IMAGE_DIR/work-base"
  rm -rf "$work"
  [ -d "$LAYOUT" ] || umoci init --layout "$LAYOUT"
  umoci new --image "$LAYOUT:$BASE_TAG"
  umoci unpack --image "$LAYOUT:$BASE_TAG" "$work"
  rmdir "$work/rootfs"
  log "bootstrapping Debian $SUITE with $BASE_PACKAGES (first time only, about 2 minutes)"
  nice -n 10 mmdebstrap --quiet --variant=essential --include="$BASE_PACKAGES" \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    "$SUITE" "$work/rootfs" "$(debian_sources)" >"$IMAGE_DIR/mmdebstrap.log" 2>&1 ||
    die "mmdebstrap failed; see $IMAGE_DIR/mmdebstrap.log"
  # shellcheck disable=SC2086 # a list of package names
  chroot "$work/rootfs" dpkg --purge --force-depends $BASE_PURGE >>"$IMAGE_DIR/mmdebstrap.log" 2>&1 ||
    die "removing bootstrap-only packages failed; see $IMAGE_DIR/mmdebstrap.log"
  rm -rf "$work/rootfs/var/cache/apt/"* "$work/rootfs/var/lib/apt/lists/"* "$work/rootfs/var/log/"*
  # Like the python images, no compiled bytecode of the standard library (13 MB); with
  # PYTHONDONTWRITEBYTECODE=1 none is written at run time either.
  find "$work/rootfs/usr/lib" -name __pycache__ -type d -prune -exec rm -rf {} +
  umoci repack --image "$LAYOUT:$BASE_TAG" "$work"
  umoci config --image "$LAYOUT:$BASE_TAG" --os linux --architecture amd64 \
    --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --config.env LANG=C.UTF-8
  rm -rf "$work"
}

build_wheels() {
  # build_wheels DIR: the project's wheel, its dependencies' wheels and pip's own wheel.
  local python="$SLUICE_ROOT/.venv/bin/python"
  [ -x "$python" ] || python="$(command -v python3)"
  "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' ||
    die "building the wheels needs Python 3.11 (the image's); make venv with PYTHON=python3.11"
  log "building the wheels of sluice $VERSION and its dependencies"
  "$python" -m pip wheel --quiet --wheel-dir "$1" --only-binary=:all: pip >/dev/null
  "$python" -m pip wheel --quiet --wheel-dir "$1" "$SLUICE_ROOT" >"$IMAGE_DIR/wheels.log" 2>&1 ||
    die "building the wheels failed; see $IMAGE_DIR/wheels.log"
}

cmd_build() {
  ensure_debs mmdebstrap umoci skopeo binutils
  mkdir -p "$IMAGE_DIR"
  exec 9>"$IMAGE_DIR/.lock"
  flock 9
  if has_tag "$TAG"; then
    echo "$LAYOUT:$TAG"
    return 0
  fi
  build_base
  local work="$IMAGE_DIR/work-$TAG"
  rm -rf "$work"
  umoci unpack --image "$LAYOUT:$BASE_TAG" "$work"
  mkdir -p "$work/rootfs/tmp/wheels"
  build_wheels "$work/rootfs/tmp/wheels"
  log "installing them into the image"
  # pip runs from its own wheel with the image's interpreter, so entry points and compiled
  # modules are the image's, not the build machine's. No bytecode, as in the Dockerfile: it
  # would add some 60 MB (the image must stay under 250 MB). Debian marks its Python as
  # managed by apt (PEP 668); in an image nothing else installs into it, and pip writes to
  # /usr/local.
  # shellcheck disable=SC2016 # expanded by the image's shell
  env -i PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 "$(command -v chroot)" "$work/rootfs" /bin/sh -c 'set -e
    cd /tmp/wheels
    pip_wheel=$(ls pip-*.whl)
    python3 "$pip_wheel/pip" install --quiet --no-cache-dir --no-index --find-links . \
      --no-compile --root-user-action=ignore --break-system-packages --no-warn-script-location \
      --disable-pip-version-check sluice
    # What the Dockerfile'"'"'s useradd writes (the essential variant has no useradd).
    echo "sluice:x:65532:65532::/home/sluice:/usr/sbin/nologin" >>/etc/passwd
    echo "sluice:!:20000:0:99999:7:::" >>/etc/shadow
    echo "sluice:x:65532:" >>/etc/group' \
    >"$IMAGE_DIR/install.log" 2>&1 || die "installing the wheels failed; see $IMAGE_DIR/install.log"
  # Debug symbols out of the compiled extensions, as the Dockerfile's build stage does:
  # uvloop's alone are 12 of its 14 MB, and the image must stay under 250 MB. Only the
  # extension modules: the libraries wheels bundle (*.libs/) are left as they came.
  find "$work/rootfs/usr/local/lib" -path '*-packages/*' -name '*.so' -not -path '*.libs/*' \
    -exec strip --strip-unneeded {} + || die "stripping the compiled extensions failed"
  # Every module loads (compiled extensions find their libraries); test helpers aside.
  # shellcheck disable=SC2016 # expanded by the image's shell
  env -i PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 "$(command -v chroot)" "$work/rootfs" /bin/sh -c '
    PYTHONDONTWRITEBYTECODE=1 python3 -c "import importlib, pkgutil, sluice_operator, sluice_runtime
for package in (sluice_operator, sluice_runtime):
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + \".\"):
        if \".testing\" not in module.name:
            importlib.import_module(module.name)"' \
    >>"$IMAGE_DIR/install.log" 2>&1 || die "the installed modules do not load; see $IMAGE_DIR/install.log"
  rm -rf "$work/rootfs/tmp/wheels" "$work/rootfs/root/.cache"
  umoci repack --image "$LAYOUT:$TAG" "$work"
  # What the Dockerfile says after its RUN lines, one for one.
  umoci config --image "$LAYOUT:$TAG" --config.user 65532:65532 \
    --config.env PYTHONUNBUFFERED=1 --config.env PYTHONDONTWRITEBYTECODE=1 \
    --config.exposedports 9090/tcp --config.entrypoint sluice --config.cmd=--help \
    --config.label "org.opencontainers.image.version=$VERSION"
  rm -rf "$work"
  # Older builds of the project go; the base stays.
  local old
  for old in $(umoci ls --layout "$LAYOUT"); do
    [ "$old" = "$BASE_TAG" ] || [ "$old" = "$TAG" ] || umoci rm --image "$LAYOUT:$old"
  done
  umoci gc --layout "$LAYOUT"
  echo "$LAYOUT:$TAG"
}

cmd_archive() {
  cmd_build >/dev/null
  local tar="$IMAGE_DIR/sluice-$TAG.tar"
  if [ ! -s "$tar" ]; then
    rm -f "$IMAGE_DIR"/sluice-*.tar
    skopeo copy --quiet "oci:$LAYOUT:$TAG" "docker-archive:$tar.tmp:$REPOSITORY:$TAG"
    mv "$tar.tmp" "$tar"
  fi
  echo "$tar"
}

case "${1:-}" in
build) cmd_build ;;
archive) cmd_archive ;;
name) echo "$REPOSITORY:$TAG" ;;
*)
  echo "usage: $0 build|archive|name" >&2
  exit 2
  ;;
esac
