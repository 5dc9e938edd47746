"""Offline checks of infra/: the Terraform's structure and least-privilege IAM,
formatting, and that every image's pins and base match uv.lock.

No terraform binary can be installed here (see infra/README.md), so the .tf
files are parsed with python-hcl2 and formatting is checked with hclwrite
(terraform fmt's formatter) through node, when installed.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import hcl2
import pytest
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[1]
INFRA = ROOT / "infra"
TF = INFRA / "terraform"
IMAGES = ("worker", "prefect-worker", "trainer")


def _load_exporter():
    spec = importlib.util.spec_from_file_location("export_requirements",
                                                  INFRA / "export_requirements.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


export_requirements = _load_exporter()


# ---------------------------------------------------------------- terraform model

def _load_tf() -> dict[str, list]:
    options = hcl2.SerializationOptions(with_comments=False, strip_string_quotes=True)
    merged: dict[str, list] = {}
    for path in sorted(TF.glob("*.tf")):
        with path.open() as f:
            for kind, blocks in hcl2.load(f, serialization_options=options).items():
                merged.setdefault(kind, []).extend(blocks)
    return merged


TFDOC = _load_tf()


def _named(kind: str) -> dict[str, dict]:
    return {name: body for block in TFDOC.get(kind, []) for name, body in block.items()}


def _resources(rtype: str | None = None) -> dict[tuple[str, str], dict]:
    out = {}
    for block in TFDOC["resource"]:
        for t, named in block.items():
            for name, body in named.items():
                if rtype in (None, t):
                    out[(t, name)] = body
    return out


def _strings(node) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for v in node.values() for s in _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return []


ALL_STRINGS = _strings(TFDOC)
LOCALS = {k: v for block in TFDOC["locals"] for k, v in block.items() if k != "__is_block__"}


def _set_literal(expr: str) -> set[str]:
    """The strings of a `toset([...])` expression as hcl2 serialises it."""
    assert expr.startswith("${toset(["), expr
    return set(re.findall(r'"([^"]+)"', expr))


def _ref(expr: str, rtype: str) -> str:
    """`${rtype.NAME.attr}` -> NAME."""
    m = re.fullmatch(r"\$\{" + rtype + r"\.([a-z0-9_]+)\.[a-z_]+\}", expr)
    assert m, f"expected a reference to a {rtype}: {expr}"
    return m.group(1)


# ------------------------------------------------------------------ formatting

def _node_path() -> str | None:
    """`make setup` installs the formatter under .tools/ (a global install also works)."""
    local = INFRA.parent / ".tools" / "node_modules"
    if shutil.which("node") and (local / "@cdktf" / "hcl-tools").is_dir():
        return str(local)
    npm = shutil.which("npm")
    if not shutil.which("node") or not npm:
        return None
    root = subprocess.run([npm, "root", "-g"], check=False, capture_output=True,
                          text=True).stdout.strip()
    return root if (Path(root) / "@cdktf" / "hcl-tools").is_dir() else None


def _hclfmt(files: list[Path]) -> subprocess.CompletedProcess:
    node_path = _node_path()
    if node_path is None:
        pytest.skip("hclwrite formatter not installed: run make setup (needs node and npm)")
    return subprocess.run([shutil.which("node"), str(INFRA / "tools" / "hclfmt.cjs"),
                           *map(str, files)], check=False, capture_output=True, text=True,
                          env={**os.environ, "NODE_PATH": node_path})


def test_terraform_files_are_formatted():
    files = sorted(TF.glob("*.tf")) + [TF / "terraform.tfvars.example"]
    result = _hclfmt(files)
    assert result.returncode == 0, f"not in terraform fmt style:\n{result.stdout}{result.stderr}"


def test_format_check_catches_misformatting(tmp_path):
    bad = tmp_path / "bad.tf"
    bad.write_text('variable "x" {\n  type = string\n    default="a"\n}\n')
    result = _hclfmt([bad])
    assert result.returncode == 1 and str(bad) in result.stdout


# ------------------------------------------------------------- references

def test_variables_declared_and_used():
    declared = set(_named("variable"))
    text = "\n".join(p.read_text() for p in TF.glob("*.tf"))
    used = set(re.findall(r"\bvar\.([a-z0-9_]+)", text))
    assert used - declared == set(), "used but not declared"
    assert declared - used == set(), "declared but never used"
    assert {"project", "region", "name_prefix", "bucket_location",
            "temp_age_days", "staging_age_days"} <= declared


def test_locals_and_resources_referenced_exist():
    resources = set(_resources())
    for expr in ALL_STRINGS:
        for name in re.findall(r"\blocal\.([a-z0-9_]+)", expr):
            assert name in LOCALS, f"local.{name} is not defined"
        for rtype, name in re.findall(r"\b(google_[a-z_]+)\.([a-z0-9_]+)", expr):
            assert (rtype, name) in resources, f"{rtype}.{name} is not declared"


def test_provider_pinned_with_upper_bound():
    (terraform,) = TFDOC["terraform"]
    google = terraform["required_providers"][0]["google"]
    assert google["source"] == "hashicorp/google"
    assert google["version"].startswith("~>") or "<" in google["version"]


# ----------------------------------------------------------------- buckets

def test_buckets_uniform_access_and_public_access_prevented():
    buckets = _resources("google_storage_bucket")
    assert {name for _, name in buckets} == {"data", "dataflow", "models"}
    for (_, name), body in buckets.items():
        assert body["uniform_bucket_level_access"] is True, name
        assert body["public_access_prevention"] == "enforced", name


def test_temp_and_staging_outputs_are_under_delete_rules():
    bucket = _resources("google_storage_bucket")[("google_storage_bucket", "dataflow")]
    deleted = {}
    for rule in bucket["lifecycle_rule"]:
        (cond,), (action,) = rule["condition"], rule["action"]
        if action["type"] == "Delete":
            for prefix in cond.get("matches_prefix", []):
                deleted[prefix] = cond["age"]
    outputs = _named("output")
    for output, age_var in [("dataflow_temp_location", "temp_age_days"),
                            ("dataflow_staging_location", "staging_age_days")]:
        m = re.fullmatch(r"\$\{google_storage_bucket\.dataflow\.url\}/(.+)",
                         outputs[output]["value"])
        assert m, output
        # The rule's prefix must be what the output hands to Dataflow, or nothing expires.
        assert deleted.get(m.group(1) + "/") == "${var." + age_var + "}", output


# ---------------------------------------------------------------------- IAM

def _grants() -> set[tuple[str, str, str]]:
    """(service account, role, where) for every IAM member resource."""
    grants = set()
    for (rtype, name), body in _resources().items():
        if not rtype.endswith("_iam_member"):
            continue
        account = _ref(body["member"], "google_service_account")
        for_each = body.get("for_each")
        if body["role"] == "${each.value}":
            roles = _set_literal(for_each)
        else:
            roles = {body["role"]}
        if rtype == "google_project_iam_member":
            wheres = {"project"}
        elif rtype == "google_storage_bucket_iam_member":
            targets = for_each.values() if body["bucket"] == "${each.value}" else [body["bucket"]]
            wheres = {"bucket:" + _ref(t, "google_storage_bucket") for t in targets}
        elif rtype == "google_service_account_iam_member":
            wheres = {"sa:" + _ref(body["service_account_id"], "google_service_account")}
        elif rtype == "google_artifact_registry_repository_iam_member":
            wheres = {"repo:" + _ref(body["repository"], "google_artifact_registry_repository")}
        else:
            raise AssertionError(f"unexpected IAM resource {rtype}.{name}")
        grants |= {(account, role, where) for role in roles for where in wheres}
    return grants


# The whole privilege matrix: widening any grant must change this table on purpose.
EXPECTED_GRANTS = {
    ("dataflow_worker", "roles/dataflow.worker", "project"),
    ("dataflow_worker", "roles/storage.objectAdmin", "bucket:data"),
    ("dataflow_worker", "roles/storage.objectAdmin", "bucket:dataflow"),
    ("dataflow_worker", "roles/storage.legacyBucketReader", "bucket:dataflow"),
    ("dataflow_worker", "roles/artifactregistry.reader", "repo:images"),
    ("launcher", "roles/dataflow.developer", "project"),
    ("launcher", "roles/logging.logWriter", "project"),
    ("launcher", "roles/tpu.admin", "project"),
    ("launcher", "roles/iam.serviceAccountUser", "sa:dataflow_worker"),
    ("launcher", "roles/iam.serviceAccountUser", "sa:trainer"),
    ("launcher", "roles/storage.objectAdmin", "bucket:data"),
    ("launcher", "roles/storage.objectAdmin", "bucket:dataflow"),
    ("launcher", "roles/storage.legacyBucketReader", "bucket:dataflow"),
    ("launcher", "roles/storage.objectViewer", "bucket:models"),
    ("launcher", "roles/artifactregistry.reader", "repo:images"),
    ("trainer", "roles/storage.objectViewer", "bucket:data"),
    ("trainer", "roles/storage.objectAdmin", "bucket:models"),
    ("trainer", "roles/logging.logWriter", "project"),
    ("trainer", "roles/monitoring.metricWriter", "project"),
    ("trainer", "roles/tpu.viewer", "project"),
    ("trainer", "roles/artifactregistry.reader", "repo:images"),
}


def test_least_privilege_matrix():
    assert _grants() == EXPECTED_GRANTS


def test_no_primitive_or_project_wide_storage_or_admin_roles():
    roles = set(re.findall(r"roles/[A-Za-z.]+", "\n".join(ALL_STRINGS)))
    assert roles and not roles & {"roles/owner", "roles/editor", "roles/viewer"}
    project_roles = {role for _, role, where in _grants() if where == "project"}
    assert not {r for r in project_roles if r.startswith(("roles/storage.", "roles/iam."))}
    # tpu.admin is the one admin role, and only behind its switch.
    assert {r for r in roles if r.endswith(".admin")} == {"roles/tpu.admin"}
    launcher_tpu = _resources()[("google_project_iam_member", "launcher_tpu")]
    assert launcher_tpu["count"] == "${var.launcher_runs_tpus ? 1 : 0}"


def test_service_account_ids_fit_for_longest_prefix():
    # Account ids are 6-30 characters; the prefix validation bounds the prefix.
    condition = _named("variable")["name_prefix"]["validation"][0]["condition"]
    low, high = map(int, re.search(r"\{(\d+),(\d+)\}", condition).groups())
    for (_, name), body in _resources("google_service_account").items():
        suffix = re.fullmatch(r"\$\{var\.name_prefix\}(-[a-z]+)", body["account_id"]).group(1)
        assert 6 <= 1 + low + len(suffix) and 1 + high + len(suffix) <= 30, name


# ------------------------------------------------------------- APIs, outputs

def test_required_apis_enabled():
    apis = _set_literal(LOCALS["apis"])
    assert {"dataflow.googleapis.com", "storage.googleapis.com", "compute.googleapis.com",
            "iam.googleapis.com", "tpu.googleapis.com", "artifactregistry.googleapis.com",
            "logging.googleapis.com", "monitoring.googleapis.com"} <= apis
    service = _resources("google_project_service")[("google_project_service", "api")]
    assert service["for_each"] == "${local.apis}"


def test_outputs_for_recipes_builds_and_deployments():
    outputs = {name: body["value"] for name, body in _named("output").items()}
    assert outputs["project"] == "${var.project}"
    assert outputs["region"] == "${var.region}"
    assert outputs["data_bucket_url"] == "${google_storage_bucket.data.url}"
    assert outputs["dataset_output_prefix"].startswith("${google_storage_bucket.data.url}/")
    assert outputs["models_bucket_url"] == "${google_storage_bucket.models.url}"
    for account in ("dataflow_worker", "launcher", "trainer"):
        assert outputs[f"{account}_service_account"] == \
            f"${{google_service_account.{account}.email}}"
    for image in IMAGES:
        key = image.replace("-", "_") + "_image"
        assert outputs[key] == "${local.image_repository}/" + image
    # Documented: every output appears in infra/README.md.
    readme = (INFRA / "README.md").read_text()
    assert [name for name in outputs if f"`{name}`" not in readme] == []


# --------------------------------------------------------------------- images

LOCKED = tomllib.loads((ROOT / "uv.lock").read_text())["package"]
# name -> locked versions: a package may fork by Python version (google-apitools does).
LOCK: dict[str, set[str]] = {}
for _package in LOCKED:
    LOCK.setdefault(_package["name"], set()).add(_package["version"])
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _python_minor() -> str:
    """The one Python the environment is built and tested with (`make setup`); the
    images use it too, and it must lie inside the project's requires-python."""
    (minor,) = re.findall(r"sync --frozen --all-extras --python (3\.\d+)\b",
                          (ROOT / "Makefile").read_text())
    assert SpecifierSet(PYPROJECT["project"]["requires-python"]).contains(minor + ".0")
    return minor


def _pins(image: str) -> dict[str, set[str]]:
    lines = (INFRA / image / "requirements.txt").read_text().splitlines()
    pins = [re.match(r"([a-z0-9._-]+)==([^ ;]+)", ln) for ln in lines if not ln.startswith("#")]
    assert all(pins)
    out: dict[str, set[str]] = {}
    for m in pins:
        out.setdefault(m.group(1), set()).add(m.group(2))
    return out


def _exported(*extras: str) -> set[str]:
    """Package names in uv.lock's closure of the base install plus `extras`."""
    out = subprocess.run(export_requirements.export_command(tuple(extras)), cwd=ROOT,
                         check=True, capture_output=True, text=True).stdout
    return {re.match(r"([a-z0-9._-]+)==", ln).group(1)
            for ln in out.splitlines() if ln and not ln.startswith("#")}


def _closure(roots: set[str]) -> set[str]:
    """Names reachable from `roots` in uv.lock's graph (dependency extras followed)."""
    by_name: dict[str, list[dict]] = {}
    for package in LOCKED:
        by_name.setdefault(package["name"], []).append(package)
    seen: set[tuple[str, str | None]] = set()
    todo: list[tuple[str, str | None]] = [(name, None) for name in roots]
    while todo:
        name, extra = todo.pop()
        if (name, extra) in seen:
            continue
        seen.add((name, extra))
        for package in by_name[name]:
            deps = (package.get("dependencies", []) if extra is None
                    else package.get("optional-dependencies", {}).get(extra, []))
            for dep in deps:
                todo.append((dep["name"], None))
                todo.extend((dep["name"], e) for e in dep.get("extra", []))
    return {name for name, _ in seen}


TRAINER_STACK = {"tensorflow", "keras", "keras-hub", "tensorflow-text"}
TF_SIDE = TRAINER_STACK | {"tensorboard", "tf-keras"}  # none of it on the TF-free side


def test_base_install_has_no_tensorflow_and_train_brings_it():
    # `pip install unibed` is the TF-free side of the process boundary; TensorFlow
    # comes only with the extras that run it (train, rig).
    base = _exported()
    assert not TF_SIDE & base, "the base install must not pull in TensorFlow"
    assert {"apache-beam", "prefect", "google-cloud-storage", "pillow", "imagehash",
            "numpy", "pydantic", "pyyaml", "crc32c", "requests"} <= base
    train = _exported("train")
    assert TRAINER_STACK <= train and base <= train
    rig = _exported("rig")
    assert {"tensorflow", "fastapi", "uvicorn", "python-multipart", "jinja2"} <= rig
    assert not {"keras-hub", "faiss-cpu"} & rig
    assert "faiss-cpu" in _exported("ann") and not TF_SIDE & _exported("ann")
    assert _exported("all") == _exported("train", "rig", "ann")


def test_extras_declared():
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert set(extras) == {"train", "rig", "ann", "all"}
    assert extras["all"] == ["unibed[train,rig,ann]"]
    names = {re.match(r"[A-Za-z0-9._-]+", d).group(0).lower()
             for d in PYPROJECT["project"]["dependencies"]}
    assert not names & TF_SIDE


@pytest.mark.parametrize("image", IMAGES)
def test_requirements_match_lock_export(image):
    expected = export_requirements.export(image)
    actual = (INFRA / image / "requirements.txt").read_text()
    assert actual == expected, "stale: run python infra/export_requirements.py"


@pytest.mark.parametrize("image", IMAGES)
def test_requirements_pin_lock_versions(image):
    pins = _pins(image)
    assert pins and all(versions == LOCK[name] for name, versions in pins.items())


def test_images_hold_only_their_side_of_the_process_boundary():
    worker, launcher, trainer = (_pins(i) for i in IMAGES)
    assert not TF_SIDE & set(worker) and not TF_SIDE & set(launcher)
    assert "prefect" not in worker and "prefect" in launcher
    assert "apache-beam" in worker and "apache-beam" in launcher
    assert "apache-beam" not in trainer and {"tensorflow", "keras", "keras-hub"} <= set(trainer)
    # The launcher is exactly the base install; the trainer exactly the `train` extra
    # plus what unibed.schemas imports (pydantic, pyyaml).
    assert set(launcher) == _exported()
    train = {re.match(r"[A-Za-z0-9._-]+", d).group(0).lower()
             for d in PYPROJECT["project"]["optional-dependencies"]["train"]}
    assert set(trainer) == _closure(train | {"pydantic", "pyyaml"})


def _from(image: str) -> str:
    froms = re.findall(r"^FROM\s+(\S+)", (INFRA / image / "Dockerfile").read_text(), re.MULTILINE)
    assert len(froms) == 1
    return froms[0]


def test_worker_base_matches_locked_beam_and_python():
    py = _python_minor()
    (beam,) = LOCK["apache-beam"]
    assert _from("worker") == f"apache/beam_python{py}_sdk:{beam}"
    # The launcher pickles the pipeline; Beam needs the same minor Python on both sides.
    assert _from("prefect-worker") == _from("trainer") == f"python:{py}-slim"


@pytest.mark.parametrize("image", IMAGES)
def test_dockerfile_installs_its_own_lock_and_copies_existing_paths(image):
    text = (INFRA / image / "Dockerfile").read_text()
    assert f"COPY infra/{image}/requirements.txt " in text
    assert "pip install --no-cache-dir --no-deps -r /tmp/requirements.txt" in text
    for line in re.findall(r"^COPY\s+(.+)$", text, re.MULTILINE):
        for source in line.split()[:-1]:
            assert (ROOT / source).exists(), f"{image}: COPY {source} does not exist"
    # Everything the wheel packages must be in the build context.
    wheel = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for package in wheel["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]:
        assert f"COPY {package} /src/{package}" in text, f"{image} lacks {package}"


STDLIB = set(sys.stdlib_module_names) | {"__future__"}
PROJECT = {"unibed"}


def _third_party_imports(paths: list[Path]) -> set[str]:
    names = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - STDLIB - PROJECT


def test_worker_image_has_every_data_plane_import():
    # What Dataflow workers import: unibed.schemas and unibed.dataplane - not the
    # flows, the CLI, the trainer nor the retrieval rig (it loads the TensorFlow model).
    files = [p for d in ("schemas", "dataplane") for p in (ROOT / "unibed" / d).rglob("*.py")]
    dists = importlib.metadata.packages_distributions()
    pins = set(_pins("worker"))
    missing = []
    for module in sorted(_third_party_imports(files)):
        candidates = {d.lower().replace("_", "-") for d in dists.get(module, [])}
        if not candidates & pins:
            missing.append(module)
    assert missing == []
