#!/usr/bin/env bash
# Installs the Debian packages Flotilla needs, when they are missing (through sudo when not
# root). Sourced by demo.sh and test.sh.
set -euo pipefail

flotilla_packages=(cmake g++ make libeigen3-dev libcereal-dev doctest-dev zlib1g-dev dataset-fashion-mnist
                   libasio-dev libssl-dev openssl libtorch-dev libopenmpi-dev openmpi-bin)

flotilla_install_packages() {
  local missing=()
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

flotilla_install_packages "${flotilla_packages[@]}"
FLOTILLA_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FLOTILLA_JOBS="$(nproc 2>/dev/null || echo 2)"
export FLOTILLA_ROOT FLOTILLA_JOBS
