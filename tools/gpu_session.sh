#!/usr/bin/env bash
# What one call on the GPU machine does (numbers in docs/benchmarks.md): build the engine and CLI against
# PyTorch's LibTorch, make the reference fixtures with transformers and the Rust tokenizers library,
# check CUDA parity and benchmark. Steps are chosen by name: build fixtures goldens check bench hfbench.
# Results go to $OUT.
#
# The GPU machine has no PCRE2 or utf8proc headers. Before the call, here:
#   mkdir -p .carry/debs && (cd .carry/debs && apt-get download libpcre2-dev libpcre2-8-0 libutf8proc-dev libutf8proc2 libdeflate-dev libdeflate0)
# and name ".carry" (plus "corpus" for training) in the call's carry list.
set -u
OUT=${OUT:-/tmp/statescope-out}
mkdir -p "$OUT"
steps=" $* "
log() { echo "== $*"; }

mkdir -p /tmp/deps
for f in .carry/debs/*.deb; do [ -f "$f" ] && dpkg -x "$f" /tmp/deps; done
# Or the same inside the window's prefix (tools/fetch_gui_debs.sh), when only that travels.
[ ! -d .carry/debs ] && [ -f .carry/gui.txz ] && tar -C /tmp/deps -xJf .carry/gui.txz
export LD_LIBRARY_PATH=/tmp/deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
cli=build-cuda/app/statescope-cli
# nvcc for the fused kernels (engine/kernels), where the machine has one.
export CUDACXX=${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}

if [[ $steps == *" build "* ]]; then
  log build
  prefix=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
  start=$(date +%s)
  # The NCCL headers of the nvidia-nccl wheel PyTorch runs with: data-parallel training over NCCL.
  nccl=$(python3 -c 'import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], "include"))' 2>/dev/null)
  # No Qt here even where the window's prefix was unpacked into /tmp/deps: the CLI build stays Qt-free.
  cmake -S . -B build-cuda -G Ninja -DCMAKE_BUILD_TYPE=Release -DSTATESCOPE_GUI=OFF -DCMAKE_DISABLE_FIND_PACKAGE_Qt6=ON \
    -DSTATESCOPE_NCCL_INCLUDE="$nccl" \
    -DCMAKE_PREFIX_PATH="$prefix;/tmp/deps/usr" ${CMAKE_EXTRA:-} >"$OUT/cmake.log" 2>&1 || { tail -40 "$OUT/cmake.log"; exit 1; }
  grep "data-parallel" "$OUT/cmake.log"
  if ! ninja -C build-cuda statescope-cli >"$OUT/build.log" 2>&1; then
    grep -B2 -A8 "error" "$OUT/build.log" | head -60
    echo "build with NCCL failed; again without (Gloo for CUDA tensors)"
    cmake build-cuda -DSTATESCOPE_NCCL_INCLUDE= >>"$OUT/cmake.log" 2>&1
    ninja -C build-cuda statescope-cli >"$OUT/build.log" 2>&1 || { grep -B2 -A8 "error" "$OUT/build.log" | head -120; exit 1; }
  fi
  echo "built in $(( $(date +%s) - start )) s"
fi

if [[ $steps == *" fixtures "* ]]; then
  log fixtures
  python3 tools/make_mamba2_fixtures.py --out tests/data/mamba2 || exit 1
  tar czf "$OUT/mamba2-fixtures.tgz" tests/data/mamba2
fi

if [[ $steps == *" fixtures1 "* ]]; then
  log fixtures1
  python3 tools/make_mamba1_fixtures.py --out tests/data/mamba 2>&1 | tee "$OUT/fixtures1.log" || exit 1
  tar czf "$OUT/mamba-fixtures.tgz" tests/data/mamba
fi

if [[ $steps == *" goldens "* ]]; then
  log goldens
  python3 tools/make_tokenizer_goldens.py && cp tests/data/tokenizer/goldens.json "$OUT/" 
fi

if [[ $steps == *" check "* ]]; then
  log check
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  fixtures=${FIXTURES:-tests/data/mamba2/*/}
  for fx in $fixtures; do
    $cli check --fixture "$fx" --device cpu --chunk-sizes 1,7,64,256,1000 --rtol 1e-4 | tail -6
    $cli check --fixture "$fx" --device cpu --reference --rtol 1e-4 | tail -6
    $cli check --fixture "$fx" --device cuda --chunk-sizes 7,256,1000 --rtol 1e-4
    $cli check --fixture "$fx" --device cuda --dtype bfloat16 --chunk-sizes 256 --rtol 1 
    $cli check --fixture "$fx" --device cuda --dtype float16 --chunk-sizes 256 --rtol 1 | tail -6
  done 2>&1 | tee "$OUT/check.log"
fi

# RWKV-5.2 / RWKV-6 (issue 12): the fixtures from the float64 script, their parity on CPU and CUDA
# (float32 against 1e-4; bf16 measured), and bench for the RWKV-6 1.6B and RWKV-5 0.4B shapes.
if [[ $steps == *" rwkv "* ]]; then
  log rwkv
  python3 tools/make_rwkv_fixtures.py --out tests/data 2>&1 | tee "$OUT/rwkv-fixtures.log" || exit 1
  tar czf "$OUT/rwkv-fixtures.tgz" tests/data/rwkv5 tests/data/rwkv6 tests/data/bad/rwkv-5.1.pth
  for fx in tests/data/rwkv5/*/ tests/data/rwkv6/*/; do
    echo "## $fx"
    $cli check --fixture "$fx" --device cpu --chunk-sizes 1,7,64,256,1000 --rtol 1e-4 | tail -3
    $cli check --fixture "$fx" --device cpu --reference --rtol 1e-4 | tail -2
    $cli check --fixture "$fx" --device cuda --chunk-sizes 7,256,1000 --rtol 1e-4 | tail -4
    $cli check --fixture "$fx" --device cuda --dtype bfloat16 --chunk-sizes 256 --rtol 1 | tail -3
  done 2>&1 | tee "$OUT/rwkv-check.log"
  {
    for dt in bfloat16 float32; do
      $cli bench --arch rwkv6 --shape 1.6b --device cuda --dtype $dt --tokens 2048,16384,65536 --chunk-size 8192 --repeat 2 --json "$OUT/bench-rwkv6-1.6b-$dt.json"
      $cli bench --arch rwkv5 --shape 0.4b --device cuda --dtype $dt --tokens 2048,16384,65536 --chunk-size 8192 --repeat 2 --json "$OUT/bench-rwkv5-0.4b-$dt.json"
    done
    $cli bench --arch rwkv6 --shape 1.6b --device cuda --dtype bfloat16 --tokens 65536 --chunk-size 8192 --repeat 2 --no-trace
    $cli bench --arch mamba2 --shape 1.3b --device cuda --dtype bfloat16 --tokens 65536 --chunk-size 8192 --repeat 2 --no-trace
  } 2>&1 | tee "$OUT/rwkv-bench.log"
fi

# HGRN-2 / GLA (issue 13): the fla fixtures from the float64 script and the SentencePiece-style tokenizers
# with their goldens (Rust tokenizers, sentencepiece, transformers), parity on CPU and CUDA (float32
# against 1e-4; bf16 measured), and bench for the 1.3B shapes beside Mamba-2 1.3B.
if [[ $steps == *" fla "* ]]; then
  log fla
  # $OUT brings back at most eight files: the logs travel inside the archive.
  python3 tools/make_fla_fixtures.py --out tests/data 2>&1 | tee fla-fixtures.log || exit 1
  # FLA_TOKENIZERS=0 keeps the committed tokenizer files (goldens and CLI tests name their ids).
  if [[ ${FLA_TOKENIZERS:-1} == 1 ]]; then
    python3 tools/make_spm_tokenizers.py 2>&1 | tee spm-tokenizers.log || exit 1
  else
    echo "tokenizers kept" >spm-tokenizers.log
  fi
  tar czf "$OUT/fla-fixtures.tgz" tests/data/hgrn2 tests/data/gla tests/data/tokenizer/spm resources/tokenizers/llama-style.json \
    fla-fixtures.log spm-tokenizers.log
  for fx in tests/data/hgrn2/*/ tests/data/gla/*/; do
    echo "## $fx"
    $cli check --fixture "$fx" --device cpu --chunk-sizes 1,7,64,256,1000 --rtol 1e-4 | tail -4
    $cli check --fixture "$fx" --device cpu --reference --rtol 1e-4 | tail -4
    $cli check --fixture "$fx" --device cuda --chunk-sizes 7,256,1000 --rtol 1e-4 | tail -4
    $cli check --fixture "$fx" --device cuda --dtype bfloat16 --chunk-sizes 256 --rtol 1 | tail -4
    # The mitigations and old-context probes on CUDA against the CPU (float32 both).
    python3 -c "import h5py,sys;open('/tmp/ids.txt','w').write(' '.join(map(str,h5py.File(sys.argv[1])['ids'][:])))" "$fx/reference.h5"
    for dev in cpu cuda; do
      $cli run --model "$fx" --ids /tmp/ids.txt --out /tmp/mit-$dev.h5 --device $dev --chunk-size 64 --quiet \
        --mitigate alpha=0.99,window=48,snapshot=8 --old-context 32
    done
    python3 - <<'PY'
import h5py, numpy as np
a, b = h5py.File("/tmp/mit-cpu.h5"), h5py.File("/tmp/mit-cuda.h5")
worst = {"nll": float(np.nanmax(np.abs(a["nll"][:] - b["nll"][:]) / (np.abs(a["nll"][:]) + 1e-6)))}
for k in a["probes"]:
    x, y = a["probes"][k][:], b["probes"][k][:]
    worst[k] = float(np.max(np.abs(x - y) / (np.abs(x) + 1e-6)))
print("  mitigations + old context, CUDA vs CPU max rel:", " ".join(f"{k} {v:.2e}" for k, v in worst.items()))
PY
  done 2>&1 | tee "$OUT/fla-check.log"
  [[ ${FLA_BENCH:-1} == 1 ]] && {
    for arch in hgrn2 gla; do
      for dt in bfloat16 float32; do
        $cli bench --arch $arch --shape 1.3b --device cuda --dtype $dt --tokens 2048,16384,65536 --chunk-size 8192 --repeat 2 --json "$OUT/bench-$arch-1.3b-$dt.json"
      done
      $cli bench --arch $arch --shape 1.3b --device cuda --dtype bfloat16 --tokens 65536 --chunk-size 8192 --repeat 2 --no-trace
    done
    $cli bench --arch mamba2 --shape 1.3b --device cuda --dtype bfloat16 --tokens 65536 --chunk-size 8192 --repeat 2 --no-trace
  } 2>&1 | tee "$OUT/fla-bench.log"
fi

# The CLI tests (no Qt there), CUDA parity among them.
if [[ $steps == *" ctest "* ]]; then
  log ctest
  (cd build-cuda && ninja >/dev/null && ctest -j 8 --output-on-failure) 2>&1 | tail -25 | tee "$OUT/ctest.log"
fi

if [[ $steps == *" bench "* ]]; then
  log bench
  {
    $cli bench --device cuda --dtype bfloat16 --shape 130m --tokens 2048,16384,65536 --chunk-size 8192 --repeat 3 --json "$OUT/bench-statescope-bf16.json"
    $cli bench --device cuda --dtype bfloat16 --shape 130m --tokens 2048,16384,65536 --chunk-size 8192 --repeat 3 --no-trace
    $cli bench --device cuda --dtype bfloat16 --shape 130m --tokens 65536 --chunk-size 32768 --repeat 2 --no-trace
    $cli bench --device cuda --dtype float32 --shape 130m --tokens 2048,16384,65536 --chunk-size 8192 --repeat 2
    [[ $steps == *" hfbench "* ]] && python3 tools/bench_transformers.py --tokens 2048,16384,65536 --dtype bfloat16 --json "$OUT/bench-transformers-bf16.json"
  } 2>&1 | tee "$OUT/bench.log"
fi

# Greedy decode tokens/s (issue 11): StateScope with and without its CUDA graph, beside mamba_ssm's
# generate (with and without its graph) and transformers' generate, in the same call. Needs .peers
# (a copy of ../shared/peers) carried along.
if [[ $steps == *" decode "* ]]; then
  log decode
  {
    for shape in 130m 1.3b; do
      for g in "" --no-cuda-graph; do
        $cli generate --shape $shape --device cuda --dtype bfloat16 --prompt-tokens 1024 --max-new-tokens 512 \
          --batch 1 $g --print-ids --json "$OUT/generate-$shape${g:+-nograph}.json" >/dev/null
      done
      $cli generate --shape $shape --device cuda --dtype bfloat16 --prompt-tokens 1024 --max-new-tokens 256 \
        --batch 8 --print-ids >/dev/null
    done
    $cli generate --shape 130m --device cuda --dtype float32 --prompt-tokens 1024 --max-new-tokens 512 --print-ids >/dev/null
    # The graph replays the eager step's kernels: the tokens must be the same.
    for shape in 130m 1.3b; do
      python3 -c "import json,sys; a,b=(json.load(open(f))['tokens'] for f in sys.argv[1:]); print('$shape graph tokens == eager tokens:', a==b)" \
        "$OUT/generate-$shape.json" "$OUT/generate-$shape-nograph.json"
    done
    python3 tools/bench_generate.py --peers .peers --shapes 130m,1.3b --prompt-tokens 1024 --new-tokens 512 \
      --json "$OUT/bench-generate-peers.json"
  } 2>&1 | tee "$OUT/decode.log"
fi

# transformers' greedy tokens for the g1 fixture (tests/models/TestGenerate.cpp compares), and the
# positional mitigations on CUDA (they must run there as on the CPU, and the paths agree).
if [[ $steps == *" genfixture "* ]]; then
  log genfixture
  {
    python3 tools/make_generate_fixture.py && cp tests/data/mamba2/hf-g1-tied/generate.json "$OUT/"
    fx=tests/data/mamba2/hf-g1-tied
    echo "a b c d e f g h a b c d e f g h" > /tmp/cal.txt
    python3 -c "import h5py;print(' '.join(map(str,h5py.File('$fx/reference.h5')['ids'][:200])))" > /tmp/prompt.ids
    for m in none window=16,snapshot=1 window=64 clip=1.5,every=4 renorm alpha=0.99,B=0.75; do
      for dev in cpu cuda; do
        for ref in "" --reference; do
          $cli generate --model $fx --ids /tmp/prompt.ids \
            --max-new-tokens 16 --device $dev $ref --mitigate $m --calibrate /tmp/cal.txt --print-ids 2>&1 \
            | sed "s/^/$m $dev ${ref:-chunked}: /"
        done
      done
    done
  } 2>&1 | tee "$OUT/genfixture.log"
fi

# Passkey retrieval over a random 130m-shaped model, for its time only (random weights retrieve nothing).
if [[ $steps == *" passkeytime "* ]]; then
  log passkeytime
  {
    rm -rf /tmp/pk130m && $cli init --out /tmp/pk130m --shape 130m --vocab gpt-neox --seed 1 >/dev/null
    TIMEFORMAT="passkey wall %R s"
    time $cli passkey --model /tmp/pk130m --lengths 1K:16K:3K \
      --samples 10 --batch 10 --device cuda --dtype bfloat16 --out "$OUT/passkey-130m-random.h5" --quiet
    TIMEFORMAT="passkey (batch 1) wall %R s"
    time $cli passkey --model /tmp/pk130m --lengths 4K \
      --samples 10 --batch 1 --device cuda --dtype bfloat16 --out /tmp/pk-b1.h5 --quiet
  } 2>&1 | tee "$OUT/passkeytime.log"
fi

# Mamba-1 (130m shape) beside transformers' MambaForCausalLM in the same call.
if [[ $steps == *" benchmamba "* ]]; then
  log benchmamba
  {
    $cli bench --arch mamba --device cuda --dtype bfloat16 --shape 130m --tokens 2048,16384,65536 --chunk-size 8192 --repeat 2 --json "$OUT/bench-mamba-statescope-bf16.json"
    $cli bench --arch mamba --device cuda --dtype bfloat16 --shape 130m --tokens 2048,16384,65536 --chunk-size 8192 --repeat 2 --no-trace
    $cli bench --arch mamba --device cuda --dtype float32 --shape 130m --tokens 2048,16384 --chunk-size 8192 --repeat 2
    python3 tools/bench_transformers.py --arch mamba --tokens 2048,16384 --dtype bfloat16 --repeat 2
    python3 tools/bench_transformers.py --arch mamba --tokens 2048,16384 --dtype float32 --repeat 2
  } 2>&1 | tee "$OUT/bench-mamba.log"
fi

# Issue 15: where the GPU time goes (PyTorch's profiler around one run of 16K tokens, trace off,
# summed by kernel and by launching operator), for the 130m and 1.3b shapes.
if [[ $steps == *" profile "* ]]; then
  log profile
  for shape in ${PROFILE_SHAPES:-130m 1.3b}; do
    $cli bench --shape $shape --device cuda --dtype bfloat16 --tokens 16384 --chunk-size 8192 --no-trace \
      ${PROFILE_ARGS:-} --profile /tmp/profile-$shape.json >/dev/null || continue
    python3 tools/profile_summary.py /tmp/profile-$shape.json --top 40 | tee "$OUT/profile-$shape.txt" | head -60
  done
  tar czf "$OUT/profiles.tgz" -C /tmp $(cd /tmp && ls profile-*.json)
fi

# Nsight Compute on the scan's kernels (issue 15): one launch of each of NCU_KERNELS after the
# warm-up, the full section set, as a report and its text. Build with CMAKE_EXTRA=-DCMAKE_CUDA_FLAGS=-lineinfo
# for the source view.
if [[ $steps == *" ncu "* ]]; then
  log ncu
  for shape in ${NCU_SHAPES:-1.3b}; do
    ncu --clock-control none --kernel-name "regex:${NCU_KERNELS:-ssdChunkScan|ssdChunkState}" \
      --launch-skip ${NCU_SKIP:-8} --launch-count ${NCU_COUNT:-3} --set full --import-source yes \
      -f -o "$OUT/ncu-$shape" $cli bench --shape $shape --device cuda --dtype bfloat16 --tokens 16384 \
      --chunk-size 8192 --repeat 1 --no-trace ${NCU_ARGS:-} >"$OUT/ncu-$shape.run.log" 2>&1
    tail -3 "$OUT/ncu-$shape.run.log"
    ncu --import "$OUT/ncu-$shape.ncu-rep" --page details >"$OUT/ncu-$shape.txt" 2>&1
    ncu --import "$OUT/ncu-$shape.ncu-rep" --page raw >"$OUT/ncu-$shape.raw.txt" 2>&1
    ncu --import "$OUT/ncu-$shape.ncu-rep" --page source --csv --print-source cuda,sass 2>&1 |
      gzip >"$OUT/ncu-$shape.source.csv.gz"
    grep -E "^  [a-zA-Z].*\(|Duration|Compute \(SM\) Throughput|Memory Throughput|Achieved Occupancy|Registers Per|Warp Cycles Per Issued|Issued Ipc" "$OUT/ncu-$shape.txt" | head -60
  done
fi

# The tensor-core scan against the float32 kernels, trace off (issue 15).
if [[ $steps == *" tcscan "* ]]; then
  log tcscan
  for shape in ${BENCH_SHAPES:-130m 1.3b 2.7b}; do
    for flag in "" --no-tensor-core-scan; do
      $cli bench --shape $shape --device cuda --dtype bfloat16 --tokens 16384,65536 --chunk-size 8192 \
        --repeat ${REPEAT:-2} --no-trace $flag
    done
  done 2>&1 | tee "$OUT/tcscan.log"
fi

# The scan's chunk length on CUDA (STATESCOPE_SCAN_CHUNK; the config's, 256, by default): trace off,
# 64K tokens, each length in SCAN_CHUNKS for each shape in SCANQ_SHAPES.
if [[ $steps == *" scanq "* ]]; then
  log scanq
  for q in ${SCAN_CHUNKS:-64 128 256}; do
    for shape in ${SCANQ_SHAPES:-1.3b 130m}; do
      echo "# STATESCOPE_SCAN_CHUNK=$q"
      STATESCOPE_SCAN_CHUNK=$q $cli bench --shape $shape --device cuda --dtype bfloat16 --tokens 65536 \
        --chunk-size 8192 --repeat ${REPEAT:-2} --no-trace
    done
  done 2>&1 | tee "$OUT/scanq.log"
fi

# Issue 15's targets measured in one call: StateScope (engine, trace with float32 and float16 probes)
# beside mamba_ssm (a copy of ../shared/peers carried as .peers) and transformers, 16K and 64K tokens.
if [[ $steps == *" bench15 "* ]]; then
  log bench15
  {
    nvidia-smi --query-gpu=name,driver_version,clocks.sm,memory.used --format=csv,noheader
    for shape in ${BENCH_SHAPES:-130m 1.3b 2.7b}; do
      $cli bench --shape $shape --device cuda --dtype bfloat16 --tokens 16384,65536 --chunk-size 8192 \
        --repeat ${REPEAT:-2} --no-trace ${BENCH_ARGS:-} --json "/tmp/bench-$shape-engine.json"
      [[ $shape != 2.7b && ${LIBTORCH_PATH:-1} == 1 ]] && $cli bench --shape $shape --device cuda --dtype bfloat16 --tokens 16384,65536 \
        --chunk-size 8192 --repeat ${REPEAT:-2} --no-trace --no-fused-kernels
      for precision in ${PRECISIONS:-float32 float16}; do
        $cli bench --shape $shape --device cuda --dtype bfloat16 --tokens 16384,65536 --chunk-size 8192 \
          --repeat ${REPEAT:-2} --probe-precision $precision ${BENCH_ARGS:-} --json "/tmp/bench-$shape-trace-$precision.json"
      done
    done
    [ -d .peers ] && python3 tools/bench_mamba_ssm_shapes.py --peers .peers --shapes "${PEER_SHAPES:-130m,1.3b,2.7b}"
  } 2>&1 | tee "$OUT/bench15.log"
fi

# transformers' Mamba2ForCausalLM (its plain-PyTorch path here) on the issue-15 shapes, 16K and 64K.
if [[ $steps == *" hfbench15 "* ]]; then
  log hfbench15
  for shape in ${HF_SHAPES:-130m 1.3b 2.7b}; do
    python3 tools/bench_transformers.py --shape $shape --tokens 16384,65536 --repeat 1 --dtype bfloat16 \
      --json "$OUT/bench-transformers-$shape.json"
  done 2>&1 | tee "$OUT/hfbench15.log"
fi

# Issue 15's million-token traced runs in the default settings (--probe-precision auto): wall time,
# tokens/s, trace bytes a token and the process's peak RSS.
if [[ $steps == *" trace1m "* ]]; then
  log trace1m
  for shape in ${TRACE1M_SHAPES:-2.7b}; do
    python3 - "$cli" "$shape" ${TRACE1M_ARGS:-} <<'PY' 2>&1 | tee -a "$OUT/trace1m.log"
import resource, subprocess, sys, time
cli, shape, extra = sys.argv[1], sys.argv[2], sys.argv[3:]
cmd = [cli, "bench", "--shape", shape, "--device", "cuda", "--dtype", "bfloat16", "--tokens", "1048576",
       "--chunk-size", "8192", *extra]
print("$", " ".join(cmd), flush=True)
start = time.time()
rc = subprocess.call(cmd)
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 ** 2
print(f"{shape}: rc {rc}, wall {time.time() - start:.1f} s (with the warm-up), peak RSS {rss:.2f} GB", flush=True)
PY
  done
fi

# Issue 15's fused kernels: each against its LibTorch reference on random inputs, and the Mamba-2
# fixtures' stored numbers through the fused path and through the LibTorch path on CUDA.
if [[ $steps == *" kernels "* ]]; then
  log kernels
  {
    grep "fused CUDA kernels" build-cuda/CMakeCache.txt /tmp/o/cli/cmake.log 2>/dev/null | head -2
    $cli kernel-check
    for fx in tests/data/mamba2/*/; do
      echo "## $fx"
      $cli check --fixture "$fx" --device cuda --chunk-sizes 7,64,256,1000 --rtol 1e-4 | grep -v "^  "
      $cli check --fixture "$fx" --device cuda --chunk-sizes 7,256 --rtol 1e-4 --no-fused-kernels | grep -v "^  "
      $cli check --fixture "$fx" --device cuda --dtype bfloat16 --chunk-sizes 256 --rtol 1 | tail -4
      $cli check --fixture "$fx" --device cuda --dtype bfloat16 --chunk-sizes 256 --rtol 1 --no-tensor-core-scan | tail -4
    done
  } 2>&1 | tee "$OUT/kernels.log"
fi
