//! EC2 at time_scale 0.01 against the official Python client (boto3):
//! `tests-python/run.sh ec2` with this build's `skyfleet-mock` drives launch
//! templates, DescribeInstanceTypes, volumes with boto3's waiters
//! (attach, detach, delete), block-device volumes with TagSpecifications,
//! and CreateFleet instant past a stocked-out override (skipped with a
//! message where pip cannot install boto3).

mod python_support;

#[test]
fn boto3_drives_templates_volumes_and_instant_fleets() {
    python_support::run_suite("ec2");
}
