#!/usr/bin/env bash
# Issue 15 on the GPU machine, one call: build the CLI (tools/gpu_session.sh) and the window
# (tools/gpu_gui.sh) side by side, then measure with nothing else running (STEPS, default
# "check profile bench15"), then the window on CUDA. Few files come back from a call, so the logs
# travel in one archive.
#   bash tools/gpu_issue15.sh   carry [".carry/debs", ".carry/gui.txz"] (+ ".peers" for mamba_ssm)
set -u
final=${OUT:-/tmp/statescope-out}
mkdir -p /tmp/o "$final"
start=$(date +%s)
OUT=/tmp/o/cli bash tools/gpu_session.sh build >/tmp/o/build-cli.txt 2>&1 &
cli=$!
if [[ ${GUI:-1} == 1 ]]; then
  GUI_STEP=build OUT=/tmp/o/gui bash tools/gpu_gui.sh >/tmp/o/build-gui.txt 2>&1 &
  gui=$!
  wait $gui
fi
wait $cli
echo "builds done in $(( $(date +%s) - start )) s"; tail -3 /tmp/o/build-cli.txt /tmp/o/build-gui.txt 2>/dev/null
OUT=$final bash tools/gpu_session.sh ${STEPS:-check profile bench15}
[[ ${GUI:-1} == 1 ]] && GUI_STEP=run OUT=$final bash tools/gpu_gui.sh
tar czf "$final/logs.tgz" -C /tmp/o .
