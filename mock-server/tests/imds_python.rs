//! The metadata services against the official Python clients (botocore's
//! IMDS fetcher, google-auth's compute-engine credentials, requests for
//! Azure's IMDS): `tests-python/run.sh imds` with this build's
//! `skyfleet-mock` (skipped with a message where pip cannot install them).

mod python_support;

#[test]
fn official_python_clients_read_the_metadata_services() {
    python_support::run_suite("imds");
}
