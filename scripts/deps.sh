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

if ! command -v cargo >/dev/null 2>&1; then
  # rustup installs into ~/.cargo; a login shell may not have it on PATH yet.
  [ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
fi
command -v cargo >/dev/null 2>&1 || {
  echo "deps: no Rust toolchain found; install one with rustup (Rust >= 1.85), then rerun" >&2
  exit 1
}
