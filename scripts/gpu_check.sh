#!/usr/bin/env bash
# The GPU check: one prepared run of every GPU-path measurement, its output kept in $OUT.
#
# Here (once):   python scripts/pack_for_device.py pack ../shared/data/cifar10-jpeg .device_data --test 1000
#                (.device_data is git-ignored; name it in the device tool's `carry`)
# There:         bash scripts/gpu_check.sh            (about 6 minutes on one H200)
set -uo pipefail
OUT="${OUT:-/tmp/gpu_check}"; mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
DATA=/tmp/data; CACHE=/tmp/lcache
python3 scripts/pack_for_device.py unpack .device_data "$DATA" || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__)" | tee -a "$OUT/gpu.txt"
common=(--device cuda --data-root "$DATA" --cache-dir "$CACHE")
{
  echo "== bench_train resnet32";   timeout 120 python3 scripts/bench_train.py "${common[@]}" --arch resnet32 --images 8192 --steps 64 --workers 8
  echo "== bench_train resnet110";  timeout 120 python3 scripts/bench_train.py "${common[@]}" --arch resnet110 --images 8192 --steps 64 --workers 8
  echo "== bench_objective";        timeout 120 python3 scripts/bench_objective.py "${common[@]}"
  echo "== bench_surface (+50k)";   timeout 180 python3 scripts/bench_surface.py "${common[@]}" --full --full-budget 90
  echo "== bench_surface: several points per pass against one at a time (resnet32, 256 images: the ratio)"
  timeout 120 python3 scripts/bench_surface.py "${common[@]}" --images 256 --no-reference --repeats 2
  echo "== bench_curvature";        timeout 120 python3 scripts/bench_curvature.py "${common[@]}" --dataset folder:cifar10-jpeg --n 1024 --eig-n 1024 --tol 1e-3
  echo "== bench_networks (paper-cpu sizes)"; timeout 120 python3 scripts/bench_networks.py "${common[@]}"
  echo "== smoke reproduction on cuda"
  timeout 150 python3 -m landscape reproduce --preset smoke --cifar10 folder:cifar10-jpeg "${common[@]}" --out /tmp/smoke --quiet
} 2>&1 | tee "$OUT/gpu_check.log"
