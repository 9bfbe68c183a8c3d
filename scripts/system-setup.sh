#!/usr/bin/env bash
# Prepare this machine for the system tests (`make system`, tests/system/): a real container build
# and a real systemd. Run as root on a fresh Debian 12 machine; CI runs it before the system tier.
#
# Idempotent and cached: everything slow is built once into $CACHE and reused, so a second run
# takes a few seconds. Nothing can be pulled from a container registry here, so the base images
# the project's Dockerfile names are made locally (debootstrap) and tagged with their real names:
#
#   docker.io/library/debian:bookworm-slim   debootstrap minbase, slimmed like the official image
#   docker.io/library/python:3.11-slim       FROM that, Debian's python3 (3.11) + venv + pip
#   $CACHE/nspawn-rootfs/                    a bootable rootfs: systemd, dbus, python3-venv
#   $CACHE/wheelhouse/<key>/                 the locked runtime dependencies and the build backend,
#                                            for an offline `pip install .` inside that rootfs
#   $CACHE/containers.conf                   this VM's podman quirks (runc, cgroupfs, ulimits);
#                                            the tests point CONTAINERS_CONF at it
#
# The TLS-intercepting proxy's CA files (/usr/local/share/ca-certificates) go into the test base
# rootfs only, so that images built FROM it reach PyPI. They are never part of anything shipped:
# the project's Dockerfile does not mention them.
#
# Environment: CODER_TASK_AGENT_CI_CACHE (default /var/cache/coder-task-agent-ci),
# DEBIAN_MIRROR (default http://deb.debian.org/debian). `--rebuild` drops the caches first.
set -euo pipefail

CACHE=${CODER_TASK_AGENT_CI_CACHE:-/var/cache/coder-task-agent-ci}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
DEBIAN_IMAGE=docker.io/library/debian:bookworm-slim
PYTHON_IMAGE=docker.io/library/python:3.11-slim
NSPAWN_IMAGE=localhost/coder-task-agent-ci/nspawn-base:latest
REPO=$(cd "$(dirname "$0")/.." && pwd)
# uv exports the lock; the Makefile bootstraps it into .cache/tools when it is not on PATH.
UV=${UV:-$(command -v uv || echo "$REPO/.cache/tools/bin/uv")}
export DEBIAN_FRONTEND=noninteractive

if [ "$(id -u)" != 0 ]; then
  echo "system-setup: must run as root (apt-get, debootstrap, podman, systemd-nspawn)" >&2
  exit 1
fi
if [ "${1:-}" = "--rebuild" ]; then
  rm -rf "${CACHE:?}"
  podman rmi -f "$NSPAWN_IMAGE" "$PYTHON_IMAGE" "$DEBIAN_IMAGE" >/dev/null 2>&1 || true
fi
mkdir -p "$CACHE"
# An empty build context: the cache directory itself holds hundreds of megabytes.
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT

total_start=$(date +%s.%N)
step_start=$total_start
step() { step_start=$(date +%s.%N); printf '== %s\n' "$1"; }
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
done_step() { printf '   %s (%s s)\n' "$1" "$(since "$step_start")"; }

# --- 1. packages -------------------------------------------------------------------------------
step "packages"
# systemd: systemd-analyze for the unit checks; zstd: the rootfs cache.
packages=(podman buildah debootstrap runc systemd-container systemd zstd ca-certificates)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" ||
    missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  done_step "installed: ${missing[*]}"
else
  done_step "all present"
fi

# --- 2. podman quirks, in a test-only CONTAINERS_CONF -----------------------------------------
step "containers.conf"
conf=$CACHE/containers.conf
{
  echo "# Written by scripts/system-setup.sh for the system tests only: this VM's podman quirks."
  controllers=/sys/fs/cgroup/unified/cgroup.controllers
  if [ -r "$controllers" ] && [ -n "$(tr -d '[:space:]' <"$controllers")" ]; then
    # Hybrid cgroups with controllers on the v2 side: crun refuses them, runc copes.
    echo "[engine]"
    echo 'runtime = "runc"'
    echo 'cgroup_manager = "cgroupfs"'
    echo 'events_logger = "file"'
  fi
  hard_nofile=$(ulimit -Hn)
  if [ "$hard_nofile" != unlimited ] && [ "$hard_nofile" -lt 1048576 ]; then
    # podman's default rlimits exceed this machine's hard limit and cannot be raised here.
    echo "[containers]"
    echo "default_ulimits = [\"nofile=$hard_nofile:$hard_nofile\", \"nproc=32768:32768\"]"
  fi
} >"$conf.new"
mv "$conf.new" "$conf"
export CONTAINERS_CONF=$conf
done_step "$conf: $(grep -c = "$conf" || true) settings"

have_image() { podman image exists "$1"; }

# Load an image from its cached `podman save` archive, or build it and cache it.
# $1 image, $2 archive name, $3 build function.
image_from_cache() {
  local image=$1 archive=$CACHE/$2 build=$3
  if have_image "$image"; then
    done_step "present in podman storage"
  elif [ -s "$archive" ]; then
    podman load -q -i "$archive" >/dev/null
    done_step "loaded from $archive"
  else
    "$build"
    podman save -q -o "$archive.new" "$image"
    mv "$archive.new" "$archive"
    done_step "built and cached in $archive ($(du -h "$archive" | cut -f1))"
  fi
}

# --- 3. docker.io/library/debian:bookworm-slim -------------------------------------------------
build_debian() {
  local rootfs
  rootfs=$(mktemp -d "$CACHE/debootstrap.XXXXXX")
  debootstrap --variant=minbase "$SUITE" "$rootfs" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 || {
    tail -20 "$CACHE/debootstrap.log" >&2
    exit 1
  }
  # Slim it the way the official -slim image is: no docs, man pages or translations, ever.
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/man/*
EOF
  cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  echo 'Acquire::Languages "none";' >"$rootfs/etc/apt/apt.conf.d/docker-no-languages"
  find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$rootfs"/usr/share/{man,info,groff,lintian,linda}/*
  find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log
  cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb http://deb.debian.org/debian-security $SUITE-security main
EOF
  # Test base only: trust the intercepting proxy, so that images built FROM it reach PyPI.
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    mkdir -p "$rootfs/usr/local/share/ca-certificates"
    cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
  fi
  tar --numeric-owner -C "$rootfs" -c . |
    podman import -q --change 'CMD ["bash"]' - "$DEBIAN_IMAGE" >/dev/null
  rm -rf "$rootfs"
}
step "base image $DEBIAN_IMAGE"
image_from_cache "$DEBIAN_IMAGE" debian-bookworm-slim.tar build_debian

# --- 4. docker.io/library/python:3.11-slim (stand-in) -----------------------------------------
build_python() {
  # Like the official image: python, pip, venv and CA certificates; `python` and `pip` on PATH.
  # Unlike it, the interpreter is Debian's (/usr/bin/python3.11), not one built in /usr/local.
  podman build -q --pull=never --network=host -t "$PYTHON_IMAGE" -f - "$context" >/dev/null <<EOF
FROM $DEBIAN_IMAGE
RUN apt-get update \\
 && apt-get install -y --no-install-recommends ca-certificates python3 python3-venv python3-pip \\
 && rm -rf /var/lib/apt/lists/* /usr/lib/python3.11/EXTERNALLY-MANAGED \\
 && ln -s /usr/bin/python3 /usr/local/bin/python \\
 && ln -s /usr/bin/pip3 /usr/local/bin/pip \\
 && find / -xdev -name __pycache__ -path '*/dist-packages/*' -prune -exec rm -rf {} +
CMD ["python3"]
EOF
}
step "base image $PYTHON_IMAGE (stand-in)"
image_from_cache "$PYTHON_IMAGE" python-3.11-slim.tar build_python

# --- 5. a bootable rootfs for systemd-nspawn ---------------------------------------------------
# systemd + dbus to boot, libpam-systemd for user managers (the user unit's test), python3-venv
# for the install docs/deploy.md describes. The recipe is the cache key: change it and the rootfs
# is rebuilt.
nspawn_packages="systemd systemd-sysv dbus libpam-systemd python3 python3-venv"
recipe="$SUITE: $nspawn_packages"
rootfs=$CACHE/nspawn-rootfs
step "nspawn rootfs"
if [ "$(cat "$rootfs/.complete" 2>/dev/null)" = "$recipe" ]; then
  done_step "present in $rootfs"
elif [ -s "$CACHE/nspawn-rootfs.tar.zst" ] &&
  [ "$(cat "$CACHE/nspawn-rootfs.recipe" 2>/dev/null)" = "$recipe" ]; then
  rm -rf "${rootfs:?}" && mkdir -p "$rootfs"
  zstd -dc "$CACHE/nspawn-rootfs.tar.zst" | tar --numeric-owner -C "$rootfs" -x
  echo "$recipe" >"$rootfs/.complete"
  done_step "unpacked from $CACHE/nspawn-rootfs.tar.zst"
else
  printf '%s\n' "FROM $DEBIAN_IMAGE" \
    "RUN apt-get update && apt-get install -y --no-install-recommends $nspawn_packages \\" \
    " && rm -rf /var/lib/apt/lists/* && : > /etc/machine-id" >"$context/Containerfile"
  podman build -q --pull=never --network=host -t "$NSPAWN_IMAGE" "$context" >/dev/null
  rm -rf "${rootfs:?}" && mkdir -p "$rootfs"
  container=$(podman create -q "$NSPAWN_IMAGE" /bin/true)
  podman export "$container" | tar --numeric-owner -C "$rootfs" -x
  podman rm -f "$container" >/dev/null
  # podman bind-mounts these over a container; in the export they are empty placeholders.
  rm -f "${rootfs:?}/etc/hostname" "${rootfs:?}/etc/resolv.conf" "${rootfs:?}/etc/hosts"
  echo "coder-task-agent-ci" >"$rootfs/etc/hostname"
  printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$rootfs/etc/hosts"
  tar --numeric-owner -C "$rootfs" -c . | zstd -q -T0 -o "$CACHE/nspawn-rootfs.tar.zst.new"
  mv "$CACHE/nspawn-rootfs.tar.zst.new" "$CACHE/nspawn-rootfs.tar.zst"
  echo "$recipe" >"$CACHE/nspawn-rootfs.recipe"
  echo "$recipe" >"$rootfs/.complete"
  done_step "built in $rootfs ($(du -sh "$rootfs" | cut -f1))"
fi

# --- 6. wheelhouse for an offline `pip install .` inside the nspawn rootfs -------------------
# Keyed by the lock file and the build-system table: a new lock gets a new wheelhouse.
step "wheelhouse"
key=$(cat "$REPO/uv.lock" <(sed -n '/^\[build-system\]/,/^\[/p' "$REPO/pyproject.toml") |
  sha256sum | cut -c1-16)
wheelhouse=$CACHE/wheelhouse/$key
if [ -f "$wheelhouse/.complete" ]; then
  done_step "present in $wheelhouse"
else
  rm -rf "$wheelhouse" && mkdir -p "$wheelhouse"
  build_requires=$(sed -n '/^\[build-system\]/,/^\[/p' "$REPO/pyproject.toml" |
    sed -n 's/^requires *= *\[\(.*\)\]/\1/p' | tr -d '",')
  (cd "$REPO" && "$UV" export --frozen --no-dev --no-emit-project --quiet -o "$wheelhouse/requirements.txt")
  # Downloaded by the same Debian python the nspawn rootfs has, so the wheels match it.
  podman run --rm --pull=never --network=host -v "$wheelhouse:/wheels" "$PYTHON_IMAGE" sh -ec "
    python3 -m venv /tmp/v
    /tmp/v/bin/pip download -q --disable-pip-version-check -d /wheels -r /wheels/requirements.txt
    /tmp/v/bin/pip download -q --disable-pip-version-check -d /wheels $build_requires
  " 2>&1 | tail -5
  touch "$wheelhouse/.complete"
  # Older locks' wheelhouses are of no further use.
  find "$CACHE/wheelhouse" -mindepth 1 -maxdepth 1 ! -name "$key" -exec rm -rf {} +
  done_step "downloaded $(find "$wheelhouse" -name '*.whl' | wc -l) wheels into $wheelhouse"
fi

printf '== system setup done in %s s (cache: %s)\n' "$(since "$total_start")" "$CACHE"
