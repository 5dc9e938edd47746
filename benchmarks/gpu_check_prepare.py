"""Prepare what benchmarks/gpu_check.sh carries to a GPU machine (run here, with network).

    .venv/bin/python -m benchmarks.gpu_check_prepare [--out .gpu_check]

The lent GPU machine has JAX and PyTorch (Python 3.12) but neither TensorFlow
nor network access. This writes, under --out (git-ignored, carried to the run):
- wheels/: keras, keras-hub (without its tensorflow-text requirement) and the
  pure-Python or small dependencies a JAX install lacks, for CPython 3.12 on
  manylinux x86_64, so gpu_check.sh installs them with `pip --no-index`;
- sample.npz: the generated sample's train split, built with the sample recipe
  and centre-cropped to the tiny config's 64 px by the trainer's own evaluation
  pipeline (uint8 images, labels, num_classes): the data of the 20-step sample
  training, readable without TensorFlow.
About 10 MB of wheels and 3 MB of images; a minute or two on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

# keras-hub's own requirements name tensorflow-text (hence TensorFlow): installed
# --no-deps, with what `import keras_hub` needs (tokenizers, without huggingface_hub) and
# its transformers loader imports (sentencepiece) for Hugging Face checkpoints
NO_DEPS = ["keras==3.15.1", "keras-hub==0.32.0", "tokenizers", "sentencepiece"]
DEPS = ["absl-py", "rich", "markdown-it-py", "mdurl", "pygments", "namex", "h5py", "optree",
        "typing-extensions", "packaging", "regex", "safetensors"]
PLATFORM = ["--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp",
            "--abi", "cp312", "--abi", "abi3", "--abi", "none",
            "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux_2_28_x86_64",
            "--platform", "manylinux2014_x86_64", "--platform", "any"]


def download_wheels(folder: str) -> None:
    pip = [sys.executable, "-m", "pip"]
    if subprocess.run([*pip, "--version"], capture_output=True, check=False).returncode != 0:
        pip = ["python3", "-m", "pip"]  # the project venv is uv's, without pip
    base = [*pip, "download", "--quiet", "--dest", folder, *PLATFORM]
    subprocess.run([*base, "--no-deps", *NO_DEPS], check=True)
    subprocess.run([*base, *DEPS], check=True)
    total = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
    print(f"wheels: {len(os.listdir(folder))} files, {total / 2**20:.1f} MiB in {folder}")


def sample_arrays(image_size: int = 64) -> dict[str, np.ndarray]:
    """The sample's train split as uint8 centre crops, labels and the class count."""
    from unibed.dataplane.build.launcher import build_dataset
    from unibed.dataplane.recipes import load_recipe
    from unibed.sample import generate_sample
    from unibed.trainer.data import eval_dataset, load_manifest

    work = tempfile.mkdtemp(prefix="gpu_check_sample_")
    root, output = os.path.join(work, "sample"), os.path.join(work, "build")
    generate_sample(root)
    recipe = load_recipe(os.path.join(os.path.dirname(__file__), "..", "recipes", "sample.yaml"))
    recipe = recipe.with_source_locations(
        {s.name: os.path.join(root, s.name) for s in recipe.sources}).with_overrides(output=output)
    build_dataset(recipe)
    manifest = load_manifest(output)
    images, labels = [], []
    for batch in eval_dataset(output, manifest, "train", batch_size=256, image_size=image_size):
        images.append(batch["image"].numpy())
        labels.append(batch["label"].numpy())
    return {"images": np.concatenate(images), "labels": np.concatenate(labels).astype(np.int32),
            "num_classes": np.array(manifest.num_classes)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=".gpu_check")
    p.add_argument("--skip-sample", action="store_true")
    args = p.parse_args()
    os.makedirs(os.path.join(args.out, "wheels"), exist_ok=True)
    download_wheels(os.path.join(args.out, "wheels"))
    if not args.skip_sample:
        arrays = sample_arrays()
        np.savez_compressed(os.path.join(args.out, "sample.npz"), **arrays)
        print(f"sample: {len(arrays['labels'])} train images, {int(arrays['num_classes'])} classes")


if __name__ == "__main__":
    main()
