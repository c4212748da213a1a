#!/usr/bin/env bash
# The GPU checks of the README's speed section in one command, for a GPU node: the LMT/standard
# step ratio (W&K CNN at batch 50, WRN-16-4 at batch 128), the step phase by phase, the operations per step, certification
# against inference, and the CUDA and GPU-slot tests. Each benchmark writes its file with a
# provenance header to $OUT; a failing part does not stop the others, and the exit status is
# non-zero if any failed.
#
#   benchmarks/gpu_check.sh                      # where `make install` ran: PYTHON=.venv/bin/python
#   DEVICE=cpu STEPS=2 REPEATS=1 benchmarks/gpu_check.sh   # a dry run of the script on the CPU
#
# Settings (environment): OUT (default results/gpu_check), DEVICE (cuda), PYTHON (python3),
# STEPS (50) and REPEATS (9) of bench_training.py, PHASE_STEPS (500) of bench_phases.py, WHEELS
# (.whl, below).
#
# Offline machines whose Python already holds torch, pandas and pytest (a lent device machine):
# put wheels of foolbox, eagerpy, GitPython, gitdb and smmap for that Python in .whl/ (git-ignored;
# all five are pure Python); the script then installs them and this project into /tmp/site
# without a network (--upgrade: a rerun on the same machine replaces the copy it tests).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-results/gpu_check}
DEVICE=${DEVICE:-cuda}
PYTHON=${PYTHON:-python3}
STEPS=${STEPS:-50}
REPEATS=${REPEATS:-9}
PHASE_STEPS=${PHASE_STEPS:-500}
WHEELS=${WHEELS:-.whl}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1

if [ -d "$WHEELS" ]; then
    "$PYTHON" -m pip install --quiet --upgrade --no-index --no-deps --no-build-isolation --no-compile \
        --target /tmp/site "$WHEELS"/*.whl . || { echo "gpu_check: installing $WHEELS/ and the project failed" >&2; exit 1; }
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi

failed=0
part() {
    echo "== $*"
    "$@" || { echo "gpu_check: FAILED: $*" >&2; failed=1; }
}

if command -v nvidia-smi >/dev/null; then
    nvidia-smi > "$OUT/nvidia_smi.txt" 2>&1
fi
part "$PYTHON" benchmarks/bench_training.py --device "$DEVICE" --models wong_kolter_mnist:50 wrn_16_4:128 --compiled \
    --steps "$STEPS" --repeats "$REPEATS" --out "$OUT/training_steps_$DEVICE.md"
part "$PYTHON" benchmarks/bench_phases.py --device "$DEVICE" --models wong_kolter_mnist:50 wrn_16_4:128 \
    --steps "$PHASE_STEPS" --out "$OUT/phases_$DEVICE.md"
part "$PYTHON" benchmarks/bench_training.py --device "$DEVICE" --count-ops --out "$OUT/training_ops_$DEVICE.md"
part "$PYTHON" benchmarks/bench_pipeline.py --device "$DEVICE" --out "$OUT/pipeline_$DEVICE.md"
part "$PYTHON" -m pytest -q -p no:cacheprovider -rs tests/test_cuda.py tests/test_gpu_slots.py \
    --junitxml "$OUT/pytest_gpu.xml"
exit "$failed"
