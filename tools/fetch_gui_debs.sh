#!/usr/bin/env bash
# Issue 15, "the window on CUDA": the GPU machine has PyTorch's CUDA LibTorch but no Qt. This fetches,
# here, the Debian 12 packages the full app needs there: Qt 6 and QCustomPlot with their headers and
# CMake files, and the libraries they load that the GPU machine (Ubuntu 24.04) lacks, found by
# comparing `ldd` of Qt's libraries, its offscreen platform plugin and its moc/uic/rcc with that
# machine's `ldconfig -p` (ICU 72, fontconfig, freetype, harfbuzz, glvnd's libEGL/libOpenGL, ...).
# Not its libstdc++ or libc: the newer ones there run these. A font too, since that machine has none.
# tools/gpu_gui.sh unpacks them into a prefix there (dpkg -x) and builds against them.
#   bash tools/fetch_gui_debs.sh     # -> .carry/gui-debs/*.deb (about 25 MB), carry ".carry"
set -eu
dest=${1:-.carry/gui-debs}
mkdir -p "$dest"
runtime="libb2-1 libdouble-conversion3 libegl1 libfontconfig1 libfreetype6 libglib2.0-0 libglvnd0 libglx0
  libgl1 libgraphite2-3 libharfbuzz0b libicu72 libmd4c0 libopengl0 libpcre2-16-0 libxkbcommon0
  libqt6core6 libqt6dbus6 libqt6gui6 libqt6opengl6 libqt6printsupport6 libqt6svg6 libqt6test6
  libqt6widgets6 libqcustomplot2.1-qt6 fontconfig-config fonts-dejavu-core"
dev="qt6-base-dev qt6-base-dev-tools qt6-svg-dev libqcustomplot-dev libgl-dev libglx-dev libopengl-dev
  libegl-dev"
(cd "$dest" && apt-get download $runtime $dev)
du -sh "$dest"
