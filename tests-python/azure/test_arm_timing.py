"""ARM long-running operations through the official Python management
clients (azure-mgmt-network, azure-mgmt-compute, azure-mgmt-resource and the
pollers of azure-core) at time_scale 0.01.

The pollers wait whatever the mock's polling hint says, and fall back to
30 s when it says nothing usable (azure-core reads `Retry-After: 0` as
absent, and `retry-after-ms` only without a `Retry-After`). The default
durations of the chain below add up to 116 s, 1.16 s at time_scale 0.01;
finishing in under 2 s leaves no room for a single unscaled 1 s hint, so it
shows the hints are scaled, sent in a form the clients honour, and that
each operation is reported done on the first poll after its scaled
duration.

The mock comes from the `mock` fixture of conftest.py.
"""

import time

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute import models as compute
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.network import models as network
from azure.mgmt.resource.resources import ResourceManagementClient
from conftest import StaticCredential

SUB = "5a3f3b6e-0c1d-4e2f-9a8b-7c6d5e4f3a2b"
RG = "pytest-rg"
LOC = "eastus"
TIME_SCALE = 0.01  # what the `mock` fixture of conftest.py starts with
BUDGET_S = 2.0


class Hints:
    """Records the polling hints of every response the clients read."""

    def __init__(self):
        self.retry_after = []
        self.retry_after_ms = []

    def __call__(self, response):
        headers = response.http_response.headers
        if "retry-after" in headers:
            self.retry_after.append(headers["retry-after"])
        if "retry-after-ms" in headers:
            self.retry_after_ms.append(headers["retry-after-ms"])


def clients(mock, hook):
    kw = dict(
        base_url=mock.url,
        credential_scopes=[mock.url + "/.default"],
        connection_verify=mock.ca,
        raw_response_hook=hook,
    )
    cred = StaticCredential()
    return (
        ResourceManagementClient(cred, SUB, **kw),
        NetworkManagementClient(cred, SUB, **kw),
        ComputeManagementClient(cred, SUB, **kw),
    )


def rid(provider, kind, name):
    return f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/{provider}/{kind}/{name}"


def test_public_ip_nic_disk_vm_chain_at_time_scale_001_takes_under_2s(mock):
    hints = Hints()
    resources, net, comp = clients(mock, hints)

    # Prerequisites, outside the timed part (ARM requires them to exist).
    resources.resource_groups.create_or_update(RG, {"location": LOC})
    net.virtual_networks.begin_create_or_update(
        RG,
        "vnet",
        network.VirtualNetwork(
            location=LOC,
            address_space=network.AddressSpace(address_prefixes=["10.0.0.0/16"]),
            subnets=[network.Subnet(name="default", address_prefix="10.0.1.0/24")],
        ),
    ).result()
    subnet_id = rid("Microsoft.Network", "virtualNetworks", "vnet") + "/subnets/default"
    hints.retry_after.clear()
    hints.retry_after_ms.clear()

    start = time.monotonic()
    pip = net.public_ip_addresses.begin_create_or_update(
        RG,
        "pip",
        network.PublicIPAddress(
            location=LOC,
            sku=network.PublicIPAddressSku(name="Standard"),
            public_ip_allocation_method="Static",
        ),
    ).result()
    nic = net.network_interfaces.begin_create_or_update(
        RG,
        "nic",
        network.NetworkInterface(
            location=LOC,
            ip_configurations=[
                network.NetworkInterfaceIPConfiguration(
                    name="ipconfig1",
                    subnet=network.Subnet(id=subnet_id),
                    public_ip_address=network.PublicIPAddress(id=pip.id),
                )
            ],
        ),
    ).result()
    disk = comp.disks.begin_create_or_update(
        RG,
        "disk",
        compute.Disk(
            location=LOC,
            sku=compute.DiskSku(name="Premium_LRS"),
            os_type="Linux",
            disk_size_gb=30,
            creation_data=compute.CreationData(create_option="Empty"),
        ),
    ).result()
    vm = comp.virtual_machines.begin_create_or_update(
        RG,
        "vm",
        compute.VirtualMachine(
            location=LOC,
            hardware_profile=compute.HardwareProfile(vm_size="Standard_D2s_v5"),
            storage_profile=compute.StorageProfile(
                os_disk=compute.OSDisk(
                    os_type="Linux",
                    create_option="Attach",
                    managed_disk=compute.ManagedDiskParameters(id=disk.id),
                )
            ),
            network_profile=compute.NetworkProfile(
                network_interfaces=[compute.NetworkInterfaceReference(id=nic.id, primary=True)]
            ),
        ),
    ).result()
    assert vm.provisioning_state == "Succeeded", vm.provisioning_state

    comp.virtual_machines.begin_delete(RG, "vm").result()
    net.network_interfaces.begin_delete(RG, "nic").result()
    net.public_ip_addresses.begin_delete(RG, "pip").result()
    comp.disks.begin_delete(RG, "disk").result()
    elapsed = time.monotonic() - start
    print(f"chain of 4 creates and 4 deletes at time_scale {TIME_SCALE}: {elapsed:.3f} s")

    # Everything is gone.
    for get in (
        lambda: comp.virtual_machines.get(RG, "vm"),
        lambda: net.network_interfaces.get(RG, "nic"),
        lambda: net.public_ip_addresses.get(RG, "pip"),
        lambda: comp.disks.get(RG, "disk"),
    ):
        with pytest.raises(ResourceNotFoundError):
            get()
    # The hints were scaled: 1 s unscaled is 10 ms here, sent as
    # retry-after-ms alone, never as Retry-After (and never Retry-After: 0).
    assert hints.retry_after_ms, "the operations carried no retry-after-ms"
    assert all(0 < int(ms) < 1000 for ms in hints.retry_after_ms), hints.retry_after_ms
    assert hints.retry_after == [], f"Retry-After sent for sub-second delays: {hints.retry_after}"
    assert elapsed < BUDGET_S, f"the chain took {elapsed:.3f} s (budget {BUDGET_S} s)"
