locals {
  apis = toset([
    "artifactregistry.googleapis.com", # worker, Prefect worker and trainer images
    "cloudresourcemanager.googleapis.com",
    "compute.googleapis.com", # Dataflow workers are Compute Engine VMs
    "dataflow.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "storage.googleapis.com",
    "tpu.googleapis.com",
  ])
}

resource "google_project_service" "api" {
  for_each = local.apis
  project  = var.project
  service  = each.value

  # Turning an API off on destroy would break anything else in the project using it.
  disable_on_destroy = false
}
