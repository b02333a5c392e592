//! Compute Engine at time_scale 0.01 against the official Python client
//! (google-cloud-compute with google-api-core's ExtendedOperation):
//! `tests-python/run.sh gce` with this build's `skyfleet-mock` inserts
//! (waiting with the operation and with `zoneOperations.wait`), lists
//! across zones with a filter, bulk inserts, sets labels with a current and
//! a stale fingerprint, stops, starts, suspends, resumes and deletes, and
//! runs into the INSTANCES quota (skipped with a message where pip cannot
//! install the client).

mod python_support;

#[test]
fn official_python_client_drives_the_compute_engine_surface() {
    python_support::run_suite("gce");
}
