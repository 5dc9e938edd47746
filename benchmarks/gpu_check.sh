#!/usr/bin/env bash
# The GPU check (figures, never pass/fail): on a machine with one NVIDIA GPU, JAX
# and Python 3.12, without TensorFlow or network access (the lent machine).
#
#   here, once:   make gpu-check-prepare        # wheels + the sample into .gpu_check/
#   there:        bash benchmarks/gpu_check.sh [benchmarks/gpu_check.py options]
#
# It installs keras and keras-hub from the carried wheels next to the machine's JAX,
# prints the GPU, then runs benchmarks/gpu_check.py under Keras 3's
# JAX backend: ViT-H/14 training images/s (random weights, 224 px, bf16, both stages,
# the largest candidate batch that fits, with and without XLA compilation), peak GPU
# memory, and 20 steps of the tiny config on the sample plus the .keras export round
# trip. Extra options go to gpu_check.py (e.g. --no-eager, --preset vit_l14).
set -euo pipefail
cd "$(dirname "$0")/.."

CARRY=${GPU_CHECK_DIR:-.gpu_check}
PYTHON=${PYTHON:-python3}  # the interpreter that has the machine's jax (with its CUDA plugin)
SITE=${GPU_CHECK_SITE:-/tmp/gpu_check_site}
# keras-hub's requirements name tensorflow-text (so TensorFlow): its CLIP code needs neither;
# `import keras_hub` needs tokenizers (not huggingface_hub), its Hugging Face loader sentencepiece
PACKAGES="keras==3.15.1 keras-hub==0.32.0 tokenizers sentencepiece absl-py rich markdown-it-py
  mdurl pygments namex h5py optree typing-extensions packaging regex safetensors"

if [ ! -d "$CARRY/wheels" ]; then
  echo "no $CARRY/wheels: run 'make gpu-check-prepare' where PyPI is reachable, carry $CARRY" >&2
  exit 2
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap \
  --format=csv || echo "nvidia-smi: not found"

# Installed into a folder put first on PYTHONPATH, not a venv: a venv made from a venv's
# python would not see that venv's jax. --no-deps: exactly the carried wheels (numpy and
# ml-dtypes come with jax). Without pip the wheels are zip archives: unpacked as they are.
mkdir -p "$SITE"
if [ -z "${GPU_CHECK_NO_PIP:-}" ] && "$PYTHON" -m pip --version >/dev/null 2>&1; then
  # shellcheck disable=SC2086
  PIP_BREAK_SYSTEM_PACKAGES=1 "$PYTHON" -m pip install --quiet --disable-pip-version-check \
    --no-index --no-deps --upgrade --target "$SITE" --find-links "$CARRY/wheels" $PACKAGES
else
  "$PYTHON" - "$CARRY/wheels" "$SITE" <<'PY'
import glob, os, sys, zipfile
for wheel in sorted(glob.glob(os.path.join(sys.argv[1], "*.whl"))):
    if not os.path.basename(wheel).startswith(("numpy-", "ml_dtypes-")):
        zipfile.ZipFile(wheel).extractall(sys.argv[2])
PY
fi

export KERAS_BACKEND=jax PYTHONUNBUFFERED=1  # figures print as they come, even if cut off
export PYTHONPATH="$PWD:$SITE${PYTHONPATH:+:$PYTHONPATH}"
# JAX takes 75% of the GPU up front by default: give the batch search the rest too
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.95}
"$PYTHON" -c "import jax, sys; print('python', sys.version.split()[0], 'jax', jax.__version__, jax.devices())"
exec "$PYTHON" -m benchmarks.gpu_check --sample "$CARRY/sample.npz" "$@"
