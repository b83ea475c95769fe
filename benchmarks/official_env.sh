#!/usr/bin/env bash
# Creates a Python environment with the official MOSS-Audio code's pins, for bench.py's
# --official-python (the official code breaks on transformers 5.x, which moss uses).
#
#   benchmarks/official_env.sh [VENV_DIR]          # default: ./.official-venv
#   python benchmarks/bench.py --official-src MOSS-Audio --official-python .official-venv/bin/python
#
# Pins from the official pyproject.toml (torch-runtime extra): torch/torchaudio 2.9.1,
# torchcodec 0.9.*, transformers 4.57.1, accelerate (from_pretrained's device_map). Its src/ also
# imports numpy; safetensors reads the weights. The demo apps' packages (gradio, streamlit) are
# left out: the benchmark does not run them. TORCH_INDEX_URL picks the torch build; unset, the CPU
# wheels are tried first and, where that index cannot be reached, whatever pip's own index resolves
# (on Linux the CUDA build, which runs on a CPU too, only larger).
set -euo pipefail
venv="${1:-.official-venv}"
python3 -m venv "$venv"
"$venv/bin/pip" install --upgrade pip
torch_pins=(torch==2.9.1 torchaudio==2.9.1)
if [ -n "${TORCH_INDEX_URL:-}" ]; then
    "$venv/bin/pip" install --index-url "$TORCH_INDEX_URL" "${torch_pins[@]}"
elif ! "$venv/bin/pip" install --index-url https://download.pytorch.org/whl/cpu "${torch_pins[@]}"; then
    echo "official_env.sh: the CPU wheel index failed; installing torch from pip's own index" >&2
    "$venv/bin/pip" install "${torch_pins[@]}"
fi
"$venv/bin/pip" install "torchcodec==0.9.1" "transformers==4.57.1" accelerate safetensors "numpy>=2.0"
"$venv/bin/python" -c "import torch, torchaudio, transformers, accelerate; print('official env ready:', \
torch.__version__, 'transformers', transformers.__version__)"
