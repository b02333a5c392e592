//! Worker identity on Azure: the VM's attested data document (CMS
//! SignedData signed for `metadata.azure.com`, chained to Microsoft's
//! roots) authenticated first, then compared with the worker's VM: its
//! `vmId`, read with a GET of the VM (the chain's state records names, not
//! the id Azure gives the VM), the nonce the registration issued, and the
//! document's expiry.

use http::Method;
use serde_json::Value;
use skyfleet_core::provider::identity::{self, IdentityProof, VerifiedIdentity};
use skyfleet_core::transport::ApiClass;
use skyfleet_core::{Error, Result, Worker};
use skyfleet_identity::azure::{parse_timestamp, AzureExpected, AzureVerifier};
use time::OffsetDateTime;

use crate::chain::ChainState;
use crate::client::{garbled, ArmAnswer, ArmClient, ResourceType};

/// A verifier's configuration error as a skyfleet error.
pub(crate) fn config_error(e: skyfleet_identity::ConfigError) -> Error {
    Error::invalid_config(format!("identity.{}", e.field()), e.message()).with_provider("azure")
}

/// The VM's `vmId`, `None` when the VM does not exist.
async fn vm_id(client: &ArmClient, st: &ChainState) -> Result<Option<String>> {
    const OP: &str = "VirtualMachines_Get";
    let url = client.resource_url(&st.resource_group, ResourceType::Vm, &st.names.vm);
    let resp = client
        .request(Method::GET, &url)
        .class(ApiClass::Read)
        .region(&st.location)
        .operation(OP)
        .send()
        .await?;
    if resp.status == 404 {
        return Ok(None);
    }
    if !resp.is_success() {
        return Err(resp.error(OP));
    }
    let body: Value = resp.arm_json(OP)?;
    body.pointer("/properties/vmId")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .map(|id| Some(id.to_string()))
        .ok_or_else(|| garbled(OP, resp.status, "VM without `properties.vmId`"))
}

/// [`Provider::verify_identity`](skyfleet_core::Provider::verify_identity)
/// for Azure.
pub(crate) async fn verify(
    provider_id: &str,
    verifier: &AzureVerifier,
    client: &ArmClient,
    worker: &Worker,
    proof: &IdentityProof,
    now: OffsetDateTime,
) -> Result<VerifiedIdentity> {
    let reject = |reason: &'static str| identity::rejected(provider_id, worker, reason);
    let IdentityProof::AzureAttested { signature, nonce } = proof else {
        return Err(reject(identity::WRONG_PROOF_TYPE));
    };
    if !identity::may_register(worker) {
        return Err(reject(identity::NOT_REGISTRABLE));
    }
    let Some(st) = ChainState::from_worker(worker)? else {
        return Err(reject(identity::UNKNOWN_WORKER));
    };
    if st.teardown.is_some() || st.failure.is_some() {
        return Err(reject(identity::NOT_REGISTRABLE));
    }
    // Only an authentic document costs an ARM call.
    let doc = verifier
        .authenticate(signature, now)
        .await
        .map_err(|r| reject(r.reason().label()))?;
    let Some(vm_id) = vm_id(client, &st).await? else {
        return Err(reject(identity::UNKNOWN_WORKER));
    };
    let want = AzureExpected {
        vm_id: vm_id.clone(),
        nonce: nonce.clone(),
    };
    verifier
        .check(&doc, &want, now)
        .map_err(|r| reject(r.reason().label()))?;
    let mut out = VerifiedIdentity::new(worker, provider_id)
        .with_instance(vm_id)
        .with_location(st.location.clone());
    if let Ok(exp) = parse_timestamp(&doc.time_stamp.expires_on) {
        out = out.with_proof_expiry(exp);
    }
    Ok(out)
}
