#!/usr/bin/env bash
# The GPU check (figures, never pass/fail): on a machine with one NVIDIA GPU, JAX
# and Python 3.12, without TensorFlow or network access (the lent machine).
#
#   here, once:   make gpu-check-prepare        # wheels + the sample into .gpu_check/
#   there:        bash benchmarks/gpu_check.sh [benchmarks/gpu_check.py options]
#
# It installs keras and keras-hub from the carried wheels into a venv that sees the
# machine's JAX, prints the GPU, then runs benchmarks/gpu_check.py under Keras 3's
# JAX backend: ViT-H/14 training images/s (random weights, 224 px, bf16, both stages,
# the largest candidate batch that fits, with and without XLA compilation), peak GPU
# memory, and 20 steps of the tiny config on the sample plus the .keras export round
# trip. Extra options go to gpu_check.py (e.g. --no-eager, --preset vit_l14).
set -euo pipefail
cd "$(dirname "$0")/.."

CARRY=${GPU_CHECK_DIR:-.gpu_check}
PYTHON=${PYTHON:-python3}
VENV=${GPU_CHECK_VENV:-/tmp/gpu_check_venv}

if [ ! -d "$CARRY/wheels" ]; then
  echo "no $CARRY/wheels: run 'make gpu-check-prepare' where PyPI is reachable, carry $CARRY" >&2
  exit 2
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap \
  --format=csv || echo "nvidia-smi: not found"

# --system-site-packages: the machine's own jax/jaxlib (with its CUDA plugin) stay in use
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv --system-site-packages "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-index \
  --find-links "$CARRY/wheels" absl-py rich namex h5py optree packaging regex safetensors
# keras-hub's requirements name tensorflow-text (so TensorFlow): its CLIP code needs neither;
# `import keras_hub` needs tokenizers (not huggingface_hub), its Hugging Face loader sentencepiece
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-index --no-deps \
  --find-links "$CARRY/wheels" keras==3.15.1 keras-hub==0.32.0 tokenizers sentencepiece

export KERAS_BACKEND=jax
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# JAX takes 75% of the GPU up front by default: give the batch search the rest too
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.95}
"$VENV/bin/python" -c "import jax, sys; print('python', sys.version.split()[0], 'jax', jax.__version__, jax.devices())"
exec "$VENV/bin/python" -m benchmarks.gpu_check --sample "$CARRY/sample.npz" "$@"
