"""The mock's instance-metadata services, read by the official clients
through their documented overrides: botocore (AWS_EC2_METADATA_SERVICE_ENDPOINT)
reads the region, google-auth (GCE_METADATA_HOST) fetches and verifies the
identity token, and a plain HTTP client reads Azure's attested document.

The mock binary comes from SKYFLEET_MOCK_BIN (tests-python/run.sh sets it).
"""

import base64
import importlib
import json
import os
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

REGION = "eu-west-1"
ZONE = "europe-west1-b"
SUB = "0b1f6471-1bf0-4dda-aec3-cb9272f09590"
AUDIENCE = "https://manager.example.invalid/"


class Mock:
    def __init__(self, url, imds_url):
        self.url = url
        self.imds_url = imds_url


@pytest.fixture(scope="module")
def mock():
    binary = os.environ.get("SKYFLEET_MOCK_BIN")
    if not binary or not os.access(binary, os.X_OK):
        pytest.fail("SKYFLEET_MOCK_BIN must name the skyfleet-mock binary")
    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "mock.json")
        with open(config, "w") as f:
            json.dump({"time_scale": 0.001}, f)
        proc = subprocess.Popen(
            [binary, "--listen", "127.0.0.1:0", "--config", config],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            url = proc.stdout.readline().strip()
            imds_url = proc.stdout.readline().strip()
            assert url.startswith("http://127.0.0.1:"), url
            yield Mock(url, imds_url)
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def http(method, url, body=None, headers=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait(predicate, what):
    for _ in range(500):
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"{what} did not happen")


def ec2_instance(mock):
    auth = f"AWS4-HMAC-SHA256 Credential=AKIDPYTEST/20250101/{REGION}/ec2/aws4_request, SignedHeaders=host, Signature=00"
    headers = {"Authorization": auth, "Content-Type": "application/x-www-form-urlencoded"}
    form = urllib.parse.urlencode(
        {"Action": "RunInstances", "Version": "2016-11-15", "ImageId": "ami-12345678",
         "MinCount": "1", "MaxCount": "1", "MetadataOptions.HttpTokens": "required"}
    ).encode()
    status, body = http("POST", mock.url + "/", form, headers)
    assert status == 200, body
    text = body.decode()
    iid = text.split("<instanceId>")[1].split("</instanceId>")[0]
    describe = urllib.parse.urlencode(
        {"Action": "DescribeInstances", "Version": "2016-11-15", "InstanceId.1": iid}
    ).encode()
    wait(lambda: b"<name>running</name>" in http("POST", mock.url + "/", describe, headers)[1], "launch")
    return iid


def test_botocore_reads_the_region_through_its_endpoint_override(mock, monkeypatch):
    from botocore.session import get_session
    from botocore.utils import IMDSRegionProvider

    iid = ec2_instance(mock)
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", f"{mock.imds_url}/_imds/aws/{iid}")
    monkeypatch.delenv("AWS_EC2_METADATA_DISABLED", raising=False)
    session = get_session()
    assert IMDSRegionProvider(session).provide() == REGION


def gce_instance(mock, name):
    base = f"{mock.url}/compute/v1/projects/py-proj/zones/{ZONE}/instances"
    body = json.dumps({
        "name": name,
        "machineType": f"zones/{ZONE}/machineTypes/e2-small",
        "disks": [{"boot": True, "initializeParams": {"sourceImage": "projects/debian-cloud/global/images/family/debian-12"}}],
        "networkInterfaces": [{"network": "global/networks/default"}],
        "serviceAccounts": [{"email": "default", "scopes": ["https://www.googleapis.com/auth/cloud-platform"]}],
    }).encode()
    headers = {"Authorization": "Bearer t", "Content-Type": "application/json"}
    status, out = http("POST", base, body, headers)
    assert status == 200, out
    wait(lambda: json.loads(http("GET", f"{base}/{name}", None, headers)[1]).get("status") == "RUNNING", "boot")


def test_google_auth_fetches_and_verifies_the_identity_token(mock, monkeypatch):
    gce_instance(mock, "py-vm")
    status, out = http(
        "POST", mock.url + "/_mock/imds/listen",
        json.dumps({"project": "py-proj", "zone": ZONE, "instance": "py-vm"}).encode(),
        {"Content-Type": "application/json"},
    )
    assert status == 200, out
    host = json.loads(out)["host"]
    monkeypatch.setenv("GCE_METADATA_HOST", host)
    monkeypatch.setenv("GCE_METADATA_IP", host)

    # google-auth reads GCE_METADATA_HOST when its metadata module loads.
    from google.auth.compute_engine import _metadata
    importlib.reload(_metadata)
    from google.auth import compute_engine, jwt
    from google.auth.transport.requests import Request
    from google.oauth2 import id_token

    request = Request()
    assert _metadata.is_on_gce(request)
    creds = compute_engine.IDTokenCredentials(
        request, target_audience=AUDIENCE, use_metadata_identity_endpoint=True
    )
    creds.refresh(request)
    claims = id_token.verify_token(
        creds.token, request, audience=AUDIENCE, certs_url=mock.url + "/oauth2/v1/certs"
    )
    assert claims["iss"] == "https://accounts.google.com"
    engine = claims["google"]["compute_engine"]
    assert engine["project_id"] == "py-proj"
    assert engine["instance_name"] == "py-vm"
    assert engine["zone"] == ZONE
    assert claims["exp"] == claims["iat"] + 3600
    with pytest.raises(ValueError):
        id_token.verify_token(creds.token, request, audience="https://other.invalid/",
                              certs_url=mock.url + "/oauth2/v1/certs")
    unverified = jwt.decode(creds.token, verify=False)
    assert unverified["email"].endswith("-compute@developer.gserviceaccount.com")


def arm(mock, path, body=None):
    url = f"{mock.url}/subscriptions/{SUB}/resourceGroups/rg{path}?api-version=2024-07-01"
    headers = {"Authorization": "Bearer t", "Content-Type": "application/json"}
    if body is not None:
        status, out = http("PUT", url, json.dumps(body).encode(), headers)
        assert status < 300, out

    def done():
        v = json.loads(http("GET", url, None, headers)[1])
        return not path or v.get("properties", {}).get("provisioningState") == "Succeeded"

    wait(done, f"PUT {path}")
    return json.loads(http("GET", url, None, headers)[1])


def test_a_plain_client_reads_the_attested_document(mock):
    arm(mock, "", {"location": "westeurope"})
    vnet = "/providers/Microsoft.Network/virtualNetworks/vnet"
    arm(mock, vnet, {"location": "westeurope", "properties": {
        "addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
        "subnets": [{"name": "default", "properties": {"addressPrefix": "10.0.1.0/24"}}]}})
    subnet = f"/subscriptions/{SUB}/resourceGroups/rg{vnet}/subnets/default"
    nic = arm(mock, "/providers/Microsoft.Network/networkInterfaces/nic", {"location": "westeurope", "properties": {
        "ipConfigurations": [{"name": "ip", "properties": {"subnet": {"id": subnet}}}]}})
    user_data = base64.b64encode(b"worker-id=w-1").decode()
    vm = arm(mock, "/providers/Microsoft.Compute/virtualMachines/vm", {"location": "westeurope", "properties": {
        "hardwareProfile": {"vmSize": "Standard_D2s_v5"},
        "storageProfile": {"imageReference": {"publisher": "p", "offer": "o", "sku": "s", "version": "latest"},
                           "osDisk": {"createOption": "FromImage"}},
        "userData": user_data,
        "networkProfile": {"networkInterfaces": [{"id": nic["id"]}]}}})
    vm_id = vm["properties"]["vmId"]
    base = f"{mock.imds_url}/_imds/azure/{vm_id}/metadata"
    status, out = http("GET", f"{base}/attested/document?api-version=2020-09-01&nonce=1234567890",
                       headers={"Metadata": "true"})
    assert status == 200, out
    doc = json.loads(out)
    assert doc["encoding"] == "pkcs7"
    der = base64.b64decode(doc["signature"])
    assert b'"nonce":"1234567890"' in der and vm_id.encode() in der
    status, out = http("GET", f"{base}/instance/compute/userData?api-version=2021-01-01&format=text",
                       headers={"Metadata": "true"})
    assert (status, out.decode()) == (200, user_data)
    status, _ = http("GET", f"{base}/attested/document?api-version=2020-09-01&nonce=12345678901",
                     headers={"Metadata": "true"})
    assert status == 400
