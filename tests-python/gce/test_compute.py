"""Compute Engine through the official Python client (google-cloud-compute,
its REST transport and google-api-core's ExtendedOperation) at
time_scale 0.01.

The client is pointed at the mock with `client_options.api_endpoint`
(plain http; the transport keeps an explicit scheme) and sends a fixed
bearer token from `google.oauth2.credentials.Credentials`. It covers
insert (waited on with the returned operation's `.result()` and with
`ZoneOperationsClient.wait`), aggregated_list with a label filter across
two zones, bulk_insert, set_labels with the current and a stale
fingerprint (412 -> PreconditionFailed), stop/start/suspend/resume with
status checks, delete, and the INSTANCES quota (an operation failing with
QUOTA_EXCEEDED -> Forbidden).

The mock binary comes from SKYFLEET_MOCK_BIN (tests-python/run.sh sets it).
"""

import json
import os
import subprocess
import tempfile
import time

import pytest
from google.api_core import exceptions
from google.api_core.client_options import ClientOptions
from google.cloud import compute_v1
from google.oauth2.credentials import Credentials

PROJECT = "pytest-gce"
ZONE_A = "us-central1-a"
ZONE_B = "us-central1-b"
TIME_SCALE = 0.01
INSTANCE_LIMIT = 10
IMAGE = "projects/debian-cloud/global/images/family/debian-12"


@pytest.fixture(scope="module")
def url():
    binary = os.environ.get("SKYFLEET_MOCK_BIN")
    if not binary or not os.access(binary, os.X_OK):
        pytest.fail("SKYFLEET_MOCK_BIN must name the skyfleet-mock binary")
    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "mock.json")
        with open(config, "w") as f:
            json.dump(
                {"time_scale": TIME_SCALE, "gcp": {"instance_limit": INSTANCE_LIMIT}}, f
            )
        proc = subprocess.Popen(
            [binary, "--listen", "127.0.0.1:0", "--config", config],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            line = proc.stdout.readline().strip()
            assert line.startswith("http://127.0.0.1:"), line
            yield line
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def options(url):
    return dict(
        credentials=Credentials(token="pytest-token"),
        client_options=ClientOptions(api_endpoint=url),
        transport="rest",
    )


@pytest.fixture(scope="module")
def zone_ops(url):
    return compute_v1.ZoneOperationsClient(**options(url))


@pytest.fixture(scope="module")
def instances(url, zone_ops):
    client = compute_v1.InstancesClient(**options(url))
    # The client waits on an operation with a ZoneOperationsClient of its
    # own, built without the client's options (it would call
    # compute.googleapis.com): hand it one pointed at the mock.
    client._transport._extended_operations_services["zone_operations"] = zone_ops
    return client


def body(name, labels=None):
    return compute_v1.Instance(
        name=name,
        machine_type=f"zones/{ZONE_A}/machineTypes/e2-small",
        disks=[
            compute_v1.AttachedDisk(
                boot=True,
                auto_delete=True,
                initialize_params=compute_v1.AttachedDiskInitializeParams(source_image=IMAGE),
            )
        ],
        network_interfaces=[compute_v1.NetworkInterface(network="global/networks/default")],
        labels=labels or {},
    )


def insert(instances, name, zone=ZONE_A, labels=None, project=PROJECT):
    res = body(name, labels)
    res.machine_type = f"zones/{zone}/machineTypes/e2-small"
    return instances.insert(project=project, zone=zone, instance_resource=res)


def status_becomes(instances, name, want, zone=ZONE_A, within_s=10.0):
    deadline = time.monotonic() + within_s
    seen = None
    while time.monotonic() < deadline:
        seen = instances.get(project=PROJECT, zone=zone, instance=name).status
        if seen == want:
            return
        time.sleep(0.02)
    pytest.fail(f"{name} is {seen}, not {want}, after {within_s} s")


def test_insert_waits_with_the_operation_and_with_zone_operations_wait(instances, zone_ops):
    op = insert(instances, "py-one")
    op.result(timeout=30)
    assert op.done()
    assert op.error_code is None or op.error_code == 0
    status_becomes(instances, "py-one", "RUNNING")
    got = instances.get(project=PROJECT, zone=ZONE_A, instance="py-one")
    assert got.name == "py-one"
    assert got.machine_type.endswith(f"/zones/{ZONE_A}/machineTypes/e2-small")
    assert got.zone.endswith(f"/zones/{ZONE_A}")

    op = insert(instances, "py-two", zone=ZONE_B)
    for _ in range(100):
        waited = zone_ops.wait(project=PROJECT, zone=ZONE_B, operation=op.name)
        if waited.status == compute_v1.Operation.Status.DONE:
            break
    assert waited.status == compute_v1.Operation.Status.DONE
    assert waited.operation_type == "insert"
    assert waited.target_link.endswith(f"/zones/{ZONE_B}/instances/py-two")
    assert not waited.error.errors
    assert instances.get(project=PROJECT, zone=ZONE_B, instance="py-two").name == "py-two"


def test_aggregated_list_filters_across_two_zones(instances):
    ops = [
        insert(instances, "agg-a", zone=ZONE_A, labels={"team": "blue"}),
        insert(instances, "agg-b", zone=ZONE_B, labels={"team": "blue"}),
        insert(instances, "agg-c", zone=ZONE_B, labels={"team": "red"}),
    ]
    for op in ops:
        op.result(timeout=30)
    found = {}
    for scope, scoped in instances.aggregated_list(
        request=compute_v1.AggregatedListInstancesRequest(
            project=PROJECT, filter='labels.team = "blue"'
        )
    ):
        for inst in scoped.instances:
            found[inst.name] = scope
    assert found == {"agg-a": f"zones/{ZONE_A}", "agg-b": f"zones/{ZONE_B}"}


def test_bulk_insert_names_instances_from_the_pattern(instances):
    props = compute_v1.InstanceProperties(
        machine_type="e2-small",
        disks=[
            compute_v1.AttachedDisk(
                boot=True,
                auto_delete=True,
                initialize_params=compute_v1.AttachedDiskInitializeParams(source_image=IMAGE),
            )
        ],
        network_interfaces=[compute_v1.NetworkInterface(network="global/networks/default")],
        labels={"batch": "py"},
    )
    op = instances.bulk_insert(
        project=PROJECT,
        zone=ZONE_A,
        bulk_insert_instance_resource_resource=compute_v1.BulkInsertInstanceResource(
            count=3, name_pattern="bulk-##", instance_properties=props
        ),
    )
    op.result(timeout=30)
    assert op.operation_type == "bulkInsert"
    names = sorted(
        i.name
        for i in instances.list(
            request=compute_v1.ListInstancesRequest(
                project=PROJECT, zone=ZONE_A, filter='labels.batch = "py"'
            )
        )
    )
    assert names == ["bulk-01", "bulk-02", "bulk-03"]


def test_set_labels_needs_the_current_fingerprint(instances):
    insert(instances, "py-labels", labels={"a": "1"}).result(timeout=30)
    first = instances.get(project=PROJECT, zone=ZONE_A, instance="py-labels")
    assert dict(first.labels) == {"a": "1"}
    stale = first.label_fingerprint
    instances.set_labels(
        project=PROJECT,
        zone=ZONE_A,
        instance="py-labels",
        instances_set_labels_request_resource=compute_v1.InstancesSetLabelsRequest(
            labels={"a": "2", "b": "x"}, label_fingerprint=stale
        ),
    ).result(timeout=30)
    second = instances.get(project=PROJECT, zone=ZONE_A, instance="py-labels")
    assert dict(second.labels) == {"a": "2", "b": "x"}
    assert second.label_fingerprint != stale
    with pytest.raises(exceptions.PreconditionFailed):
        instances.set_labels(
            project=PROJECT,
            zone=ZONE_A,
            instance="py-labels",
            instances_set_labels_request_resource=compute_v1.InstancesSetLabelsRequest(
                labels={"c": "3"}, label_fingerprint=stale
            ),
        ).result(timeout=30)
    third = instances.get(project=PROJECT, zone=ZONE_A, instance="py-labels")
    assert dict(third.labels) == {"a": "2", "b": "x"}


def test_power_operations_change_the_status_then_delete(instances):
    insert(instances, "py-power").result(timeout=30)
    status_becomes(instances, "py-power", "RUNNING")
    args = dict(project=PROJECT, zone=ZONE_A, instance="py-power")

    op = instances.stop(**args)
    assert instances.get(**args).status == "STOPPING"
    op.result(timeout=30)
    status_becomes(instances, "py-power", "TERMINATED")

    instances.start(**args).result(timeout=30)
    status_becomes(instances, "py-power", "RUNNING")

    op = instances.suspend(**args)
    assert instances.get(**args).status == "SUSPENDING"
    op.result(timeout=30)
    status_becomes(instances, "py-power", "SUSPENDED")

    instances.resume(**args).result(timeout=30)
    status_becomes(instances, "py-power", "RUNNING")

    op = instances.delete(**args)
    assert op.operation_type == "delete"
    op.result(timeout=30)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            instances.get(**args)
        except exceptions.NotFound:
            break
        time.sleep(0.02)
    else:
        pytest.fail("py-power was never deleted")


def test_an_insert_beyond_the_instances_quota_raises_forbidden(instances):
    project = "pytest-gce-quota"
    op = instances.bulk_insert(
        project=project,
        zone=ZONE_A,
        bulk_insert_instance_resource_resource=compute_v1.BulkInsertInstanceResource(
            count=INSTANCE_LIMIT,
            name_pattern="q-##",
            instance_properties=compute_v1.InstanceProperties(
                machine_type="e2-small",
                disks=[
                    compute_v1.AttachedDisk(
                        boot=True,
                        initialize_params=compute_v1.AttachedDiskInitializeParams(
                            source_image=IMAGE
                        ),
                    )
                ],
                network_interfaces=[
                    compute_v1.NetworkInterface(network="global/networks/default")
                ],
            ),
        ),
    )
    op.result(timeout=30)
    op = insert(instances, "one-too-many", project=project)
    with pytest.raises(exceptions.Forbidden) as raised:
        op.result(timeout=30)
    assert f"Quota 'INSTANCES' exceeded.  Limit: {INSTANCE_LIMIT}.0 in region us-central1." in str(
        raised.value
    )
    assert op.error.errors[0].code == "QUOTA_EXCEEDED"
    with pytest.raises(exceptions.NotFound):
        instances.get(project=project, zone=ZONE_A, instance="one-too-many")
