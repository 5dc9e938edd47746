# TPU training VMs: read shards, write checkpoints and the exported model,
# write logs and metrics, look up their own TPU (TPUClusterResolver).

resource "google_storage_bucket_iam_member" "trainer_reads_data" {
  bucket = google_storage_bucket.data.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.trainer.member
}

resource "google_storage_bucket_iam_member" "trainer_writes_models" {
  bucket = google_storage_bucket.models.name
  role   = "roles/storage.objectAdmin"
  member = google_service_account.trainer.member
}

resource "google_project_iam_member" "trainer" {
  for_each = toset([
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
    "roles/tpu.viewer",
  ])
  project = var.project
  role    = each.value
  member  = google_service_account.trainer.member
}

resource "google_artifact_registry_repository_iam_member" "trainer_pull" {
  location   = google_artifact_registry_repository.images.location
  repository = google_artifact_registry_repository.images.name
  role       = "roles/artifactregistry.reader"
  member     = google_service_account.trainer.member
}
