#!/usr/bin/env bash
# CLIP ViT-B/32 throughput check on one GPU (about 3 minutes; hard stop 7.5).
# Results go to ${OUT:-bench}/gpu_check.json; extra arguments pass through,
# e.g. `bash bench/gpu_check.sh --smoke` on a CPU machine.
set -uo pipefail
cd "$(dirname "$0")/.."

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader \
  || echo "nvidia-smi: not available"

out_dir="${OUT:-bench}"
mkdir -p "$out_dir"
# The timeout keeps the whole run inside the 8-minute device limit; the
# report is rewritten after each phase, so a cut-off run still returns JSON.
PYTHONUNBUFFERED=1 timeout --kill-after=15 450 \
  "${PYTHON:-python3}" bench/gpu_check.py --out "$out_dir/gpu_check.json" "$@"
status=$?
echo "gpu_check.py exit status: $status"
exit "$status"
