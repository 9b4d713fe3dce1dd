#!/usr/bin/env bash
# Issue 15, "the window on CUDA", on the GPU machine: unpack the Debian Qt packages carried in
# .carry/gui-debs (tools/fetch_gui_debs.sh) into a prefix, build the full app (window included)
# against PyTorch's CUDA LibTorch, and run the window offscreen on a 130m-shaped model on CUDA: a
# screenshot and --stats to $OUT. This is also the documented path for a GPU workstation whose
# LibTorch is not Debian's: -DCMAKE_PREFIX_PATH="<libtorch>;<Qt prefix>".
#   bash tools/gpu_gui.sh                 (carry [".carry/debs", ".carry/gui.txz"]: the debs as one
#                                          trimmed prefix, tools/fetch_gui_debs.sh, to fit in a call)
set -u
OUT=${OUT:-/tmp/statescope-out}
mkdir -p "$OUT"
prefix=/tmp/guideps
mkdir -p "$prefix"
for f in .carry/debs/*.deb .carry/gui-debs/*.deb; do [ -f "$f" ] && dpkg -x "$f" "$prefix"; done
[ -f .carry/gui.txz ] && tar -C "$prefix" -xJf .carry/gui.txz
# Qt's CMake files check that every tool they name exists, qmake and Android's among them, which a
# CMake build never runs and the carried packages leave out: stand-ins for those that are missing.
grep -ho 'IMPORTED_LOCATION_NONE "${_IMPORT_PREFIX}/[^"]*"' "$prefix"/usr/lib/x86_64-linux-gnu/cmake/Qt6*/*Targets-none.cmake |
  sed 's|.*${_IMPORT_PREFIX}/||; s|"$||' | sort -u | while read -r f; do
  [ -e "$prefix/usr/$f" ] || { mkdir -p "$(dirname "$prefix/usr/$f")"; printf '#!/bin/sh\nexit 1\n' >"$prefix/usr/$f"; chmod +x "$prefix/usr/$f"; }
done
lib=$prefix/usr/lib/x86_64-linux-gnu
export LD_LIBRARY_PATH=$lib:$prefix/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
export QT_PLUGIN_PATH=$lib/qt6/plugins
export QT_QPA_PLATFORM=offscreen
# fontconfig's configuration and the font, from the prefix (the machine has neither).
export FONTCONFIG_PATH=$prefix/etc/fonts
sed -i "s|<dir>/usr/share/fonts</dir>|<dir>$prefix/usr/share/fonts</dir>|" "$prefix/etc/fonts/fonts.conf" 2>/dev/null
export CUDACXX=${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
# GUI_STEP=build or run does half (tools/gpu_issue15.sh builds while nothing is measured).
step=${GUI_STEP:-all}
torch=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
start=$(date +%s)
[[ $step != run ]] && {
cmake -S . -B build-gui -G Ninja -DCMAKE_BUILD_TYPE=Release -DSTATESCOPE_GUI=ON -DSTATESCOPE_TESTS=OFF \
  -DCMAKE_PREFIX_PATH="$torch;$prefix/usr;$lib/cmake" >"$OUT/gui-cmake.log" 2>&1 ||
  { tail -40 "$OUT/gui-cmake.log"; exit 1; }
ninja -C build-gui statescope statescope-cli >"$OUT/gui-build.log" 2>&1 ||
  { grep -B2 -A8 "error" "$OUT/gui-build.log" | head -80; exit 1; }
echo "built the window against CUDA LibTorch in $(( $(date +%s) - start )) s"
}
[[ $step == build ]] && exit 0
cli=build-gui/app/statescope-cli
$cli init --arch mamba2 --shape 130m --out /tmp/m130 >/dev/null || exit 1
head -c 400000 resources/texts/kjv-heldout.txt > /tmp/kjv400k.txt
timeout 300 build-gui/app/statescope --model /tmp/m130 --text /tmp/kjv400k.txt --device cuda \
  --run --quit-when-done --size 1280x720 --screenshot "$OUT/window-cuda.png" --stats 2>&1 | tee "$OUT/window-cuda-stats.txt" | tail -20
