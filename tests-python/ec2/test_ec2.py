"""EC2 through the official Python client (boto3) at time_scale 0.01:
launch templates and RunInstances with a template, DescribeInstanceTypes,
volumes (tag filters, attach and detach with boto3's own waiters, delete),
the volumes RunInstances creates from block device mappings with their
TagSpecifications, and CreateFleet of type instant whose first override is
stocked out through the mock's control API.

The mock binary comes from SKYFLEET_MOCK_BIN (tests-python/run.sh sets it);
it runs on plain HTTP, and boto3 signs with a fixed test key.
"""

import json
import os
import subprocess
import tempfile
import time
import urllib.request

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

TIME_SCALE = 0.01
# boto3's waiters poll every 15 s by default; the mock's scaled
# transitions take milliseconds.
FAST = {"Delay": 0.05, "MaxAttempts": 200}


@pytest.fixture(scope="module")
def mock_url():
    binary = os.environ.get("SKYFLEET_MOCK_BIN")
    if not binary or not os.access(binary, os.X_OK):
        pytest.fail("SKYFLEET_MOCK_BIN must name the skyfleet-mock binary")
    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "mock.json")
        with open(config, "w") as f:
            json.dump({"time_scale": TIME_SCALE}, f)
        proc = subprocess.Popen(
            [binary, "--listen", "127.0.0.1:0", "--config", config],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            url = proc.stdout.readline().strip()
            assert url.startswith("http://127.0.0.1:"), url
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def client(url, key):
    return boto3.client(
        "ec2",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=key,
        aws_secret_access_key="secret",
        config=Config(retries={"max_attempts": 1}),
    )


def control(url, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method=method)
    req.add_header("content-type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def error_code(excinfo):
    return excinfo.value.response["Error"]["Code"]


def tag(resource, key):
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}.get(key)


def test_launch_template_and_run_instances_with_it(mock_url):
    ec2 = client(mock_url, "AKIDPYTEMPLATE")
    lt = ec2.create_launch_template(
        LaunchTemplateName="py-web",
        LaunchTemplateData={
            "ImageId": "ami-12345678",
            "InstanceType": "t3.small",
            "TagSpecifications": [
                {"ResourceType": "instance", "Tags": [{"Key": "role", "Value": "web"}]}
            ],
        },
    )["LaunchTemplate"]
    assert lt["LaunchTemplateId"].startswith("lt-")
    assert lt["LatestVersionNumber"] == 1
    found = ec2.describe_launch_templates(LaunchTemplateNames=["py-web"])["LaunchTemplates"]
    assert [t["LaunchTemplateId"] for t in found] == [lt["LaunchTemplateId"]]

    run = ec2.run_instances(
        LaunchTemplate={"LaunchTemplateId": lt["LaunchTemplateId"], "Version": "$Latest"},
        MinCount=2,
        MaxCount=2,
    )
    ids = [i["InstanceId"] for i in run["Instances"]]
    assert len(ids) == 2
    ec2.get_waiter("instance_running").wait(InstanceIds=ids, WaiterConfig=FAST)
    desc = ec2.describe_instances(InstanceIds=ids)["Reservations"][0]["Instances"]
    for i in desc:
        assert i["InstanceType"] == "t3.small"
        assert i["ImageId"] == "ami-12345678"
        assert tag(i, "role") == "web"
        assert tag(i, "aws:ec2launchtemplate:id") == lt["LaunchTemplateId"]

    with pytest.raises(ClientError) as e:
        ec2.run_instances(
            LaunchTemplate={"LaunchTemplateName": "no-such-template"}, MinCount=1, MaxCount=1
        )
    assert error_code(e) == "InvalidLaunchTemplateName.NotFoundException"


def test_describe_instance_types(mock_url):
    ec2 = client(mock_url, "AKIDPYTYPES")
    out = ec2.describe_instance_types(InstanceTypes=["t3.micro", "m5.large"])["InstanceTypes"]
    by_name = {t["InstanceType"]: t for t in out}
    assert set(by_name) == {"t3.micro", "m5.large"}
    assert by_name["m5.large"]["VCpuInfo"]["DefaultVCpus"] == 2
    assert by_name["m5.large"]["MemoryInfo"]["SizeInMiB"] == 8192
    with pytest.raises(ClientError) as e:
        ec2.describe_instance_types(InstanceTypes=["m5.huge"])
    assert error_code(e) == "InvalidInstanceType"


def test_volume_create_filter_attach_detach_delete(mock_url):
    ec2 = client(mock_url, "AKIDPYVOLUMES")
    inst = ec2.run_instances(
        ImageId="ami-12345678",
        MinCount=1,
        MaxCount=1,
        Placement={"AvailabilityZone": "us-east-1a"},
    )["Instances"][0]["InstanceId"]
    vol = ec2.create_volume(
        AvailabilityZone="us-east-1a",
        Size=20,
        VolumeType="gp3",
        TagSpecifications=[
            {"ResourceType": "volume", "Tags": [{"Key": "pool", "Value": "py-data"}]}
        ],
    )["VolumeId"]
    ec2.create_volume(AvailabilityZone="us-east-1a", Size=5)
    tagged = ec2.describe_volumes(Filters=[{"Name": "tag:pool", "Values": ["py-data"]}])
    assert [v["VolumeId"] for v in tagged["Volumes"]] == [vol]
    ec2.get_waiter("volume_available").wait(VolumeIds=[vol], WaiterConfig=FAST)
    ec2.get_waiter("instance_running").wait(InstanceIds=[inst], WaiterConfig=FAST)

    att = ec2.attach_volume(VolumeId=vol, InstanceId=inst, Device="/dev/sdf")
    assert att["State"] == "attaching"
    ec2.get_waiter("volume_in_use").wait(VolumeIds=[vol], WaiterConfig=FAST)
    v = ec2.describe_volumes(VolumeIds=[vol])["Volumes"][0]
    assert v["State"] == "in-use"
    assert v["Attachments"][0]["InstanceId"] == inst
    assert v["Attachments"][0]["Device"] == "/dev/sdf"
    mapped = ec2.describe_instances(InstanceIds=[inst])["Reservations"][0]["Instances"][0]
    devices = {m["DeviceName"]: m["Ebs"]["VolumeId"] for m in mapped["BlockDeviceMappings"]}
    assert devices["/dev/sdf"] == vol
    assert "/dev/xvda" in devices

    with pytest.raises(ClientError) as e:
        ec2.delete_volume(VolumeId=vol)
    assert error_code(e) == "VolumeInUse"
    with pytest.raises(ClientError) as e:
        ec2.attach_volume(VolumeId=vol, InstanceId=inst, Device="/dev/sdg")
    assert error_code(e) == "IncorrectState"
    with pytest.raises(ClientError) as e:
        ec2.attach_volume(VolumeId="vol-0123456789abcdef0", InstanceId=inst, Device="/dev/sdg")
    assert error_code(e) == "InvalidVolume.NotFound"

    det = ec2.detach_volume(VolumeId=vol, InstanceId=inst)
    assert det["State"] == "detaching"
    ec2.get_waiter("volume_available").wait(VolumeIds=[vol], WaiterConfig=FAST)
    assert ec2.describe_volumes(VolumeIds=[vol])["Volumes"][0]["Attachments"] == []
    ec2.delete_volume(VolumeId=vol)
    ec2.get_waiter("volume_deleted").wait(VolumeIds=[vol], WaiterConfig=FAST)


def test_block_device_volumes_carry_tag_specifications(mock_url):
    ec2 = client(mock_url, "AKIDPYBDM")
    run = ec2.run_instances(
        ImageId="ami-12345678",
        MinCount=1,
        MaxCount=1,
        BlockDeviceMappings=[
            {"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 16}},
            {
                "DeviceName": "/dev/sdb",
                "Ebs": {"VolumeSize": 100, "VolumeType": "io1", "Iops": 500,
                        "DeleteOnTermination": False},
            },
        ],
        TagSpecifications=[
            {"ResourceType": "volume", "Tags": [{"Key": "backup", "Value": "daily"}]},
            {"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "db"}]},
        ],
    )
    inst = run["Instances"][0]["InstanceId"]
    vols = ec2.describe_volumes(Filters=[{"Name": "tag:backup", "Values": ["daily"]}])["Volumes"]
    by_device = {v["Attachments"][0]["Device"]: v for v in vols}
    assert set(by_device) == {"/dev/xvda", "/dev/sdb"}
    assert by_device["/dev/xvda"]["Size"] == 16
    assert by_device["/dev/sdb"]["VolumeType"] == "io1"
    assert by_device["/dev/sdb"]["Iops"] == 500
    for v in vols:
        assert v["State"] == "in-use"
        assert v["Attachments"][0]["InstanceId"] == inst
        assert tag(v, "Name") is None, "instance tags stay on the instance"

    ec2.terminate_instances(InstanceIds=[inst])
    ec2.get_waiter("instance_terminated").wait(InstanceIds=[inst], WaiterConfig=FAST)
    data = by_device["/dev/sdb"]["VolumeId"]
    ec2.get_waiter("volume_available").wait(VolumeIds=[data], WaiterConfig=FAST)
    left = ec2.describe_volumes(Filters=[{"Name": "tag:backup", "Values": ["daily"]}])["Volumes"]
    assert [v["VolumeId"] for v in left] == [data], "the root volume is deleted on termination"


def test_create_fleet_instant_falls_back_past_a_stockout(mock_url):
    ec2 = client(mock_url, "AKIDPYFLEET")
    lt = ec2.create_launch_template(
        LaunchTemplateName="py-fleet",
        LaunchTemplateData={"ImageId": "ami-12345678", "InstanceType": "t3.micro"},
    )["LaunchTemplate"]["LaunchTemplateId"]
    control(mock_url, "PUT", "/_mock/stockouts", {"stockouts": [
        {"cloud": "aws", "location": "us-east-1a", "instance_type": "m5.large"}
    ]})
    try:
        out = ec2.create_fleet(
            Type="instant",
            LaunchTemplateConfigs=[{
                "LaunchTemplateSpecification": {"LaunchTemplateId": lt, "Version": "$Latest"},
                "Overrides": [
                    {"InstanceType": "m5.large", "AvailabilityZone": "us-east-1a", "Priority": 1},
                    {"InstanceType": "c5.large", "AvailabilityZone": "us-east-1a", "Priority": 2},
                ],
            }],
            TargetCapacitySpecification={
                "TotalTargetCapacity": 2,
                "DefaultTargetCapacityType": "on-demand",
            },
            OnDemandOptions={"AllocationStrategy": "prioritized"},
            TagSpecifications=[
                {"ResourceType": "fleet", "Tags": [{"Key": "batch", "Value": "7"}]},
                {"ResourceType": "instance", "Tags": [{"Key": "batch", "Value": "7"}]},
            ],
        )
    finally:
        control(mock_url, "DELETE", "/_mock/stockouts")
    assert out["FleetId"].startswith("fleet-")
    errors = out["Errors"]
    assert len(errors) == 1, errors
    assert errors[0]["ErrorCode"] == "InsufficientInstanceCapacity"
    assert errors[0]["Lifecycle"] == "on-demand"
    assert errors[0]["LaunchTemplateAndOverrides"]["Overrides"]["InstanceType"] == "m5.large"
    assert errors[0]["LaunchTemplateAndOverrides"]["LaunchTemplateSpecification"][
        "LaunchTemplateId"] == lt
    instances = out["Instances"]
    assert len(instances) == 1, instances
    assert instances[0]["InstanceType"] == "c5.large"
    assert instances[0]["Lifecycle"] == "on-demand"
    ids = instances[0]["InstanceIds"]
    assert len(ids) == 2
    desc = ec2.describe_instances(InstanceIds=ids)["Reservations"]
    launched = [i for r in desc for i in r["Instances"]]
    assert {i["InstanceType"] for i in launched} == {"c5.large"}
    assert {i["Placement"]["AvailabilityZone"] for i in launched} == {"us-east-1a"}
    assert {tag(i, "aws:ec2:fleet-id") for i in launched} == {out["FleetId"]}
    assert {tag(i, "batch") for i in launched} == {"7"}

    with pytest.raises(ClientError) as e:
        ec2.create_fleet(
            Type="maintain",
            LaunchTemplateConfigs=[{"LaunchTemplateSpecification": {"LaunchTemplateId": lt,
                                                                   "Version": "1"}}],
            TargetCapacitySpecification={"TotalTargetCapacity": 1},
        )
    assert error_code(e) == "InvalidParameterValue"
