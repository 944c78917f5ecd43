#!/usr/bin/env bash
# GPU check: s/epoch, peak GPU memory and speed-up over CPU for ~100k and ~1M interactions.
#
#   scripts/gpu_check.sh                    # on a CUDA machine; also writes data/gpu_check.json
#   scripts/gpu_check.sh --cpu-smoke        # anywhere: checks the script on a tiny world in seconds
#
# Uses .venv/bin/python when present (a CUDA build of torch: see the Makefile's TORCH_SPEC),
# else $PYTHON or python3 with the repository on PYTHONPATH, so a machine that already has
# torch, numpy, pandas and scipy needs no install. Extra arguments go to scripts/gpu_check.py.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -n "${PYTHON:-}" ]]; then
    PY="$PYTHON"
elif [[ -x .venv/bin/python ]]; then
    PY=.venv/bin/python
else
    PY=python3
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [[ " $* " != *" --cpu-smoke "* ]]; then
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
    "$PY" -c "import torch, sys; ok = torch.cuda.is_available(); print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name() if ok else 'NO CUDA DEVICE'); sys.exit(0 if ok else 3)"
    mkdir -p data
    exec "$PY" scripts/gpu_check.py --json "${GPU_CHECK_JSON:-data/gpu_check.json}" "$@"
fi
exec "$PY" scripts/gpu_check.py "$@"
