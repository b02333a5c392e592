//! [`AzureProvider`]: the [`Provider`] implementation.
//!
//! It is stateless between steps: everything a worker needs is in its
//! provider state (the chain's state), so a provider
//! rebuilt from its [`AzureConfig`] alone (after a crash, on another
//! replica) carries on where the last one stopped. The one thing it keeps
//! in memory is a cache: the power-state snapshot that answers running
//! workers' health checks in [`Provider::step_many`] (see
//! `chain::status_list`); a new provider simply lists anew.
//!
//! [`AzureConfig`]: crate::AzureConfig

use std::sync::Arc;

use async_trait::async_trait;
use http::Method;
use serde_json::Value;
use skyfleet_core::clock::Clock;
use skyfleet_core::model::{tag, LaunchConfig};
use skyfleet_core::offering::Offering;
use skyfleet_core::provider::support::{self, Page};
use skyfleet_core::transport::ApiClass;
use skyfleet_core::{
    Error, IdentityProof, OwnedResource, OwnershipScope, Provider, Result, Step, VerifiedIdentity,
    Worker,
};
use skyfleet_identity::azure::AzureVerifier;
use time::OffsetDateTime;
use tokio::task::JoinSet;

use crate::builder::Settings;
use crate::chain::{Ctx, PowerStates};
use crate::client::{ArmAnswer, ArmClient, ResourceType};
use crate::launch::AzureLaunch;

/// The Azure provider: one subscription. Built by
/// [`AzureBuilder`](crate::AzureBuilder).
#[derive(Clone)]
pub struct AzureProvider {
    id: String,
    settings: Arc<Settings>,
    client: ArmClient,
    clock: Arc<dyn Clock>,
    attestation: Arc<AzureVerifier>,
    /// Shared by clones: one snapshot per provider.
    power: Arc<PowerStates>,
}

/// How many workers [`AzureProvider::step_many`] steps at once.
const STEP_CONCURRENCY: usize = 32;

impl std::fmt::Debug for AzureProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureProvider")
            .field("id", &self.id)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl AzureProvider {
    pub(crate) fn from_parts(
        id: String,
        settings: Settings,
        client: ArmClient,
        clock: Arc<dyn Clock>,
        attestation: AzureVerifier,
    ) -> Self {
        AzureProvider {
            id,
            power: Arc::new(PowerStates::new(settings.status_max_age)),
            settings: Arc::new(settings),
            client,
            clock,
            attestation: Arc::new(attestation),
        }
    }

    /// The ARM client.
    #[cfg(feature = "testing")]
    pub(crate) fn client(&self) -> &ArmClient {
        &self.client
    }

    fn ctx(&self) -> Ctx<'_> {
        Ctx {
            client: &self.client,
            config: &self.settings,
            clock: self.clock.as_ref(),
        }
    }

    async fn list_type(&self, rg: &str, ty: ResourceType) -> Result<Vec<Value>> {
        let op = format!("{}_List", ty.op_prefix());
        let first = self.client.list_url(rg, ty);
        // Core's paging: a nextLink loop is cut at its one runaway cap.
        support::paginate(&op, |next: Option<String>| {
            let url = next.unwrap_or_else(|| first.clone());
            let op = &op;
            async move {
                let resp = self
                    .client
                    .request(Method::GET, &url)
                    .class(ApiClass::Read)
                    .operation(op)
                    .send()
                    .await?;
                if resp.status == 404
                    && resp.error_code().as_deref() == Some("ResourceGroupNotFound")
                {
                    // A group that does not exist holds nothing of ours.
                    return Ok(Page::last(Vec::new()));
                }
                if !resp.is_success() {
                    return Err(resp.error(op));
                }
                let body: Value = resp.arm_json(op)?;
                let items = body
                    .get("value")
                    .and_then(Value::as_array)
                    .ok_or_else(|| crate::client::garbled(op, resp.status, "list without `value`"))?
                    .clone();
                let next = body
                    .get("nextLink")
                    .and_then(Value::as_str)
                    .filter(|n| !n.is_empty())
                    .map(str::to_string);
                Ok(Page { items, next })
            }
        })
        .await
    }
}

fn owned(v: &Value, ty: ResourceType) -> Option<OwnedResource> {
    let id = v.get("id")?.as_str()?.to_string();
    let tags: std::collections::BTreeMap<String, String> = v
        .get("tags")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let created_at = v
        .get("properties")
        .and_then(|p| p.get("timeCreated"))
        .and_then(Value::as_str)
        .and_then(|s| {
            OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
        });
    Some(OwnedResource::from_tags(
        id,
        ty.kind_name(),
        created_at,
        tags,
    ))
}

#[async_trait]
impl Provider for AzureProvider {
    fn id(&self) -> &str {
        &self.id
    }

    fn kind(&self) -> &'static str {
        "azure"
    }

    fn validate(&self, launch: &Value) -> Result<()> {
        let l = AzureLaunch::parse(launch)?;
        self.settings.resource_group_for(&l).map(|_| ())
    }

    /// The location, VM size, spot or regular, and vCPU quota scope of
    /// `lc` (see [`offering`](crate::offering)).
    fn offering(&self, lc: &LaunchConfig) -> Result<Offering> {
        let l = AzureLaunch::parse(&lc.launch)?;
        Ok(crate::offering::offering(&self.id, &l))
    }

    fn partition(&self, worker: &Worker) -> Option<String> {
        worker
            .spec
            .launch
            .get("location")
            .and_then(Value::as_str)
            .map(str::to_string)
    }

    async fn step(&self, worker: &Worker) -> Result<Step> {
        crate::chain::step(&self.ctx(), worker).await
    }

    /// One power-state snapshot (ceil(V/100) list calls for V VMs in the
    /// subscription) answers this many workers' checks.
    fn batch_limit(&self) -> usize {
        500
    }

    /// Steps many workers, up to 32 at a time, one answer per worker in
    /// order. The health checks of running workers are answered from the
    /// shared power-state snapshot when it shows their VM running; the
    /// others (and all of them when the listing fails, or the snapshot is
    /// disabled) make their own instance-view GET, as [`Provider::step`].
    async fn step_many(&self, workers: &[Worker]) -> Vec<Result<Step>> {
        let dues: Vec<_> = workers.iter().map(crate::chain::health_due).collect();
        let snapshot = if self.power.enabled() && dues.iter().any(Option::is_some) {
            match self.power.current(&self.client, self.clock.as_ref()).await {
                Ok(s) => Some(s),
                Err(e) => {
                    // Never a verdict: each check makes its own GET.
                    tracing::warn!(error = %e, "azure power-state listing failed; checking VMs one by one");
                    None
                }
            }
        } else {
            None
        };
        let mut out: Vec<Option<Result<Step>>> = (0..workers.len()).map(|_| None).collect();
        let mut set = JoinSet::new();
        let mut pending = workers.iter().cloned().zip(dues).enumerate();
        loop {
            while set.len() < STEP_CONCURRENCY {
                let Some((i, (w, due))) = pending.next() else {
                    break;
                };
                let me = self.clone();
                let snap = snapshot.clone();
                set.spawn(async move {
                    let cx = me.ctx();
                    let r = match due {
                        Some(due) => crate::chain::check(&cx, &w, due, snap.as_deref()).await,
                        None => crate::chain::step(&cx, &w).await,
                    };
                    (i, r)
                });
            }
            match set.join_next().await {
                Some(Ok((i, r))) => {
                    if let Some(slot) = out.get_mut(i) {
                        *slot = Some(r);
                    }
                }
                Some(Err(e)) => {
                    tracing::error!(error = %e, "an azure step task panicked");
                }
                None => break,
            }
        }
        out.into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Error::internal("the step task did not finish"))))
            .collect()
    }

    async fn list_owned(&self, scope: &OwnershipScope) -> Result<Vec<OwnedResource>> {
        let mut out = Vec::new();
        for rg in &self.settings.resource_groups {
            for ty in ResourceType::ALL {
                for v in self.list_type(rg, ty).await? {
                    if let Some(r) = owned(&v, ty) {
                        let mine = r.tags.get(tag::MANAGER) == Some(&scope.manager_id)
                            && r.tags.get(tag::PROVIDER) == Some(&scope.provider_id);
                        if mine {
                            out.push(r);
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    async fn delete_owned(&self, resource: &OwnedResource) -> Result<()> {
        let ty = ResourceType::from_id(&resource.id).ok_or_else(|| {
            Error::invalid_config(
                "resource.id",
                format!("not an Azure resource skyfleet creates: {}", resource.id),
            )
        })?;
        if !resource.id.starts_with('/') {
            return Err(Error::invalid_config("resource.id", "must be an ARM id"));
        }
        let url = self.client.id_url(&resource.id, ty);
        let op = format!("{}_Delete", ty.op_prefix());
        let resp = self
            .client
            .request(Method::DELETE, &url)
            .class(ApiClass::Delete)
            .operation(&op)
            .send()
            .await?;
        if resp.is_success() || resp.status == 404 {
            Ok(())
        } else {
            Err(resp.error(&op))
        }
    }

    /// One ARM PATCH of the resource's tags: its listed tags with `tags`
    /// merged over them (ARM's resource PATCH replaces the tag set; the
    /// `Microsoft.Resources/tags/default` Merge operation would avoid the
    /// read-modify-write, but the mock cloud does not serve it, and a tag
    /// changed by hand between the listing and this PATCH is all that could
    /// be lost).
    async fn tag_owned(
        &self,
        resource: &OwnedResource,
        tags: &std::collections::BTreeMap<String, String>,
    ) -> Result<()> {
        let ty = ResourceType::from_id(&resource.id).ok_or_else(|| {
            Error::invalid_config(
                "resource.id",
                format!("not an Azure resource skyfleet creates: {}", resource.id),
            )
        })?;
        if !resource.id.starts_with('/') {
            return Err(Error::invalid_config("resource.id", "must be an ARM id"));
        }
        let mut merged = resource.tags.clone();
        merged.extend(tags.iter().map(|(k, v)| (k.clone(), v.clone())));
        let body = serde_json::to_value(&merged)?;
        self.client.patch_tags(&resource.id, ty, "", &body).await
    }

    async fn verify_identity(
        &self,
        worker: &Worker,
        proof: &IdentityProof,
    ) -> Result<VerifiedIdentity> {
        crate::identity::verify(
            &self.id,
            &self.attestation,
            &self.client,
            worker,
            proof,
            self.clock.now(),
        )
        .await
    }
}
