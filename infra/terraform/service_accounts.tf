# One identity per role, so each gets only what its job needs (iam_*.tf).

resource "google_service_account" "dataflow_worker" {
  account_id   = "${var.name_prefix}-dataflow"
  display_name = "unibed Dataflow workers"
  depends_on   = [google_project_service.api]
}

resource "google_service_account" "launcher" {
  account_id   = "${var.name_prefix}-launcher"
  display_name = "unibed Prefect worker: launches Dataflow jobs and TPU training"
  depends_on   = [google_project_service.api]
}

resource "google_service_account" "trainer" {
  account_id   = "${var.name_prefix}-trainer"
  display_name = "unibed TPU training VMs"
  depends_on   = [google_project_service.api]
}
