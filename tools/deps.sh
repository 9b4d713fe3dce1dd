#!/usr/bin/env bash
# Installs StateScope's build and test dependencies on Debian 12 (only what is missing).
set -euo pipefail
packages=(cmake g++ ninja-build pkg-config
  qt6-base-dev qt6-base-dev-tools qt6-svg-dev libqcustomplot-dev libqcustomplot2.1-qt6
  libtorch-dev libopenblas0-openmp libhdf5-dev nlohmann-json3-dev libcli11-dev
  libpcre2-dev libutf8proc-dev zlib1g-dev libdeflate-dev libgl-dev xvfb xauth fonts-dejavu-core
  libgloo-dev time python3)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
