#!/usr/bin/env bash
# One-shot GPU check (issue 13, goal 5), under 8 minutes on one CUDA machine:
#   1. the test suite's GPU-marked tests (pytest -m gpu)
#   2. benchmarks/bench_gpu.py: smoke-train bf16 vs a plain bf16 AdamW loop (steps/s, peak memory,
#      MFU estimate), check-logits vs a plain loop, a 2-process torchrun smoke-train on 2+ GPUs
#   3. on 2+ GPUs: benchmarks/bench_fsdp.py, smoke-train --shard fsdp vs a plain FSDP2 loop (issue 21)
#   4. benchmarks/bench_device_map.py: check-logits --device-map auto (GPU 0 capped, the rest on the CPU) vs
#      the plain load: same findings and metrics, seconds, peak GPU memory (issue 21)
# and writes a Markdown table.  Usage (with the virtualenv active, examples extra installed):
#   bash benchmarks/gpu.sh [OUT.md]          (default benchmarks/gpu-results.md)
# Without a CUDA device it prints 'no CUDA device: skipped' and exits 0.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-benchmarks/gpu-results.md}"
py="${PYTHON:-python}"
export HF_HUB_OFFLINE=1

if ! "$py" -c "import torch" 2>/dev/null; then
    echo "gpu.sh: '$py' cannot import torch; activate the project's virtualenv (or set PYTHON=/path/to/python)" >&2
    exit 2
fi
if ! "$py" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "no CUDA device: skipped"
    exit 0
fi

start=$SECONDS
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
timeout 240 "$py" -m pytest -q -m gpu -p no:cacheprovider 2>&1 | tee "$log"
tests_rc=${PIPESTATUS[0]}
summary="$(grep -E '(passed|failed|skipped|error|deselected)' "$log" | tail -n 1)"
[ "$tests_rc" -eq 124 ] && summary="timed out after 240 s; $summary"

left=$((470 - (SECONDS - start)))
timeout "$left" "$py" benchmarks/bench_gpu.py --out "$out" --pytest-summary "${summary:-no summary (exit $tests_rc)}"
bench_rc=$?
[ "$bench_rc" -eq 124 ] && echo "bench_gpu.py ran past the 8-minute budget; $out may be missing"

# FSDP2 (issue 21): smoke-train --shard fsdp against a plain FSDP2 loop with the same wrapping and batch
# (benchmarks/bench_fsdp.py: steps/s, peak CUDA memory per rank), on the largest Llama the GPUs allow:
# 40 % of all GPUs' memory for 16 bytes per parameter of training state, and the host's memory and disk for
# the fp32 checkpoint each rank loads. FSDP_SECONDS (default 300) bounds it, outside the 8 minutes above.
# NCCL takes one device per rank, so this needs 2 or more GPUs.
fsdp_rc=0
gpus="$("$py" -c "import torch; print(torch.cuda.device_count())")"
if [ "$gpus" -ge 2 ]; then
    layers="$("$py" - "$gpus" <<'PY'
import os, shutil, sys
import torch
n = int(sys.argv[1])
per_layer = 4 * 4096**2 + 3 * 4096 * (4096 * 8 // 3)  # attention + MLP parameters of one hidden-4096 block
gpu = sum(torch.cuda.get_device_properties(i).total_memory for i in range(n))
host = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
disk = shutil.disk_usage(os.environ.get("TMPDIR", "/tmp")).free
print(max(2, int(min(0.4 * gpu / 16, 0.3 * host / (n * 4 * 2), 0.3 * disk / 4) // per_layer)))
PY
)"
    timeout "${FSDP_SECONDS:-300}" "$py" benchmarks/bench_fsdp.py --device cuda --ranks "$gpus" --hidden 4096 \
        --layers "$layers" --steps 10 --pairs 3 | tee -a "$out"
    fsdp_rc=${PIPESTATUS[0]}
else
    echo "FSDP2: skipped, $gpus GPU (one process per GPU needs 2 or more)" | tee -a "$out"
fi

# --device-map auto (issue 21): check-logits on a random Llama (hidden 2048, 8 blocks, ~2 GiB fp32) with GPU 0
# capped at a third of the weights, so accelerate places the rest on the CPU; the findings and metrics must
# equal the plain load's (benchmarks/bench_device_map.py exits 1 otherwise). DEVICE_MAP_SECONDS (default 240).
timeout "${DEVICE_MAP_SECONDS:-240}" "$py" benchmarks/bench_device_map.py --device cuda --hidden 2048 --layers 8 \
    --out "$out"
map_rc=$?
echo "gpu.sh: pytest exit $tests_rc, benchmark exit $bench_rc, FSDP2 exit $fsdp_rc, device-map exit $map_rc, $((SECONDS - start)) s"
[ "$tests_rc" -eq 0 ] && [ "$bench_rc" -eq 0 ] && [ "$fsdp_rc" -eq 0 ] && [ "$map_rc" -eq 0 ]
