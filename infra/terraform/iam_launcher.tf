# The launcher (the Prefect worker): plans builds from metadata, submits
# Dataflow jobs that run as the worker account, assembles and publishes the
# manifest, and (optionally) starts TPU VMs that run as the trainer account.

resource "google_project_iam_member" "launcher_dataflow" {
  project = var.project
  role    = "roles/dataflow.developer"
  member  = google_service_account.launcher.member
}

# actAs on the Dataflow worker account only, not on every account in the project.
resource "google_service_account_iam_member" "launcher_acts_as_dataflow_worker" {
  service_account_id = google_service_account.dataflow_worker.name
  role               = "roles/iam.serviceAccountUser"
  member             = google_service_account.launcher.member
}

resource "google_storage_bucket_iam_member" "launcher_objects" {
  for_each = {
    data     = google_storage_bucket.data.name
    dataflow = google_storage_bucket.dataflow.name
  }
  bucket = each.value
  role   = "roles/storage.objectAdmin"
  member = google_service_account.launcher.member
}

resource "google_storage_bucket_iam_member" "launcher_bucket_read" {
  bucket = google_storage_bucket.dataflow.name
  role   = "roles/storage.legacyBucketReader"
  member = google_service_account.launcher.member
}

# Evaluation reads what training exported.
resource "google_storage_bucket_iam_member" "launcher_models_read" {
  bucket = google_storage_bucket.models.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.launcher.member
}

resource "google_artifact_registry_repository_iam_member" "launcher_pull" {
  location   = google_artifact_registry_repository.images.location
  repository = google_artifact_registry_repository.images.name
  role       = "roles/artifactregistry.reader"
  member     = google_service_account.launcher.member
}

resource "google_project_iam_member" "launcher_logs" {
  project = var.project
  role    = "roles/logging.logWriter"
  member  = google_service_account.launcher.member
}

# Creating and deleting TPU VMs needs tpu.admin on the project (there is no
# narrower predefined role) and actAs on the trainer account only.
resource "google_project_iam_member" "launcher_tpu" {
  count   = var.launcher_runs_tpus ? 1 : 0
  project = var.project
  role    = "roles/tpu.admin"
  member  = google_service_account.launcher.member
}

resource "google_service_account_iam_member" "launcher_acts_as_trainer" {
  count              = var.launcher_runs_tpus ? 1 : 0
  service_account_id = google_service_account.trainer.name
  role               = "roles/iam.serviceAccountUser"
  member             = google_service_account.launcher.member
}
