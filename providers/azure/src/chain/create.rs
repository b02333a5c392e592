//! Creation: public IP -> NIC -> data disks -> (explicit OS disk) -> VM,
//! each item advanced by [`advance`] until the VM is confirmed.

use std::time::Duration;

use serde_json::Value;
use skyfleet_core::clock::until;
use skyfleet_core::{Error, Phase, Result, Step, Worker};

use super::advance::{advance, Direction, Outcome, Place};
use super::state::ChainState;
use super::{fail, out, Ctx};
use crate::client::ResourceType;
use crate::idempotency::Names;
use crate::launch::AzureLaunch;
use crate::resources;

/// One creation step: poll the first unconfirmed resource, and once it is
/// confirmed PUT the next.
pub(super) async fn step(cx: &Ctx<'_>, worker: &Worker, mut st: ChainState) -> Result<Step> {
    let launch = match AzureLaunch::parse(&worker.spec.launch) {
        Ok(l) => l,
        Err(e) => return fail(&mut st, &e),
    };
    let tags = resources::tags(&launch, &worker.spec.tags.to_map());
    let user_data = match launch.user_data(&worker.spec, cx.config.root_url.as_deref()) {
        Ok(u) => u,
        Err(e) => return fail(&mut st, &e),
    };
    // A wait never runs past the provisioning deadline.
    let cap = |wait: Duration| wait.min(until(cx.now(), worker.provisioning_deadline()));
    loop {
        let Some(i) = st.create.iter().position(|l| !l.done) else {
            if !launch.os_disk.explicit && !st.os_disk_tagged {
                tag_os_disk(cx, &st, &tags).await?;
                st.os_disk_tagged = true;
            }
            st.instance_view_404s = 0;
            return out(&st, Phase::Running, cx.config.health_interval, None);
        };
        let ChainState {
            resource_group: rg,
            location: region,
            names,
            create,
            ..
        } = &mut st;
        let at = Place { rg, region };
        let item = &mut create[i];
        let (ty, name) = (item.ty, item.name.clone());
        let vm = VmData {
            launch: &launch,
            user_data: &user_data,
        };
        let put = || body(cx, rg, names, &vm, &tags, ty, &name);
        match advance(cx, Direction::Create, &at, item, put).await? {
            Outcome::Done { sent, note, .. } => {
                item.done = true;
                if sent {
                    return out(&st, Phase::Requested, Duration::ZERO, note);
                }
            }
            Outcome::Later { wait, note } => return out(&st, Phase::Requested, cap(wait), note),
            Outcome::Failed(e) => return fail(&mut st, &e),
        }
    }
}

/// Puts the ownership tags on the OS disk the VM made from its image.
///
/// ARM tags only the VM: a VM's `storageProfile.osDisk` (and its
/// `managedDisk` parameters: id, storage account type, encryption set,
/// security profile) has no tags field, and the disk ARM creates with the
/// VM inherits none. Untagged, a disk left behind (`deleteOption: Detach`
/// and a lost worker record) would be invisible to the orphan sweeper. So
/// once the VM is confirmed, one PATCH (`Disks_Update`) tags the disk, and
/// the worker is running only after it succeeded (a failure is retried on
/// the next step). Creating the disk explicitly instead (`os_disk.explicit`,
/// tagged by its own PUT) would change what the launch config may say (a
/// concrete image version, custom data through `userData`), so it stays a
/// choice of the launch config.
async fn tag_os_disk(cx: &Ctx<'_>, st: &ChainState, tags: &Value) -> Result<()> {
    let id = cx
        .client
        .resource_id(&st.resource_group, ResourceType::Disk, &st.names.os_disk);
    cx.client
        .patch_tags(&id, ResourceType::Disk, &st.location, tags)
        .await
}

/// The launch config and the VM's `userData` (the bootstrap document).
struct VmData<'a> {
    launch: &'a AzureLaunch,
    user_data: &'a str,
}

/// The PUT body of resource `name` of type `ty`.
fn body(
    cx: &Ctx<'_>,
    rg: &str,
    n: &Names,
    vm: &VmData<'_>,
    tags: &Value,
    ty: ResourceType,
    name: &str,
) -> Result<Option<Value>> {
    let launch = vm.launch;
    let id_of = |t: ResourceType, n: &str| cx.client.resource_id(rg, t, n);
    let body = match ty {
        ResourceType::PublicIp => resources::public_ip(launch, tags),
        ResourceType::Nic => {
            let pip = n
                .public_ip
                .as_deref()
                .map(|p| id_of(ResourceType::PublicIp, p));
            resources::nic(launch, tags, pip.as_deref())
        }
        ResourceType::Disk if name == n.os_disk => {
            resources::os_disk(launch, tags, cx.client.subscription())
        }
        ResourceType::Disk => n
            .data_disks
            .iter()
            .position(|d| d == name)
            .and_then(|i| resources::data_disk(launch, tags, i))
            .ok_or_else(|| {
                Error::internal(format!(
                    "disk {name} is in the worker's state but not in its launch config"
                ))
                .with_code("InvalidProviderState")
            })?,
        ResourceType::Vm => {
            let disks: Vec<String> = n
                .data_disks
                .iter()
                .map(|d| id_of(ResourceType::Disk, d))
                .collect();
            let explicit_os = launch
                .os_disk
                .explicit
                .then(|| id_of(ResourceType::Disk, &n.os_disk));
            let body = resources::vm(
                launch,
                tags,
                &n.vm,
                &n.os_disk,
                &id_of(ResourceType::Nic, &n.nic),
                &disks,
                explicit_os.as_deref(),
            );
            resources::with_user_data(body, vm.user_data)
        }
    };
    Ok(Some(body))
}
