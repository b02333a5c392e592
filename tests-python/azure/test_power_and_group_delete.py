"""VM power actions and a resource group delete through the official
Python management clients (azure-mgmt-compute, azure-mgmt-resource and the
pollers of azure-core) at time_scale 0.01: `begin_power_off`,
`begin_deallocate`, `begin_start` and `begin_restart` each finish, and the
instance view between them shows where the VM is; then
`resource_groups.begin_delete(...).result()` takes the group and the VM,
NIC, disk and network in it.
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

SUB = "0c9d6b4e-2f1a-4b3c-8d7e-6f5a4b3c2d1e"
RG = "pytest-power-rg"
LOC = "eastus"
# The default power durations (30 s powerOff, 60 s deallocate, 30 s start,
# 45 s restart) and the 10 s group delete add up to under 3 s at
# time_scale 0.01; anything near the clients' unscaled 30 s default poll
# would blow this.
BUDGET_S = 10.0


def clients(mock):
    kw = dict(
        base_url=mock.url,
        credential_scopes=[mock.url + "/.default"],
        connection_verify=mock.ca,
    )
    cred = StaticCredential()
    return (
        ResourceManagementClient(cred, SUB, **kw),
        NetworkManagementClient(cred, SUB, **kw),
        ComputeManagementClient(cred, SUB, **kw),
    )


def power_state(comp, name):
    view = comp.virtual_machines.instance_view(RG, name)
    codes = [s.code for s in view.statuses or [] if s.code.startswith("PowerState/")]
    assert len(codes) == 1, codes
    return codes[0]


def test_power_actions_then_group_delete(mock):
    resources, net, comp = clients(mock)
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
    subnet_id = (
        f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network"
        "/virtualNetworks/vnet/subnets/default"
    )
    nic = net.network_interfaces.begin_create_or_update(
        RG,
        "nic",
        network.NetworkInterface(
            location=LOC,
            ip_configurations=[
                network.NetworkInterfaceIPConfiguration(
                    name="ipconfig1", subnet=network.Subnet(id=subnet_id)
                )
            ],
        ),
    ).result()
    vm = comp.virtual_machines.begin_create_or_update(
        RG,
        "vm",
        compute.VirtualMachine(
            location=LOC,
            hardware_profile=compute.HardwareProfile(vm_size="Standard_D2s_v5"),
            storage_profile=compute.StorageProfile(
                image_reference=compute.ImageReference(
                    publisher="Canonical", offer="ubuntu-24_04-lts", sku="server", version="latest"
                ),
                os_disk=compute.OSDisk(create_option="FromImage"),
            ),
            os_profile=compute.OSProfile(
                computer_name="vm", admin_username="azureuser", admin_password="S3cret-pass!"
            ),
            network_profile=compute.NetworkProfile(
                network_interfaces=[compute.NetworkInterfaceReference(id=nic.id, primary=True)]
            ),
        ),
    ).result()
    assert vm.provisioning_state == "Succeeded", vm.provisioning_state
    assert power_state(comp, "vm") == "PowerState/running"

    start = time.monotonic()
    poller = comp.virtual_machines.begin_power_off(RG, "vm", skip_shutdown=False)
    # While it runs the VM is on its way down.
    assert power_state(comp, "vm") in ("PowerState/stopping", "PowerState/stopped")
    poller.result()
    assert poller.status() == "Succeeded", poller.status()
    assert power_state(comp, "vm") == "PowerState/stopped"

    comp.virtual_machines.begin_deallocate(RG, "vm").result()
    assert power_state(comp, "vm") == "PowerState/deallocated"

    comp.virtual_machines.begin_start(RG, "vm").result()
    assert power_state(comp, "vm") == "PowerState/running"

    comp.virtual_machines.begin_restart(RG, "vm").result()
    assert power_state(comp, "vm") == "PowerState/running"
    assert comp.virtual_machines.get(RG, "vm").provisioning_state == "Succeeded"
    elapsed = time.monotonic() - start
    print(f"powerOff, deallocate, start, restart at time_scale 0.01: {elapsed:.3f} s")
    assert elapsed < BUDGET_S, f"the power actions took {elapsed:.3f} s"

    # The group delete takes everything in it.
    poller = resources.resource_groups.begin_delete(RG)
    group = resources.resource_groups.get(RG)
    assert group.properties.provisioning_state in ("Deleting",), group.properties.provisioning_state
    poller.result()
    assert poller.status() == "Succeeded", poller.status()
    assert not resources.resource_groups.check_existence(RG)
    for get in (
        lambda: resources.resource_groups.get(RG),
        lambda: comp.virtual_machines.get(RG, "vm"),
        lambda: net.network_interfaces.get(RG, "nic"),
    ):
        with pytest.raises(ResourceNotFoundError):
            get()
    assert [v.name for v in comp.virtual_machines.list_all()] == []
