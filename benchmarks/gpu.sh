#!/usr/bin/env bash
# The GPU checks and measurements, sized for a lent GPU's few minutes (docs/PERFORMANCE.md,
# "On a GPU"), each phase under its own time limit so that one failing leaves the others:
#   1. the CUDA tests (graphed training steps, the apply's page-locked output);
#   2. gpu_probe.py fit: the teacher denoiser for 5 s with the step replayed from a CUDA
#      graph or run eagerly, at several batch sizes and learning rates;
#   3. time to fidelity of the GPU default (1, 2, 5 s against a 40 s fit) on the three
#      targets of benchmarks/time_to_fidelity.py, with lr 2e-3 and batches of 128 beside it;
#   4. gpu_probe.py apply: copies each way, and whole applies of 1k/4k/8k images with the
#      output page-locked or not and the input staged through page-locked memory or not;
#   5. apply_speed.py, the GPU's tiles (2048), in memory (1k/4k/8k), in float32 (what
#      --precision auto is on a GPU) and with the body autocast to bfloat16.
# Run from the repository root; records and logs go to $DEST (default bench-out/gpu).
# ONEPAIR_HOME must hold the denoiser teacher.
set -u
DEST=${DEST:-bench-out/gpu}
mkdir -p "$DEST"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src:$PWD/benchmarks${PYTHONPATH:+:$PYTHONPATH}"
py=${PYTHON:-python3}

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv
$py -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"

phase() {  # name, seconds, command...
    local name=$1 limit=$2
    shift 2
    echo "=== $name ($(date +%T))"
    timeout "$limit" "$@" >"$DEST/$name.log" 2>&1
    echo "exit $? after $SECONDS s"
    tail -n "${TAIL:-14}" "$DEST/$name.log"
}

TAIL=6 phase tests 90 $py -m pytest -q -p no:cacheprovider -rs tests/test_steps.py \
    tests/test_tiling.py

TAIL=12 phase fit 100 $py benchmarks/gpu_probe.py --parts fit --seconds 5 -o "$DEST/probe-fit"

recipes=(--no-prototype --budgets 1 2 5 --recipes default-gpu default-gpu:lr=0.002
    default-gpu:batch_size=128)
TAIL=12 phase ttf 200 $py benchmarks/time_to_fidelity.py "${recipes[@]}" --long 40 \
    --targets "noise:sigma=25|tv-denoise:weight=0.1" "noise:sigma=25|teacher-denoiser" \
    -o "$DEST/ttf"
TAIL=6 phase ttf-blur 45 $py benchmarks/time_to_fidelity.py "${recipes[@]}" --long 10 \
    --targets "gaussian-blur:sigma=2" -o "$DEST/ttf-blur"

TAIL=40 phase apply 90 $py benchmarks/gpu_probe.py --parts apply -o "$DEST/probe-apply"

phase apply-speed 130 $py benchmarks/apply_speed.py --device cuda --sizes 1024 4096 8192 \
    --memory-max 8192 --modes memory --baseline '' --precisions float32 bfloat16 \
    -o "$DEST/apply"
echo "done after $SECONDS s"
