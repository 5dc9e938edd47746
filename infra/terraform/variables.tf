variable "project" {
  description = "GCP project id that holds everything below."
  type        = string
}

variable "region" {
  description = "Region for Dataflow jobs, the image repository and (by default) the buckets; pick one with the TPU type you train on."
  type        = string
  default     = "us-central1"
}

variable "name_prefix" {
  description = "Prefix of every bucket, service account and repository name."
  type        = string
  default     = "unibed"

  validation {
    # Service account ids allow 6-30 characters; the longest suffix is "-dataflow" (9).
    condition     = can(regex("^[a-z][a-z0-9-]{2,19}$", var.name_prefix))
    error_message = "name_prefix: 3-20 characters, lowercase letters, digits and dashes, starting with a letter."
  }
}

variable "bucket_location" {
  description = "Location of the buckets; null means the region (Dataflow and TPU read in-region without egress)."
  type        = string
  default     = null
}

variable "temp_age_days" {
  description = "Days after which Dataflow temp files (temp/ in the dataflow bucket) are deleted."
  type        = number
  default     = 7
}

variable "staging_age_days" {
  description = "Days after which staged job packages (staging/ in the dataflow bucket) are deleted."
  type        = number
  default     = 30
}

variable "launcher_runs_tpus" {
  description = "Let the launcher (Prefect worker) create TPU VMs that run as the trainer account."
  type        = bool
  default     = true
}
