# One Docker repository for the three images (infra/worker, infra/prefect-worker, infra/trainer).
resource "google_artifact_registry_repository" "images" {
  location      = var.region
  repository_id = var.name_prefix
  format        = "DOCKER"
  description   = "unibed container images"

  depends_on = [google_project_service.api]
}

locals {
  image_repository = "${var.region}-docker.pkg.dev/${var.project}/${google_artifact_registry_repository.images.repository_id}"
}
