# Dataflow workers: run work items, read sources and write shards, use the
# scratch bucket, pull the worker image. Storage roles are granted per bucket,
# never project-wide.

resource "google_project_iam_member" "dataflow_worker" {
  project = var.project
  role    = "roles/dataflow.worker"
  member  = google_service_account.dataflow_worker.member
}

resource "google_storage_bucket_iam_member" "dataflow_worker_objects" {
  for_each = {
    data     = google_storage_bucket.data.name
    dataflow = google_storage_bucket.dataflow.name
  }
  bucket = each.value
  role   = "roles/storage.objectAdmin"
  member = google_service_account.dataflow_worker.member
}

# Beam's GCS client reads bucket metadata (storage.buckets.get) for temp and staging.
resource "google_storage_bucket_iam_member" "dataflow_worker_bucket_read" {
  bucket = google_storage_bucket.dataflow.name
  role   = "roles/storage.legacyBucketReader"
  member = google_service_account.dataflow_worker.member
}

resource "google_artifact_registry_repository_iam_member" "dataflow_worker_pull" {
  location   = google_artifact_registry_repository.images.location
  repository = google_artifact_registry_repository.images.name
  role       = "roles/artifactregistry.reader"
  member     = google_service_account.dataflow_worker.member
}
