#!/usr/bin/env bash
# The GPU measurements, sized for a few minutes of a lent GPU (docs/PERFORMANCE.md):
#   1. apply throughput of the default imitator, 1k/4k/8k, in memory and streamed,
#      tiles of 512 and 2048, and the 8k image with tiles copied from the host (A/B);
#   2. time to fidelity of the default fit (1, 2, 5 s against a 40 s fit) on the
#      three targets of benchmarks/time_to_fidelity.py, with batches of 16 and 64 beside it;
#   3. MAXIM sigma 25 from a 256 x 256 example: four recipes side by side on the one
#      GPU (each slowed by the others), 120 s each, from cached target outputs.
# Run from the repository root; records and logs go to $DEST (default bench-out/gpu).
# ONEPAIR_HOME must hold the denoiser teacher, FIDELITY_CACHE the MAXIM outputs.
set -u
DEST=${DEST:-bench-out/gpu}
mkdir -p "$DEST"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src:$PWD/benchmarks${PYTHONPATH:+:$PYTHONPATH}"
cache=${FIDELITY_CACHE:-$HOME/.cache/onepair/fidelity}
py=${PYTHON:-python3}

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv
$py -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"

phase() {  # name, seconds, command...
    local name=$1 limit=$2
    shift 2
    echo "=== $name ($(date +%T))"
    timeout "$limit" "$@" >"$DEST/$name.log" 2>&1
    echo "exit $? after $SECONDS s"
    tail -n 14 "$DEST/$name.log"
}

phase apply 130 bash -c "
  $py benchmarks/apply_speed.py --device cuda --sizes 1024 4096 8192 --memory-max 8192 \
      --tile 512 -o $DEST/apply512 &&
  $py benchmarks/apply_speed.py --device cuda --sizes 1024 8192 --memory-max 8192 \
      --modes memory --tile 2048 --baseline '' -o $DEST/apply2048 &&
  $py benchmarks/apply_speed.py --device cuda --sizes 8192 --memory-max 8192 --modes memory \
      --tile 512 --baseline '' --host-tiles -o $DEST/apply-host"

phase ttf 300 $py benchmarks/time_to_fidelity.py --budgets 1 2 5 --long 40 --no-prototype \
    --recipes default default:batch_size=16 default:batch_size=64 -o "$DEST/ttf"

echo "=== maxim ($(date +%T))"
n=0
for r in default:augment=all,batch_size=16 \
    default:depth=3,width=32,augment=all,batch_size=16 \
    default:depth=4,width=32,augment=auto,batch_size=16,crop=96 \
    default:depth=3,width=32,convs_per_level=2,augment=auto,batch_size=16,crop=96; do
    n=$((n + 1))
    timeout 150 $py benchmarks/fidelity.py --targets "noise:sigma=25|maxim" --recipes "$r" \
        --budgets 120 --seeds 0 --sizes 256 --cache "$cache" -o "$DEST/maxim$n" \
        >"$DEST/maxim$n.log" 2>&1 &
done
wait
for i in 1 2 3 4; do tail -n 3 "$DEST/maxim$i.log"; done
echo "done after $SECONDS s"
