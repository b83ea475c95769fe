#!/usr/bin/env bash
# The GPU figures: random full-size 4B weights on one H100/H200, batch 1 and batched, moss and the
# official-style baseline. Prepared for the `device` tool (15 minutes in all); run from the repo root:
#   bash benchmarks/gpu.sh 2>&1 | tee $OUT/gpu.log
# The device image has torch and transformers but not soundfile, librosa, silero-vad, av or srt:
# download their wheels here into .whl/ (see the device README) and carry .whl with the call.
set -euo pipefail
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
# Transcription-length outputs: 256 tokens per 60 s chunk of a 10-minute synthetic recording.
python3 benchmarks/bench.py --size 4b --device cuda --seconds 600 --tokens 256 --batch-size 1
python3 benchmarks/bench.py --size 4b --device cuda --seconds 600 --tokens 256 --skip-baseline --batch-size 16
