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
  libdbus-1-3 libgl1 libgraphite2-3 libharfbuzz0b libicu72 libmd4c0 libopengl0 libpcre2-16-0 libxkbcommon0
  libqt6core6 libqt6dbus6 libqt6gui6 libqt6opengl6 libqt6printsupport6 libqt6svg6 libqt6test6
  libqt6widgets6 libqcustomplot2.1-qt6 fontconfig-config fonts-dejavu-core"
dev="qt6-base-dev qt6-base-dev-tools qt6-svg-dev libqcustomplot-dev libgl-dev libglx-dev libopengl-dev
  libegl-dev qmake6"
[ "${SKIP_DOWNLOAD:-0}" = 1 ] || (cd "$dest" && apt-get download $runtime $dev)
du -sh "$dest"

# The debs and the checkout together are over the 64 MiB a device call carries, so they also travel
# as one prefix (about 20 MB as tar.xz) without what neither the build nor an offscreen window reads:
# documentation, ICU's tools, GIO, four fonts of six. Qt's own files all stay: its CMake files check
# that every tool and plugin they name exists; tools/gpu_gui.sh unpacks .carry/gui.txz when it is there.
prefix=$(mktemp -d)
# The engine's own (PCRE2, utf8proc: .carry/debs, see tools/gpu_session.sh) go in too, so that a call
# with the window carries this one file.
for f in "$dest"/*.deb .carry/debs/*.deb; do [ -f "$f" ] && dpkg -x "$f" "$prefix"; done
lib=$prefix/usr/lib/x86_64-linux-gnu
rm -rf "$prefix"/usr/share/doc "$prefix"/usr/share/man "$prefix"/usr/share/lintian "$prefix"/usr/share/locale \
  "$lib"/metatypes "$lib"/libicuio* "$lib"/libicutest* "$lib"/libicutu* "$lib"/libgio-* "$lib"/libgobject-* \
  "$lib"/libgmodule-* "$lib"/libgthread-* "$lib"/*.a \
  "$prefix"/usr/share/fonts/truetype/dejavu/DejaVuSerif* "$prefix"/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold*
tar -C "$prefix" -cJf "$(dirname "$dest")/gui.txz" .
rm -rf "$prefix"
du -sh "$(dirname "$dest")/gui.txz"
