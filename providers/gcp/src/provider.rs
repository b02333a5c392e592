//! [`GcpProvider`]: Compute Engine workers, one step at a time. Each step is
//! [planned](crate::plan) from the worker alone, the one call the plan asks
//! for is made here, and its answer is [decided](crate::decide) into the
//! step.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::Value;
use skyfleet_core::model::LaunchConfig;
use skyfleet_core::offering::Offering;
use skyfleet_core::provider::names::GCP;
use skyfleet_core::transport::Transport;
use skyfleet_core::{
    Error, ErrorKind, IdentityProof, OwnedResource, OwnershipScope, Provider, Result, Step,
    VerifiedIdentity, Worker,
};
use time::OffsetDateTime;
use tokio::task::JoinSet;

use crate::builder::Settings;
use crate::client::{ComputeClient, Instance};
use crate::credential::TokenSource;
use crate::decide;
use crate::idempotency::instance_name;
use crate::identity::{self, Identity};
use crate::labels;
use crate::launch::GceLaunch;
use crate::plan::{plan, Look, Plan};
use crate::state::GceState;

/// How many workers [`GcpProvider::step_many`] steps at once.
const STEP_CONCURRENCY: usize = 32;

/// Instance names per filtered `instances.list`: 100 names make a filter
/// of about 4 KB, well inside the URL lengths servers and proxies take
/// (8 KB is a common cap), and cost 0.01 calls per check.
const NAMES_PER_LIST: usize = 100;

/// The Compute Engine provider, built by [`GcpBuilder`](crate::GcpBuilder).
/// Cheap to clone (clones share everything).
#[derive(Debug, Clone)]
pub struct GcpProvider {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    settings: Settings,
    client: ComputeClient,
    zones: Mutex<BTreeSet<String>>,
    identity: Option<Identity>,
}

/// The instances of one zone found by one list, by name; what a batched
/// check answers instead of one `instances.get` per worker.
type Listing = Arc<HashMap<String, Instance>>;

impl GcpProvider {
    /// The provider over its parts (see [`GcpBuilder::build`](crate::GcpBuilder::build)).
    pub(crate) fn assemble(
        settings: Settings,
        transport: Transport,
        tokens: TokenSource,
        endpoint: &str,
        project: &str,
        zones: Vec<String>,
        identity: Option<Identity>,
    ) -> Self {
        let client = ComputeClient::new(transport, Arc::new(tokens), endpoint, project);
        GcpProvider {
            inner: Arc::new(Inner {
                settings,
                client,
                zones: Mutex::new(zones.into_iter().collect()),
                identity,
            }),
        }
    }

    /// The transport every call flows through (for its metrics).
    pub fn transport(&self) -> &Transport {
        self.inner.client.transport()
    }

    /// The project every instance lives in.
    pub fn project(&self) -> &str {
        self.inner.client.project()
    }

    /// The instance name of a worker: a pure function of its id.
    pub fn instance_name(worker_id: &str) -> String {
        instance_name(worker_id)
    }

    fn remember_zone(&self, zone: &str) {
        let mut z = self.inner.zones.lock().unwrap_or_else(|e| e.into_inner());
        if !z.contains(zone) {
            z.insert(zone.to_string());
        }
    }

    fn zones(&self) -> Vec<String> {
        let z = self.inner.zones.lock().unwrap_or_else(|e| e.into_inner());
        z.iter().cloned().collect()
    }

    fn now(&self) -> OffsetDateTime {
        self.inner.settings.clock.now()
    }

    /// The plan of `worker`'s step now, its zone remembered.
    fn plan(&self, worker: &Worker) -> Plan {
        let p = plan(
            self.project(),
            self.inner.settings.poll.min_interval,
            self.inner.settings.root_url.as_deref(),
            worker,
            self.now(),
        );
        if let Some(z) = p.zone() {
            self.remember_zone(z);
        }
        p
    }

    /// Makes the call `plan` asks for and decides the step from its answer;
    /// the instance is read from `listed` when a batched list gave it.
    async fn carry_out(
        &self,
        worker: &Worker,
        plan: Plan,
        listed: Option<&HashMap<String, Instance>>,
    ) -> Result<Step> {
        let cfg = &self.inner.settings;
        let client = &self.inner.client;
        let now = self.now();
        match plan {
            Plan::Done(answer) => answer,
            Plan::Insert {
                st,
                zone,
                name,
                body,
                request_id,
            } => match client.insert(&zone, &body, request_id).await {
                Ok(op) => decide::inserted(&cfg.poll, st, &op, now),
                Err(e) if e.kind() == &ErrorKind::AlreadyExists => {
                    let found = client.get_instance(&zone, &name).await?;
                    decide::name_taken(worker, st, e, found)
                }
                Err(e) => decide::insert_refused(&st, e),
            },
            Plan::Delete {
                st,
                zone,
                name,
                request_id,
            } => {
                let op = client
                    .delete_instance(&zone, &name, Some(request_id))
                    .await?;
                decide::deleted(&cfg.poll, st, op.as_ref(), now)
            }
            Plan::Poll { st, zone, purpose } => {
                let Some(url) = st.operation(purpose).map(|o| o.poll_url.clone()) else {
                    return decide::polled(&cfg.poll, worker, st, purpose, Ok(None), now);
                };
                let answer = client.get_operation(&zone, &url).await;
                decide::polled(&cfg.poll, worker, st, purpose, answer, now)
            }
            Plan::Look {
                st,
                zone,
                name,
                why,
            } => {
                let found = match listed {
                    Some(m) => m.get(&name).cloned(),
                    None => client.get_instance(&zone, &name).await?,
                };
                match why {
                    Look::Check => decide::checked(cfg, worker, st, &name, found, now),
                    Look::Confirm => decide::confirmed(cfg, st, found),
                }
            }
        }
    }

    /// The instances named `names` in `zone`, by name: one
    /// `instances.list` per [`NAMES_PER_LIST`] names, filtered by name, so
    /// a batch costs the same however many instances the zone holds
    /// (listing every instance of the manager cost a page per 500 of them
    /// for each batch: quadratic in the fleet). A name absent from the
    /// answer has no instance, as a 404 from `instances.get` would say.
    async fn lookup(&self, zone: &str, names: &[&str]) -> Result<Listing> {
        let mut found = HashMap::new();
        for chunk in names.chunks(NAMES_PER_LIST) {
            let filter = labels::names_filter(chunk);
            for i in self.inner.client.list_instances(zone, &filter).await? {
                found.insert(i.name.clone(), i);
            }
        }
        Ok(Arc::new(found))
    }
}

impl GcpProvider {
    /// The zone and name of an instance found by `list_owned`, which must
    /// be in this provider's project.
    fn instance_of<'a>(&self, resource: &'a OwnedResource) -> Result<(&'a str, &'a str)> {
        let parts: Vec<&str> = resource.id.split('/').collect();
        let ["projects", p, "zones", zone, "instances", name] = parts.as_slice() else {
            return Err(Error::invalid_config(
                "resource.id",
                format!("`{}` is not projects/P/zones/Z/instances/NAME", resource.id),
            ));
        };
        if *p != self.project() {
            return Err(Error::invalid_config(
                "resource.id",
                format!("`{}` is in another project", resource.id),
            ));
        }
        Ok((zone, name))
    }
}

#[async_trait]
impl Provider for GcpProvider {
    fn id(&self) -> &str {
        &self.inner.settings.id
    }

    fn kind(&self) -> &'static str {
        GCP
    }

    fn validate(&self, launch: &Value) -> Result<()> {
        let l = GceLaunch::parse(launch)?;
        // Workers told to register prove who they are with an identity
        // token, which Compute Engine's metadata server issues only to a VM
        // with a service account: without one, every worker would fail to
        // register and be replaced at its registration timeout.
        if self.inner.settings.root_url.is_some() && l.service_account.is_none() {
            return Err(Error::invalid_config(
                "launch.serviceAccount",
                "workers register with an identity token, which Compute Engine issues only \
                 to a VM with a service account: set `serviceAccount` \
                 (`{\"email\": \"default\"}` for the Compute Engine default account)",
            ));
        }
        self.remember_zone(&l.zone);
        Ok(())
    }

    /// The zone, machine type, spot or on demand, and CPU quota scope of
    /// `lc` (see [`offering`](crate::offering)).
    fn offering(&self, lc: &LaunchConfig) -> Result<Offering> {
        let l = GceLaunch::parse(&lc.launch)?;
        Ok(crate::offering::offering(&self.inner.settings.id, &l))
    }

    fn partition(&self, worker: &Worker) -> Option<String> {
        if let Ok(GceState { zone: Some(z), .. }) = GceState::of(worker) {
            return Some(z);
        }
        worker
            .spec
            .launch
            .get("zone")
            .and_then(Value::as_str)
            .map(str::to_string)
    }

    async fn step(&self, worker: &Worker) -> Result<Step> {
        let plan = self.plan(worker);
        self.carry_out(worker, plan, None).await
    }

    /// One `instances.list` per zone answers this many workers' checks.
    fn batch_limit(&self) -> usize {
        500
    }

    /// Steps many workers: those whose step reads their instance share one
    /// `instances.list` per zone, filtered to their names; all run up to 32
    /// at a time.
    async fn step_many(&self, workers: &[Worker]) -> Vec<Result<Step>> {
        let plans: Vec<Plan> = workers.iter().map(|w| self.plan(w)).collect();
        let mut groups: BTreeMap<&str, Vec<(usize, &str)>> = BTreeMap::new();
        for (i, p) in plans.iter().enumerate() {
            if let Plan::Look { zone, name, .. } = p {
                groups
                    .entry(zone.as_str())
                    .or_default()
                    .push((i, name.as_str()));
            }
        }
        let mut listings: Vec<Option<std::result::Result<Listing, Arc<Error>>>> =
            (0..workers.len()).map(|_| None).collect();
        for (zone, looks) in groups {
            // One worker gains nothing from a list.
            if looks.len() < 2 {
                continue;
            }
            let names: Vec<&str> = looks.iter().map(|(_, n)| *n).collect();
            let idx: Vec<usize> = looks.iter().map(|(i, _)| *i).collect();
            let l = self.lookup(zone, &names).await.map_err(Arc::new);
            for i in idx {
                listings[i] = Some(l.clone());
            }
        }
        let mut out: Vec<Option<Result<Step>>> = (0..workers.len()).map(|_| None).collect();
        let mut set = JoinSet::new();
        let mut pending = workers
            .iter()
            .cloned()
            .zip(plans.into_iter().zip(listings))
            .enumerate();
        loop {
            while set.len() < STEP_CONCURRENCY {
                let Some((i, (w, (plan, listing)))) = pending.next() else {
                    break;
                };
                let me = self.clone();
                set.spawn(async move {
                    let r = match listing {
                        None => me.carry_out(&w, plan, None).await,
                        Some(Ok(m)) => me.carry_out(&w, plan, Some(&m)).await,
                        Some(Err(e)) => Err(Error::clone(&e)),
                    };
                    (i, r)
                });
            }
            match set.join_next().await {
                Some(Ok((i, r))) => out[i] = Some(r),
                Some(Err(e)) => {
                    tracing::error!(error = %e, "a gcp step task panicked");
                }
                None => break,
            }
        }
        out.into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Error::internal("the step task did not finish"))))
            .collect()
    }

    async fn list_owned(&self, scope: &OwnershipScope) -> Result<Vec<OwnedResource>> {
        let zones = self.zones();
        if zones.is_empty() {
            // An empty answer would tell a sweeper "nothing is ours".
            return Err(Error::invalid_config(
                "zones",
                "no zone to list: set GcpBuilder::with_zones (or validate a launch config first)",
            ));
        }
        let filter = labels::owner_filter(&scope.manager_id, &scope.provider_id);
        let project = self.project().to_string();
        let mut out = Vec::new();
        for zone in zones {
            for i in self.inner.client.list_instances(&zone, &filter).await? {
                let created_at = i.creation_timestamp.as_deref().and_then(|t| {
                    OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
                });
                out.push(OwnedResource::from_tags(
                    format!("projects/{project}/zones/{zone}/instances/{}", i.name),
                    "instance",
                    created_at,
                    i.labels,
                ));
            }
        }
        Ok(out)
    }

    async fn delete_owned(&self, resource: &OwnedResource) -> Result<()> {
        let (zone, name) = self.instance_of(resource)?;
        self.inner.client.delete_instance(zone, name, None).await?;
        Ok(())
    }

    /// `instances.get` (for the current labels and their fingerprint),
    /// then `instances.setLabels` with `tags` (made valid labels) merged
    /// over them. A label change between the two is refused by Compute
    /// (412, a conflict): the next adoption tries again. The instance's
    /// disks keep their labels (they go with it).
    async fn tag_owned(
        &self,
        resource: &OwnedResource,
        tags: &std::collections::BTreeMap<String, String>,
    ) -> Result<()> {
        let (zone, name) = self.instance_of(resource)?;
        let client = &self.inner.client;
        let inst = client.get_instance(zone, name).await?.ok_or_else(|| {
            Error::not_found(format!("instance {} not found", resource.id)).with_provider("gcp")
        })?;
        let fingerprint = inst.label_fingerprint.as_deref().ok_or_else(|| {
            Error::internal(format!("instance {} has no labelFingerprint", resource.id))
                .with_provider("gcp")
        })?;
        let mut merged = inst.labels.clone();
        merged.extend(tags.iter().map(|(k, v)| (labels::key(k), labels::value(v))));
        client.set_labels(zone, name, &merged, fingerprint).await?;
        Ok(())
    }

    async fn verify_identity(
        &self,
        worker: &Worker,
        proof: &IdentityProof,
    ) -> Result<VerifiedIdentity> {
        identity::verify(
            &self.inner.settings.id,
            self.project(),
            self.inner.identity.as_ref(),
            worker,
            proof,
            self.now(),
        )
        .await
    }
}
