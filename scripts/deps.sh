#!/usr/bin/env bash
# Install what Warren's tests, labs and demo need on Debian/Ubuntu (as root). Idempotent: only
# missing packages are installed, so repeated runs cost nothing.
set -euo pipefail

packages=(
  iproute2        # ip: labs compare Warren with iproute2, tests build topologies
  nftables        # nft: Warren's firewall applies its table through `nft -j -f -`
  iputils-ping    # ping inside namespaces
  busybox-static  # httpd/nc/sh for lab services and container root filesystems
  util-linux      # unshare/nsenter/setpriv: the test sandbox
  curl            # raw HTTP checks of the API
  openssl         # throwaway certificates for the mutual-TLS tests
  procps          # sysctl/pgrep in labs
  dnsutils        # dig: DNS tests query the embedded resolver (flags, TCP, EDNS sizes)
  dnsmasq-base    # dnsmasq: the "outside" upstream resolver in DNS forwarding tests
  libseccomp-dev  # the libseccomp crate links the C libseccomp (seccomp profiles -> BPF)
  pkg-config      # ... and finds it with pkg-config at build time
  gcc             # the hostile-container probes: a static C program (tests/confinement/probe.c)
  libc6-dev       # ... linked against glibc's static libc.a
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Docker 20.10's default seccomp profile as Debian 12 ships it: the seccomp unit test compares
# Warren's built-in profile with it (plus the documented changes since). Only that one file is
# kept from the package; an existing copy is left alone.
docker_profile=/var/cache/warren-test/docker-seccomp-default.json
if [ ! -s "$docker_profile" ]; then
  echo "deps: fetching Docker's seccomp profile (golang-github-docker-docker-dev)"
  work=$(mktemp -d)
  chmod 755 "$work" # apt-get download drops root and writes as _apt
  if ! (cd "$work" && apt-get download -qq golang-github-docker-docker-dev 2>/dev/null); then
    apt-get update -qq
    (cd "$work" && apt-get download -qq golang-github-docker-docker-dev)
  fi
  dpkg-deb --fsys-tarfile "$work"/golang-github-docker-docker-dev_*.deb |
    tar -xO ./usr/share/gocode/src/github.com/docker/docker/profiles/seccomp/default.json \
      >"$work/default.json"
  mkdir -p "$(dirname "$docker_profile")"
  mv "$work/default.json" "$docker_profile"
  rm -rf "$work"
fi

if ! command -v cargo >/dev/null 2>&1; then
  # rustup installs into ~/.cargo; a login shell may not have it on PATH yet.
  [ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
fi
command -v cargo >/dev/null 2>&1 || {
  echo "deps: no Rust toolchain found; install one with rustup (Rust >= 1.85), then rerun" >&2
  exit 1
}
