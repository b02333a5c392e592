//! ARM at time_scale 0.01 against the official Python management clients
//! (azure-mgmt-network, azure-mgmt-compute and azure-core's pollers):
//! `tests-python/run.sh azure` with this build's `skyfleet-mock` creates
//! and deletes a public IP -> NIC -> disk -> VM chain in under 2 s, which
//! only scaled polling hints the clients honour allow (skipped with a
//! message where pip cannot install the clients).

mod python_support;

#[test]
fn official_python_clients_run_a_time_scaled_arm_chain_in_under_2s() {
    python_support::run_suite("azure");
}
