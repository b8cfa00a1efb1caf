#!/usr/bin/env bash
# The whole GPU check in one command (under 10 minutes on one H200): the CUDA tests, then VMAS
# collection throughput and one short run per family on CUDA, as JSON in ${OUT:-.}/gpu.json.
#   bash experiments/benchmarks/speed/gpu.sh
# On a machine whose Python lacks marlkit's dependencies, put their wheels in .whl/ first (see
# docs/benchmarks.md, "GPU check"); they are installed into /tmp/site without touching its torch.
set -uo pipefail
out=${OUT:-.}
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
timeout 150 python3 -m pytest tests/test_cuda.py -q -p no:cacheprovider --durations=0 2>&1 | tee "$out/test_cuda.log"
tests=${PIPESTATUS[0]}
timeout 240 python3 experiments/benchmarks/speed/gpu.py --json "$out/gpu.json" 2>&1 | tee "$out/gpu.log" | grep -v '^ '
bench=${PIPESTATUS[0]}
echo "tests exit $tests, benchmark exit $bench"
[ "$tests" = 0 ] && [ "$bench" = 0 ]
