//! ARM router tests, in process: the chain with and without a public IP,
//! LRO headers and status resources, referential rules, cascades, faults,
//! throttling, time scale, auth and api-version.

mod arm_support;

use std::time::{Duration, Instant};

use arm_support::*;
use http::{Method, StatusCode};
use serde_json::json;
use skyfleet_mock::arm::ArmConfig;
use skyfleet_mock::ctx::FaultRule;

const PIP: &str = "Microsoft.Network/publicIPAddresses";
const NIC: &str = "Microsoft.Network/networkInterfaces";
const DISK: &str = "Microsoft.Compute/disks";
const VM: &str = "Microsoft.Compute/virtualMachines";

#[tokio::test]
async fn full_chain_with_public_ip_and_cascade_delete() {
    let (_ctx, arm, r) = arm(0.05, 2.0);
    let sub = "sub-chain";
    network(&r, sub).await;

    // Public IP: 201, Updating, absolute Azure-AsyncOperation, no Location,
    // the 1 s polling hint scaled to 50 ms: retry-after-ms alone.
    let pip_path = res_path(sub, PIP, "pip1");
    let a = send(&r, Method::PUT, &u(&pip_path), Some(pip_body())).await;
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
    assert_eq!(a.state(), "Updating");
    let op = a.header("azure-asyncoperation").unwrap().to_string();
    assert!(op.starts_with("https://mock.test:8443/subscriptions/sub-chain/providers/Microsoft.Network/locations/eastus/operations/"), "{op}");
    assert!(op.ends_with("?api-version=2024-07-01"), "{op}");
    assert_eq!(a.header("retry-after"), None);
    assert_eq!(a.header("retry-after-ms"), Some("50"));
    assert!(a.header("location").is_none());
    assert!(a.header("x-ms-request-id").is_some());
    assert!(a.header("x-ms-correlation-request-id").is_some());
    assert_eq!(
        a.header("x-ms-ratelimit-remaining-subscription-writes"),
        Some("199")
    );
    let first = send(&r, Method::GET, &path_of(&op), None).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.body["status"], "InProgress");
    assert_eq!(
        first.header("x-ms-ratelimit-remaining-subscription-reads"),
        Some("249")
    );
    assert_eq!(wait_op(&r, &op).await["status"], "Succeeded");
    let pip = send(&r, Method::GET, &u(&pip_path), None).await;
    assert_eq!(pip.state(), "Succeeded");
    assert_eq!(pip.body["type"], PIP);
    let pip_id = pip.body["id"].as_str().unwrap().to_string();
    assert!(pip.body["properties"]["ipAddress"].as_str().is_some());

    // NIC with the public IP (deleteOption Delete on the IP).
    let nic_path = res_path(sub, NIC, "nic1");
    let a = send(
        &r,
        Method::PUT,
        &u(&nic_path),
        Some(nic_body(sub, Some(&pip_id), true)),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
    wait_op(&r, a.header("azure-asyncoperation").unwrap()).await;
    let nic = send(&r, Method::GET, &u(&nic_path), None).await;
    let nic_id = nic.body["id"].as_str().unwrap().to_string();
    let cfg = &nic.body["properties"]["ipConfigurations"][0];
    assert_eq!(cfg["properties"]["privateIPAddress"], "10.0.1.4");
    assert_eq!(cfg["id"], format!("{nic_id}/ipConfigurations/ipconfig1"));

    // Disk: 202 with a body and a Location.
    let disk_path = res_path(sub, DISK, "d1");
    let a = send(&r, Method::PUT, &u(&disk_path), Some(disk_body())).await;
    assert_eq!(a.status, StatusCode::ACCEPTED);
    assert_eq!(a.state(), "Updating");
    let loc = a.header("location").unwrap().to_string();
    assert!(path_of(&loc).contains("/operationResults/"), "{loc}");
    assert!(a
        .header("azure-asyncoperation")
        .unwrap()
        .contains("/DiskOperations/"));
    let polled = send(&r, Method::GET, &path_of(&loc), None).await;
    assert_eq!(polled.status, StatusCode::ACCEPTED);
    assert!(polled.raw.is_empty());
    wait_op(&r, a.header("azure-asyncoperation").unwrap()).await;
    let done = send(&r, Method::GET, &path_of(&loc), None).await;
    assert_eq!(
        done.status,
        StatusCode::OK,
        "a finished PUT's Location returns the resource"
    );
    assert_eq!(done.state(), "Succeeded");
    assert_eq!(done.body["properties"]["diskState"], "Unattached");
    let disk_id = done.body["id"].as_str().unwrap().to_string();

    // VM: 201 Creating, then Succeeded with a running instance view.
    let vm_path = res_path(sub, VM, "vm1");
    let a = send(
        &r,
        Method::PUT,
        &u(&vm_path),
        Some(vm_attach_body(&disk_id, &nic_id, true)),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
    assert_eq!(a.state(), "Creating");
    let vm_id = a.body["properties"]["vmId"].as_str().unwrap().to_string();
    let busy = send(
        &r,
        Method::PUT,
        &u(&vm_path),
        Some(vm_attach_body(&disk_id, &nic_id, true)),
    )
    .await;
    assert_eq!(busy.status, StatusCode::CONFLICT);
    assert_eq!(busy.code(), "AnotherOperationInProgress");
    let iv = send(
        &r,
        Method::GET,
        &u(&format!("{vm_path}/instanceView")),
        None,
    )
    .await;
    assert_eq!(iv.body["statuses"][0]["code"], "ProvisioningState/creating");
    wait_op(&r, a.header("azure-asyncoperation").unwrap()).await;
    let vm = send(
        &r,
        Method::GET,
        &u(&format!("{vm_path}?$expand=instanceView")),
        None,
    )
    .await;
    assert_eq!(vm.state(), "Succeeded");
    assert_eq!(vm.body["properties"]["vmId"], vm_id);
    assert_eq!(vm.body["tags"]["worker"], "w1");
    let codes: Vec<&str> = vm.body["properties"]["instanceView"]["statuses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["ProvisioningState/succeeded", "PowerState/running"]);
    let iv = send(
        &r,
        Method::GET,
        &u(&format!("{vm_path}/instanceView")),
        None,
    )
    .await;
    assert_eq!(iv.body["statuses"][1]["code"], "PowerState/running");

    // Attachments show on the other side.
    let nic = send(&r, Method::GET, &u(&nic_path), None).await;
    assert_eq!(
        nic.body["properties"]["virtualMachine"]["id"],
        vm.body["id"]
    );
    assert!(nic.body["properties"]["macAddress"].as_str().is_some());
    let pip = send(&r, Method::GET, &u(&pip_path), None).await;
    assert_eq!(
        pip.body["properties"]["ipConfiguration"]["id"],
        format!("{nic_id}/ipConfigurations/ipconfig1")
    );
    let disk = send(&r, Method::GET, &u(&disk_path), None).await;
    assert_eq!(disk.body["managedBy"], vm.body["id"]);
    assert_eq!(disk.body["properties"]["diskState"], "Attached");

    // Delete ordering is enforced.
    let a = send(&r, Method::DELETE, &u(&nic_path), None).await;
    assert_eq!((a.status, a.code()), (StatusCode::BAD_REQUEST, "NicInUse"));
    let a = send(&r, Method::DELETE, &u(&pip_path), None).await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::BAD_REQUEST, "PublicIPAddressCannotBeDeleted")
    );
    let a = send(&r, Method::DELETE, &u(&disk_path), None).await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::CONFLICT, "OperationNotAllowed")
    );
    assert_eq!(arm.resources().len(), 6, "rg, vnet, pip, nic, disk, vm");

    // VM delete cascades to NIC, public IP and disk.
    let a = send(&r, Method::DELETE, &u(&vm_path), None).await;
    assert_eq!(a.status, StatusCode::ACCEPTED);
    assert!(a.raw.is_empty());
    let loc = a.header("location").unwrap().to_string();
    assert_eq!(a.header("retry-after"), None);
    assert_eq!(a.header("retry-after-ms"), Some("50"));
    assert_eq!(
        a.header("x-ms-ratelimit-remaining-subscription-deletes"),
        Some("199")
    );
    let vm = send(&r, Method::GET, &u(&vm_path), None).await;
    assert_eq!(vm.state(), "Deleting");
    let again = send(&r, Method::DELETE, &u(&vm_path), None).await;
    assert_eq!(
        again.status,
        StatusCode::ACCEPTED,
        "a repeated DELETE joins the running one"
    );
    assert_eq!(
        send(&r, Method::GET, &path_of(&loc), None).await.status,
        StatusCode::ACCEPTED
    );
    wait_op(&r, a.header("azure-asyncoperation").unwrap()).await;
    assert_eq!(
        send(&r, Method::GET, &path_of(&loc), None).await.status,
        StatusCode::NO_CONTENT
    );
    for p in [&vm_path, &nic_path, &pip_path, &disk_path] {
        let g = send(&r, Method::GET, &u(p), None).await;
        assert_eq!(
            (g.status, g.code()),
            (StatusCode::NOT_FOUND, "ResourceNotFound"),
            "{p}"
        );
    }
    let a = send(&r, Method::DELETE, &u(&vm_path), None).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "nothing left to delete");
    assert_eq!(arm.resources().len(), 2, "rg and vnet remain");
}

#[tokio::test]
async fn chain_without_public_ip_detaches_on_delete_and_hides_secrets() {
    let (_ctx, arm, r) = arm(0.02, 2.0);
    let sub = "sub-nopip";
    network(&r, sub).await;
    let nic = put_done(&r, &res_path(sub, NIC, "nic1"), nic_body(sub, None, false)).await;
    assert!(nic.body["properties"]["ipConfigurations"][0]["properties"]
        .get("publicIPAddress")
        .is_none());
    let nic_id = nic.body["id"].as_str().unwrap().to_string();
    let vm_path = res_path(sub, VM, "vm2");
    let vm = put_done(&r, &vm_path, vm_image_body(&nic_id, false)).await;
    assert_eq!(vm.state(), "Succeeded");
    let os = &vm.body["properties"]["osProfile"];
    assert_eq!(os["computerName"], "w2");
    assert!(
        os.get("customData").is_none(),
        "customData is never returned"
    );
    assert!(
        os.get("adminPassword").is_none(),
        "adminPassword is never returned"
    );
    // The VM made its own OS disk.
    let disk_id = vm.body["properties"]["storageProfile"]["osDisk"]["managedDisk"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let disk = send(
        &r,
        Method::GET,
        &u(&path_of(&format!("https://x{disk_id}"))),
        None,
    )
    .await;
    assert_eq!(disk.status, StatusCode::OK, "{disk_id}");
    assert_eq!(disk.body["managedBy"], vm.body["id"]);
    // Detach: NIC and disk survive the VM, free again.
    let a = send(&r, Method::DELETE, &u(&vm_path), None).await;
    wait_op(&r, a.header("azure-asyncoperation").unwrap()).await;
    let nic = send(&r, Method::GET, &u(&res_path(sub, NIC, "nic1")), None).await;
    assert_eq!(nic.status, StatusCode::OK);
    assert!(nic.body["properties"].get("virtualMachine").is_none());
    let disk = send(
        &r,
        Method::GET,
        &u(&path_of(&format!("https://x{disk_id}"))),
        None,
    )
    .await;
    assert_eq!(disk.body["properties"]["diskState"], "Unattached");
    let a = send(&r, Method::DELETE, &u(&res_path(sub, NIC, "nic1")), None).await;
    assert_eq!(
        a.status,
        StatusCode::ACCEPTED,
        "a free NIC can be deleted: {:?}",
        a.body
    );
    // Reset of one subscription clears it.
    assert!(!arm.resources().is_empty());
    arm.reset(Some(sub));
    assert!(arm.resources().is_empty());
}

#[tokio::test]
async fn referential_errors() {
    let (_ctx, _arm, r) = arm(0.0, 1.0);
    let sub = "sub-refs";
    // No resource group yet.
    let a = send(
        &r,
        Method::PUT,
        &u(&res_path(sub, PIP, "p")),
        Some(pip_body()),
    )
    .await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::NOT_FOUND, "ResourceGroupNotFound")
    );
    let a = send(&r, Method::GET, &u(&rg_path(sub)), None).await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::NOT_FOUND, "ResourceGroupNotFound")
    );
    send(
        &r,
        Method::PUT,
        &u(&rg_path(sub)),
        Some(json!({"location": "eastus"})),
    )
    .await;
    // NIC needs its subnet.
    let a = send(
        &r,
        Method::PUT,
        &u(&res_path(sub, NIC, "n")),
        Some(nic_body(sub, None, false)),
    )
    .await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::BAD_REQUEST, "InvalidResourceReference")
    );
    network(&r, sub).await;
    // ... and the public IP it names.
    let missing = format!("/subscriptions/{sub}/resourceGroups/rg/providers/{PIP}/nope");
    let a = send(
        &r,
        Method::PUT,
        &u(&res_path(sub, NIC, "n")),
        Some(nic_body(sub, Some(&missing), false)),
    )
    .await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::BAD_REQUEST, "InvalidResourceReference")
    );
    // A VM needs its NICs and its disks.
    let nic_id = format!("/subscriptions/{sub}/resourceGroups/rg/providers/{NIC}/nope");
    let disk_id = format!("/subscriptions/{sub}/resourceGroups/rg/providers/{DISK}/nope");
    let a = send(
        &r,
        Method::PUT,
        &u(&res_path(sub, VM, "v")),
        Some(vm_attach_body(&disk_id, &nic_id, false)),
    )
    .await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::BAD_REQUEST, "InvalidResourceReference")
    );
    let nic = put_done(&r, &res_path(sub, NIC, "n"), nic_body(sub, None, false)).await;
    let nic_id = nic.body["id"].as_str().unwrap().to_string();
    let a = send(
        &r,
        Method::PUT,
        &u(&res_path(sub, VM, "v")),
        Some(vm_attach_body(&disk_id, &nic_id, false)),
    )
    .await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::BAD_REQUEST, "InvalidResourceReference")
    );
    // osProfile is refused with an attached OS disk.
    let disk = put_done(&r, &res_path(sub, DISK, "d"), disk_body()).await;
    let mut body = vm_attach_body(disk.body["id"].as_str().unwrap(), &nic_id, false);
    body["properties"]["osProfile"] = json!({"computerName": "v", "customData": "eA=="});
    let a = send(&r, Method::PUT, &u(&res_path(sub, VM, "v")), Some(body)).await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::BAD_REQUEST, "InvalidParameter")
    );
    // A NIC used by one VM cannot serve another.
    put_done(
        &r,
        &res_path(sub, VM, "v"),
        vm_attach_body(disk.body["id"].as_str().unwrap(), &nic_id, false),
    )
    .await;
    let a = send(
        &r,
        Method::PUT,
        &u(&res_path(sub, VM, "v2")),
        Some(vm_image_body(&nic_id, false)),
    )
    .await;
    assert_eq!((a.status, a.code()), (StatusCode::BAD_REQUEST, "NicInUse"));
    // A public IP used by one NIC cannot serve another.
    let pip = put_done(&r, &res_path(sub, PIP, "p"), pip_body()).await;
    let pip_id = pip.body["id"].as_str().unwrap().to_string();
    put_done(
        &r,
        &res_path(sub, NIC, "n2"),
        nic_body(sub, Some(&pip_id), false),
    )
    .await;
    let a = send(
        &r,
        Method::PUT,
        &u(&res_path(sub, NIC, "n3")),
        Some(nic_body(sub, Some(&pip_id), false)),
    )
    .await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::BAD_REQUEST, "PublicIPAddressInUse")
    );
    // The subnet in use cannot go.
    let a = send(
        &r,
        Method::DELETE,
        &u(&res_path(sub, "Microsoft.Network/virtualNetworks", "vnet")),
        None,
    )
    .await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::BAD_REQUEST, "InUseSubnetCannotBeDeleted")
    );
    // Location is required; bad JSON is InvalidRequestContent.
    let a = send(
        &r,
        Method::PUT,
        &u(&res_path(sub, PIP, "q")),
        Some(json!({"properties": {}})),
    )
    .await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::BAD_REQUEST, "LocationRequired")
    );
    let a = send_raw(
        &r,
        Method::PUT,
        &u(&res_path(sub, PIP, "q")),
        Some(b"{not json".to_vec()),
        true,
    )
    .await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::BAD_REQUEST, "InvalidRequestContent")
    );
    // Subnets: GET and PUT by path.
    let sn = send(&r, Method::GET, &u(&subnet_id(sub)), None).await;
    assert_eq!(sn.status, StatusCode::OK);
    assert_eq!(sn.body["properties"]["addressPrefix"], "10.0.1.0/24");
    let path = format!(
        "{}/subnets/second",
        res_path(sub, "Microsoft.Network/virtualNetworks", "vnet")
    );
    let a = send(
        &r,
        Method::PUT,
        &u(&path),
        Some(json!({"properties": {"addressPrefix": "10.0.2.0/24"}})),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
    assert!(a.header("azure-asyncoperation").is_some());
}

#[tokio::test]
async fn auth_api_version_and_unknown_paths() {
    let (_ctx, _arm, r) = arm(0.0, 1.0);
    let path = u(&rg_path("s"));
    let a = send_raw(&r, Method::GET, &path, None, false).await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken")
    );
    assert!(a.header("www-authenticate").unwrap().starts_with("Bearer "));
    let a = send(&r, Method::GET, &rg_path("s"), None).await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::BAD_REQUEST, "MissingApiVersionParameter")
    );
    let a = send(
        &r,
        Method::GET,
        &u("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Foo/bars/b"),
        None,
    )
    .await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::NOT_FOUND, "InvalidResourceType")
    );
    let a = send(&r, Method::POST, &u(&res_path("s", VM, "v")), None).await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(!a.code().is_empty());
    let a = send(
        &r,
        Method::GET,
        &u("/subscriptions/s/providers/Microsoft.Compute/locations/eastus/operations/nope"),
        None,
    )
    .await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::NOT_FOUND, "ResourceNotFound")
    );
}

fn rules(json: serde_json::Value) -> Vec<FaultRule> {
    serde_json::from_value(json).unwrap()
}

#[tokio::test]
async fn every_fault_effect() {
    let (ctx, _arm, r) = arm(0.0, 1.0);
    let sub = "sub-faults";
    network(&r, sub).await;
    let pip = res_path(sub, PIP, "p1");

    // error: that status and code, ARM format.
    ctx.set_faults(rules(json!([{"cloud": "azure", "operation": "PublicIPAddresses_CreateOrUpdate", "count": 1,
        "effect": {"kind": "error", "status": 500, "code": "InternalServerError", "message": "boom"}}])))
        .unwrap();
    let a = send(&r, Method::PUT, &u(&pip), Some(pip_body())).await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError")
    );
    assert_eq!(a.body["error"]["message"], "boom");

    // throttle: 429 + the scaled wait (7 s at time_scale 0.5: 3.5 s, sent
    // rounded up in Retry-After and exactly in retry-after-ms).
    ctx.set_faults(rules(
        json!([{"cloud": "azure", "operation": "*", "resource": "p1", "count": 2,
        "effect": {"kind": "throttle", "retry_after_s": 7}}]),
    ))
    .unwrap();
    ctx.set_time_scale(0.5).unwrap();
    let a = send(&r, Method::PUT, &u(&pip), Some(pip_body())).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(a.header("retry-after"), Some("4"));
    assert_eq!(a.header("retry-after-ms"), Some("3500"));
    assert_eq!(a.code(), "TooManyRequests");
    // At time_scale 0 the wait is the 10 ms floor, never `Retry-After: 0`.
    ctx.set_time_scale(0.0).unwrap();
    let a = send(&r, Method::PUT, &u(&pip), Some(pip_body())).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(a.header("retry-after"), None);
    assert_eq!(a.header("retry-after-ms"), Some("10"));

    // not_found_reads: the next 2 GETs of the created resource are 404.
    ctx.set_faults(rules(
        json!([{"cloud": "azure", "operation": "PublicIPAddresses_CreateOrUpdate", "count": 1,
        "effect": {"kind": "not_found_reads", "count": 2}}]),
    ))
    .unwrap();
    let a = send(&r, Method::PUT, &u(&pip), Some(pip_body())).await;
    assert_eq!(a.status, StatusCode::CREATED);
    for _ in 0..2 {
        let g = send(&r, Method::GET, &u(&pip), None).await;
        assert_eq!(
            (g.status, g.code()),
            (StatusCode::NOT_FOUND, "ResourceNotFound")
        );
    }
    assert_eq!(
        send(&r, Method::GET, &u(&pip), None).await.status,
        StatusCode::OK
    );

    // fail_operation: accepted, the operation ends Failed, the resource is Failed.
    ctx.set_faults(rules(json!([{"cloud": "azure", "operation": "VirtualMachines_CreateOrUpdate", "count": 1,
        "effect": {"kind": "fail_operation", "code": "AllocationFailed", "message": "no capacity"}}])))
        .unwrap();
    let nic = put_done(&r, &res_path(sub, NIC, "n1"), nic_body(sub, None, false)).await;
    let vm_path = res_path(sub, VM, "v1");
    let a = send(
        &r,
        Method::PUT,
        &u(&vm_path),
        Some(vm_image_body(nic.body["id"].as_str().unwrap(), true)),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED);
    let done = wait_op(&r, a.header("azure-asyncoperation").unwrap()).await;
    assert_eq!(done["status"], "Failed");
    assert_eq!(done["error"]["code"], "AllocationFailed");
    assert_eq!(done["error"]["message"], "no capacity");
    let vm = send(
        &r,
        Method::GET,
        &u(&format!("{vm_path}?$expand=instanceView")),
        None,
    )
    .await;
    assert_eq!(vm.state(), "Failed");
    assert_eq!(
        vm.body["properties"]["instanceView"]["statuses"][0]["code"],
        "ProvisioningState/failed/AllocationFailed"
    );

    // latency: answered, but late.
    ctx.set_faults(rules(
        json!([{"cloud": "azure", "operation": "PublicIPAddresses_Get", "count": 1,
        "effect": {"kind": "latency", "ms": 150}}]),
    ))
    .unwrap();
    let t = Instant::now();
    assert_eq!(
        send(&r, Method::GET, &u(&pip), None).await.status,
        StatusCode::OK
    );
    assert!(t.elapsed() >= Duration::from_millis(150));

    // hang: no answer until the hang cap, then a gateway timeout.
    ctx.set_max_hang(Duration::from_millis(100));
    ctx.set_faults(rules(
        json!([{"cloud": "azure", "operation": "PublicIPAddresses_Get", "count": 1,
        "effect": {"kind": "hang"}}]),
    ))
    .unwrap();
    let t = Instant::now();
    let a = send(&r, Method::GET, &u(&pip), None).await;
    assert!(t.elapsed() >= Duration::from_millis(100));
    assert_eq!(a.status, StatusCode::GATEWAY_TIMEOUT);

    // reset: the server is asked to drop the connection.
    ctx.set_faults(rules(
        json!([{"cloud": "azure", "operation": "PublicIPAddresses_Get", "count": 1,
        "effect": {"kind": "reset"}}]),
    ))
    .unwrap();
    assert!(send(&r, Method::GET, &u(&pip), None).await.dropped);
    assert!(!send(&r, Method::GET, &u(&pip), None).await.dropped);
}

#[tokio::test]
async fn subscription_throttling() {
    let (_ctx, arm, r) = arm(0.0, 1.0);
    let mut cfg = ArmConfig::default();
    cfg.throttle.enabled = true;
    cfg.throttle.reads.burst = 3;
    cfg.throttle.reads.refill_per_s = 0.001;
    arm.set_config(cfg);
    let path = u(&rg_path("sub-t"));
    for left in ["2", "1", "0"] {
        let a = send(&r, Method::GET, &path, None).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND);
        assert_eq!(
            a.header("x-ms-ratelimit-remaining-subscription-reads"),
            Some(left)
        );
    }
    let a = send(&r, Method::GET, &path, None).await;
    assert_eq!(
        (a.status, a.code()),
        (
            StatusCode::TOO_MANY_REQUESTS,
            "SubscriptionRequestsThrottled"
        )
    );
    // The buckets refill on the real clock, so even at time_scale 0 the
    // wait is the real one (a token per 1000 s), not scaled away.
    assert!(a.header("retry-after").unwrap().parse::<u64>().unwrap() >= 900);
    // Writes have their own bucket; other subscriptions their own.
    let a = send(&r, Method::PUT, &path, Some(json!({"location": "eastus"}))).await;
    assert_eq!(a.status, StatusCode::CREATED);
    assert_eq!(
        send(&r, Method::GET, &u(&rg_path("other")), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // A reset clears the bucket.
    arm.reset(Some("sub-t"));
    assert_eq!(
        send(&r, Method::GET, &path, None).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn time_scale_sets_how_long_operations_run() {
    // Scale 0: done before the PUT answers (the body says so, no poll needed).
    let (ctx, _arm, r) = arm(0.0, 60.0);
    network(&r, "s0").await;
    let a = send(
        &r,
        Method::PUT,
        &u(&res_path("s0", PIP, "p")),
        Some(pip_body()),
    )
    .await;
    assert_eq!(a.state(), "Succeeded");
    // Scale 0.005: a 60 s operation takes 300 ms.
    ctx.set_time_scale(0.005).unwrap();
    let t = Instant::now();
    let a = send(
        &r,
        Method::PUT,
        &u(&res_path("s0", PIP, "p2")),
        Some(pip_body()),
    )
    .await;
    assert_eq!(a.state(), "Updating");
    wait_op(&r, a.header("azure-asyncoperation").unwrap()).await;
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

#[tokio::test]
async fn resource_group_delete_takes_its_resources() {
    let (_ctx, arm, r) = arm(0.01, 1.0);
    let sub = "sub-rgdel";
    network(&r, sub).await;
    put_done(&r, &res_path(sub, PIP, "p"), pip_body()).await;
    let a = send(&r, Method::DELETE, &u(&rg_path(sub)), None).await;
    assert_eq!(a.status, StatusCode::ACCEPTED);
    let a2 = send(
        &r,
        Method::PUT,
        &u(&res_path(sub, PIP, "p2")),
        Some(pip_body()),
    )
    .await;
    assert_eq!(
        (a2.status, a2.code()),
        (StatusCode::CONFLICT, "ResourceGroupBeingDeleted")
    );
    wait_op(&r, a.header("azure-asyncoperation").unwrap()).await;
    assert_eq!(
        send(&r, Method::GET, &u(&rg_path(sub)), None).await.status,
        StatusCode::NOT_FOUND
    );
    assert!(arm.resources().is_empty());
}

#[tokio::test]
async fn lists_page_with_next_links() {
    let (_ctx, _arm, r) = arm(0.0, 1.0);
    let sub = "sub-list";
    network(&r, sub).await;
    for i in 0..120 {
        let a = send(
            &r,
            Method::PUT,
            &u(&res_path(sub, PIP, &format!("p{i:03}"))),
            Some(pip_body()),
        )
        .await;
        assert_eq!(a.status, StatusCode::CREATED);
    }
    let first = send(
        &r,
        Method::GET,
        &u(&format!("{}/providers/{PIP}", rg_path(sub))),
        None,
    )
    .await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    assert_eq!(first.body["value"].as_array().unwrap().len(), 100);
    assert_eq!(first.body["value"][0]["name"], "p000");
    let next = first.body["nextLink"].as_str().unwrap();
    assert!(next.starts_with("https://mock.test:8443/"), "{next}");
    let second = send(&r, Method::GET, &path_of(next), None).await;
    assert_eq!(second.body["value"].as_array().unwrap().len(), 20);
    assert!(second.body.get("nextLink").is_none());
    let all = send(
        &r,
        Method::GET,
        &u(&format!("/subscriptions/{sub}/providers/{VM}")),
        None,
    )
    .await;
    assert_eq!(all.body["value"].as_array().unwrap().len(), 0);
    let missing = send(
        &r,
        Method::GET,
        &u(&format!(
            "/subscriptions/{sub}/resourceGroups/nope/providers/{VM}"
        )),
        None,
    )
    .await;
    assert_eq!(
        (missing.status, missing.code()),
        (StatusCode::NOT_FOUND, "ResourceGroupNotFound")
    );
}

#[tokio::test]
async fn operation_urls_follow_the_servers_scheme() {
    let (_ctx, arm, r) = arm(0.0, 60.0);
    network(&r, "sub-http").await;
    let a = send(
        &r,
        Method::PUT,
        &u(&res_path("sub-http", PIP, "p")),
        Some(pip_body()),
    )
    .await;
    assert!(a
        .header("azure-asyncoperation")
        .unwrap()
        .starts_with("https://mock.test:8443/"));
    arm.set_tls(false);
    let a = send(
        &r,
        Method::PUT,
        &u(&res_path("sub-http", PIP, "p2")),
        Some(pip_body()),
    )
    .await;
    assert!(a
        .header("azure-asyncoperation")
        .unwrap()
        .starts_with("http://mock.test:8443/"));
}

#[tokio::test]
async fn patch_replaces_tags() {
    let (_ctx, _arm, r) = arm(0.0, 1.0);
    network(&r, "sub-patch").await;
    let p = res_path("sub-patch", PIP, "p");
    put_done(&r, &p, pip_body()).await;
    let a = send(
        &r,
        Method::PATCH,
        &u(&p),
        Some(json!({"tags": {"owner": "me"}})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    assert_eq!(a.body["tags"]["owner"], "me");
    assert_eq!(
        send(&r, Method::GET, &u(&p), None).await.body["tags"]["owner"],
        "me"
    );
    let a = send(&r, Method::PATCH, &u(&p), Some(json!({"properties": {}}))).await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::BAD_REQUEST, "InvalidParameter")
    );
    let a = send(
        &r,
        Method::PATCH,
        &u(&res_path("sub-patch", PIP, "nope")),
        Some(json!({"tags": {}})),
    )
    .await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::NOT_FOUND, "ResourceNotFound")
    );
    let a = send(
        &r,
        Method::PATCH,
        &u(&rg_path("sub-patch")),
        Some(json!({"tags": {"a": "b"}})),
    )
    .await;
    assert_eq!(a.body["tags"]["a"], "b");
}

/// `lose_answer`: the PUT is carried out (the resource exists, its creation
/// goes on) but the client gets a gateway timeout after the hang cap, and
/// the rule's count shows it fired when the request arrived.
#[tokio::test]
async fn a_lost_answer_still_creates_the_resource() {
    let (ctx, _arm, r) = arm(0.0, 1.0);
    let sub = "sub-lost";
    network(&r, sub).await;
    let pip = res_path(sub, PIP, "p-lost");
    ctx.set_max_hang(Duration::from_millis(50));
    ctx.set_faults(rules(
        json!([{"cloud": "azure", "operation": "PublicIPAddresses_CreateOrUpdate", "count": 1,
        "effect": {"kind": "lose_answer"}}]),
    ))
    .unwrap();
    let a = send(&r, Method::PUT, &u(&pip), Some(pip_body())).await;
    assert_eq!(a.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(ctx.faults()[0].count, Some(0));
    let g = send(&r, Method::GET, &u(&pip), None).await;
    assert_eq!(g.status, StatusCode::OK, "the lost PUT landed");
    // Its replay is answered as usual (an update of the same resource).
    let again = send(&r, Method::PUT, &u(&pip), Some(pip_body())).await;
    assert!(again.status.is_success(), "{:?}", again.status);
}
