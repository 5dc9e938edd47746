# What the recipes, `unibed build` flags and Prefect deployments consume
# (infra/README.md maps each output to its consumer).

output "project" {
  value = var.project
}

output "region" {
  value = var.region
}

output "data_bucket_url" {
  description = "Source datasets under raw/, recipe outputs under datasets/."
  value       = google_storage_bucket.data.url
}

output "dataset_output_prefix" {
  description = "Recipe `output:` = this + '/<recipe name>'."
  value       = "${google_storage_bucket.data.url}/datasets"
}

output "dataflow_temp_location" {
  value = "${google_storage_bucket.dataflow.url}/temp"
}

output "dataflow_staging_location" {
  value = "${google_storage_bucket.dataflow.url}/staging"
}

output "models_bucket_url" {
  value = google_storage_bucket.models.url
}

output "dataflow_worker_service_account" {
  value = google_service_account.dataflow_worker.email
}

output "launcher_service_account" {
  value = google_service_account.launcher.email
}

output "trainer_service_account" {
  value = google_service_account.trainer.email
}

output "image_repository" {
  value = local.image_repository
}

output "worker_image" {
  description = "Dataflow custom container (infra/worker); append :<tag>."
  value       = "${local.image_repository}/worker"
}

output "prefect_worker_image" {
  value = "${local.image_repository}/prefect-worker"
}

output "trainer_image" {
  value = "${local.image_repository}/trainer"
}
