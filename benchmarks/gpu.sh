#!/usr/bin/env bash
# One-shot GPU check (issue 13, goal 5), under 8 minutes on one CUDA machine:
#   1. the test suite's GPU-marked tests (pytest -m gpu)
#   2. benchmarks/bench_gpu.py: smoke-train bf16 vs a plain bf16 AdamW loop (steps/s, peak memory,
#      MFU estimate), check-logits vs a plain loop, a 2-process torchrun smoke-train on 2+ GPUs
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
echo "gpu.sh: pytest exit $tests_rc, benchmark exit $bench_rc, $((SECONDS - start)) s"
[ "$tests_rc" -eq 0 ] && [ "$bench_rc" -eq 0 ]
