locals {
  bucket_location = upper(coalesce(var.bucket_location, var.region))
  # Bucket names are global: the project id keeps them unique.
  bucket_base = "${var.name_prefix}-${var.project}"
}

# Source datasets (raw/) and built datasets (datasets/<name>/): the recipe's output.
resource "google_storage_bucket" "data" {
  name                        = "${local.bucket_base}-data"
  location                    = local.bucket_location
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"

  lifecycle_rule {
    condition {
      age = 1
    }
    action {
      type = "AbortIncompleteMultipartUpload"
    }
  }

  depends_on = [google_project_service.api]
}

# Dataflow's scratch space: temp/ (shuffle, temp files) and staging/ (job packages).
resource "google_storage_bucket" "dataflow" {
  name                        = "${local.bucket_base}-dataflow"
  location                    = local.bucket_location
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"

  lifecycle_rule {
    condition {
      age            = var.temp_age_days
      matches_prefix = ["temp/"]
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      age            = var.staging_age_days
      matches_prefix = ["staging/"]
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.api]
}

# Checkpoints and exported SavedModels.
resource "google_storage_bucket" "models" {
  name                        = "${local.bucket_base}-models"
  location                    = local.bucket_location
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"

  lifecycle_rule {
    condition {
      age = 1
    }
    action {
      type = "AbortIncompleteMultipartUpload"
    }
  }

  depends_on = [google_project_service.api]
}
