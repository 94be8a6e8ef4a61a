#!/usr/bin/env bash
# A Docker engine of our own, for building and running the project's
# Dockerfile and docker-compose.yml on a machine with no container registry
# (the facts behind each step are in docs/deployment.md, "Containers").
#
#   source deploy/docker/engine.sh   # then: engine_start; ...; engine_stop
#
# engine_start installs what it needs (Debian packages), starts dockerd on its
# own socket, data root and exec root under $BOOKSTORE_DOCKER_ROOT, exports
# DOCKER_HOST, and builds the base images every FROM and `image:` names:
#   debian:bookworm-slim   debootstrap minbase + this machine's extra CAs
#   rust:1-bookworm        that image + the host's own Rust toolchain
#   bookstore-postgres:15  Debian's PostgreSQL 15 behind an entrypoint that
#                          honours the official image's contract
# engine_stop stops that dockerd (and with it every container it runs).
#
# The data root is at a stable path so that a second run on the same machine
# reuses BuildKit's cargo caches; a fresh machine starts from nothing.

BOOKSTORE_DOCKER_ROOT=${BOOKSTORE_DOCKER_ROOT:-/var/tmp/bookstore-docker}
# Debian's CLI 20.10 has BuildKit built in; a newer CLI elsewhere on PATH may lack buildx.
DOCKER=/usr/bin/docker
export DOCKER_BUILDKIT=1 COMPOSE_DOCKER_CLI_BUILD=1

engine_log() { echo "[engine] $*"; }

engine_install() {
  local missing=()
  for pair in docker.io:/usr/sbin/dockerd containerd:/usr/bin/containerd runc:/usr/sbin/runc \
              iptables:/usr/sbin/iptables debootstrap:/usr/sbin/debootstrap \
              docker-compose:/usr/bin/docker-compose; do
    [ -x "${pair#*:}" ] || missing+=("${pair%%:*}")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  engine_log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

engine_start() {
  engine_install
  mkdir -p "$BOOKSTORE_DOCKER_ROOT"
  export DOCKER_HOST="unix://$BOOKSTORE_DOCKER_ROOT/docker.sock"
  if $DOCKER info >/dev/null 2>&1; then
    engine_log "reusing the dockerd already on $DOCKER_HOST"
    ENGINE_STARTED=0
  else
    # Another engine already running (a developer's) owns the host's docker0
    # bridge and iptables chains; a second one would fight it over them, so
    # we reuse it instead, on whichever socket it listens.
    local other
    if other=$(engine_running_elsewhere); then
      engine_log "reusing the dockerd already on $other"
      export DOCKER_HOST=$other
      ENGINE_STARTED=0
    else
      engine_log "starting dockerd (data root $BOOKSTORE_DOCKER_ROOT/data)"
      rm -f "$BOOKSTORE_DOCKER_ROOT/docker.sock"
      setsid dockerd --host "$DOCKER_HOST" --data-root "$BOOKSTORE_DOCKER_ROOT/data" \
        --exec-root "$BOOKSTORE_DOCKER_ROOT/exec" --pidfile "$BOOKSTORE_DOCKER_ROOT/dockerd.pid" \
        >"$BOOKSTORE_DOCKER_ROOT/dockerd.log" 2>&1 </dev/null &
      ENGINE_PID=$!
      ENGINE_STARTED=1
      for _ in $(seq 1 120); do $DOCKER info >/dev/null 2>&1 && break; sleep 0.5; done
      $DOCKER info >/dev/null || { tail -20 "$BOOKSTORE_DOCKER_ROOT/dockerd.log" >&2; return 1; }
    fi
  fi
  engine_base_images
}

# The socket of a dockerd that runs and answers, if there is one: the
# default socket, or the --host/-H of a running dockerd's command line.
engine_running_elsewhere() {
  local pid socket i
  local -a args
  for socket in unix:///var/run/docker.sock $(
    for pid in $(pgrep -x dockerd); do
      mapfile -d '' -t args <"/proc/$pid/cmdline" || continue
      for i in "${!args[@]}"; do
        case "${args[$i]}" in
          --host=* | -H=*) echo "${args[$i]#*=}" ;;
          --host | -H) echo "${args[$((i + 1))]:-}" ;;
        esac
      done
    done); do
    if DOCKER_HOST=$socket $DOCKER info >/dev/null 2>&1; then
      echo "$socket"
      return 0
    fi
  done
  return 1
}

engine_stop() {
  [ "${ENGINE_STARTED:-0}" = 1 ] || return 0
  engine_log "stopping dockerd (pid $ENGINE_PID)"
  kill -TERM "$ENGINE_PID" 2>/dev/null || true
  # dockerd stops its containers (10 s grace each, in parallel) and its containerd.
  for _ in $(seq 1 60); do kill -0 "$ENGINE_PID" 2>/dev/null || break; sleep 0.5; done
  kill -KILL "$ENGINE_PID" 2>/dev/null || true
  ENGINE_STARTED=0
}

# Bump when the recipes below change.
BASE_IMAGES_VERSION=1

# A label on each base image records what it was built from: the recipes
# (BASE_IMAGES_VERSION and postgres/), this machine's extra CA certificates
# and the host toolchain. The images are rebuilt whenever one of those
# differs (a new machine has another CA), and reused otherwise, which keeps
# the project image's layer cache valid from one run to the next.
engine_base_images() {
  local recipe here
  here=$(dirname "${BASH_SOURCE[0]}")
  recipe=$( { echo "$BASE_IMAGES_VERSION"; cat "$here"/postgres/*; rustc -V
              cat /usr/local/share/ca-certificates/*.crt 2>/dev/null; } | sha256sum | cut -c1-16)
  engine_debian_image "$recipe"
  engine_rust_image "$recipe"
  engine_postgres_image "$recipe"
}

engine_image_is() {  # IMAGE RECIPE: the image exists and was built by this recipe
  [ "$($DOCKER image inspect -f '{{index .Config.Labels "bookstore.recipe"}}' "$1" 2>/dev/null)" = "$2" ]
}

engine_debian_image() {
  engine_image_is debian:bookworm-slim "$1" && return 0
  engine_log "building debian:bookworm-slim with debootstrap"
  local mirror root
  mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  mirror=${mirror:-http://deb.debian.org/debian}
  root=$(mktemp -d "${TMPDIR:-/tmp}/bookstore-rootfs.XXXXXX")
  debootstrap --variant=minbase bookworm "$root" "$mirror" >"$BOOKSTORE_DOCKER_ROOT/debootstrap.log"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/etc/apt/sources.list
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    cp /etc/apt/sources.list.d/debian.sources "$root"/etc/apt/sources.list.d/
  else
    echo "deb $mirror bookworm main" >"$root"/etc/apt/sources.list
  fi
  # HTTPS from containers goes through this machine's intercepting proxy.
  mkdir -p "$root"/usr/local/share/ca-certificates
  cp /usr/local/share/ca-certificates/*.crt "$root"/usr/local/share/ca-certificates/ 2>/dev/null || true
  tar -C "$root" --numeric-owner -c . | $DOCKER import \
    --change 'CMD ["bash"]' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change "LABEL bookstore.recipe=$1" \
    - debian:bookworm-slim >/dev/null
  rm -rf "$root"
}

engine_rust_image() {
  engine_image_is rust:1-bookworm "$1" && return 0
  local version context toolchain
  version=$(rustc -V | awk '{print $2}')
  engine_log "building rust:1-bookworm from the host's Rust $version (tagged rust:$version-bookworm too)"
  context=$(mktemp -d "${TMPDIR:-/tmp}/bookstore-rustctx.XXXXXX")
  toolchain="$context/rustup/toolchains/$version-x86_64-unknown-linux-gnu"
  mkdir -p "$toolchain" "$context/cargo/bin"
  (cd "$(rustc --print sysroot)" && tar --exclude=./share/doc -c .) | tar -C "$toolchain" -x
  cp "$(command -v rustup)" "$context/cargo/bin/"
  for tool in cargo cargo-clippy cargo-fmt clippy-driver rustc rustdoc rustfmt; do
    ln -s rustup "$context/cargo/bin/$tool"
  done
  printf 'version = "12"\ndefault_toolchain = "%s"\nprofile = "minimal"\n' \
    "$version-x86_64-unknown-linux-gnu" >"$context/rustup/settings.toml"
  cat >"$context/Dockerfile" <<DOCKERFILE
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
      ca-certificates curl git gcc g++ libc6-dev make pkg-config libssl-dev binutils \
 && update-ca-certificates && rm -rf /var/lib/apt/lists/*
ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo \
    PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    RUSTUP_AUTO_INSTALL=0
COPY rustup /usr/local/rustup
COPY cargo /usr/local/cargo
RUN rustc -V && cargo -V
LABEL bookstore.recipe=$1
DOCKERFILE
  $DOCKER build -q -t rust:1-bookworm -t "rust:$version-bookworm" "$context" >/dev/null
  rm -rf "$context"
}

engine_postgres_image() {
  engine_image_is bookstore-postgres:15 "$1" && return 0
  engine_log "building bookstore-postgres:15 (Debian's PostgreSQL 15, the official image's contract)"
  $DOCKER build -q -t bookstore-postgres:15 --label "bookstore.recipe=$1" \
    "$(dirname "${BASH_SOURCE[0]}")/postgres" >/dev/null
}
