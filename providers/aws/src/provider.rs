//! [`AwsProvider`]: EC2 instances as skyfleet workers.
//!
//! The steps themselves are pure functions ([`crate::plan`] and
//! [`crate::decide`]); this module carries them out. [`Provider::step_many`]
//! plans every worker, looks at all that need a look with **one**
//! DescribeInstances per region (filtered by instance id, up to 200 ids a
//! filter and 1000 instances a page) instead of one call per worker,
//! decides, and makes the mutating calls (RunInstances or
//! TerminateInstances, at most one per worker) concurrently.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_ec2::types::Filter;
use skyfleet_core::clock::Clock;
use skyfleet_core::model::{tag, LaunchConfig};
use skyfleet_core::offering::Offering;
use skyfleet_core::provider::support::{bounded, group_by};
use skyfleet_core::{
    Error, ErrorKind, IdentityProof, OwnedResource, OwnershipScope, Provider, Result, Step,
    VerifiedIdentity, Worker,
};
use time::OffsetDateTime;

use crate::builder::{Settings, Timings};
use crate::client::{Ec2, InstanceView};
use crate::decide::{decide, launched, pick_by_tag, terminated};
use crate::identity::{self, Identity};
use crate::launch::Ec2Launch;
use crate::plan::{plan, Call, Lookup, Plan, Rules};
use crate::state::AwsState;

/// The AWS EC2 provider: one aws-sdk-ec2 client per configured region, all
/// sending through the shared transport. Built by
/// [`AwsBuilder`](crate::AwsBuilder).
#[derive(Clone)]
pub struct AwsProvider {
    settings: Arc<Settings>,
    clients: Arc<HashMap<String, Ec2>>,
    clock: Arc<dyn Clock>,
    identity: Arc<Identity>,
}

impl std::fmt::Debug for AwsProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsProvider")
            .field("settings", &self.settings)
            .field("regions", &self.clients.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// What a batched describe of one region found: instances by id, and the
/// instances tagged with the looked-up worker ids.
type Found = (HashMap<String, InstanceView>, Vec<InstanceView>);

impl AwsProvider {
    /// Assembles a provider from what the builder validated and made.
    pub(crate) fn from_parts(
        settings: Settings,
        clients: HashMap<String, Ec2>,
        clock: Arc<dyn Clock>,
        identity: Identity,
    ) -> Self {
        AwsProvider {
            settings: Arc::new(settings),
            clients: Arc::new(clients),
            clock,
            identity: Arc::new(identity),
        }
    }

    /// The configured regions.
    pub fn regions(&self) -> &[String] {
        &self.settings.regions
    }

    /// The step timings.
    pub fn timings(&self) -> Timings {
        self.settings.timings
    }

    /// The aws-sdk-ec2 client of `region`, if configured (for tests that
    /// act behind the provider's back; not stable API).
    #[cfg(feature = "testing")]
    pub fn sdk_client(&self, region: &str) -> Option<&aws_sdk_ec2::Client> {
        self.clients.get(region).map(Ec2::sdk)
    }

    /// The instance id recorded on a worker, if any.
    pub fn instance_id(worker: &Worker) -> Option<String> {
        AwsState::of(worker).ok().flatten()?.instance_id
    }

    fn rules(&self) -> Rules<'_> {
        Rules {
            provider_id: &self.settings.provider_id,
            regions: &self.settings.regions,
            timings: self.settings.timings,
            root_url: self.settings.root_url.as_deref(),
        }
    }

    fn ec2(&self, region: &str) -> Result<&Ec2> {
        self.rules().check_region(region)?;
        self.clients
            .get(region)
            .ok_or_else(|| Error::internal(format!("no EC2 client for region `{region}`")))
    }

    /// One batched DescribeInstances per region (and per lookup kind) for
    /// every worker that needs a look, the regions concurrently. Answers
    /// what each region's describe found, by region.
    async fn look(
        &self,
        workers: &[Worker],
        looks: &[(usize, AwsState, Lookup)],
    ) -> BTreeMap<String, Result<Found>> {
        let groups: Vec<(String, Vec<usize>)> =
            group_by(looks, |_, (_, st, _)| Some(st.region.clone()))
                .into_iter()
                .collect();
        let found = bounded(groups.len(), groups.len(), |g| {
            let (region, members) = &groups[g];
            let mut ids = Vec::new();
            let mut tagged = Vec::new();
            for &k in members {
                match &looks[k] {
                    (_, _, Lookup::Id(id)) => ids.push(id.clone()),
                    (i, _, Lookup::Tag) => tagged.push(workers[*i].id().to_string()),
                }
            }
            ids.sort();
            ids.dedup();
            tagged.sort();
            tagged.dedup();
            async move {
                let ec2 = self.ec2(region)?;
                let by_id = if ids.is_empty() {
                    HashMap::new()
                } else {
                    ec2.describe_ids(&ids)
                        .await?
                        .into_iter()
                        .map(|v| (v.id.clone(), v))
                        .collect()
                };
                let by_tag = if tagged.is_empty() {
                    Vec::new()
                } else {
                    ec2.describe_workers(&tagged).await?
                };
                Ok((by_id, by_tag))
            }
        })
        .await;
        groups.into_iter().map(|(r, _)| r).zip(found).collect()
    }

    /// The live instances of one region tagged as owned by `scope`.
    async fn list_region(
        &self,
        region: &str,
        scope: &OwnershipScope,
    ) -> Result<Vec<OwnedResource>> {
        let ec2 = self.ec2(region)?;
        let filters = vec![
            Filter::builder()
                .name(format!("tag:{}", tag::MANAGER))
                .values(&scope.manager_id)
                .build(),
            Filter::builder()
                .name(format!("tag:{}", tag::PROVIDER))
                .values(&scope.provider_id)
                .build(),
            Filter::builder()
                .name("instance-state-name")
                .set_values(Some(
                    ["pending", "running", "shutting-down", "stopping", "stopped"]
                        .map(String::from)
                        .to_vec(),
                ))
                .build(),
        ];
        let instances = ec2.describe(filters).await?;
        Ok(instances
            .into_iter()
            .map(|i| {
                let account = i.owner_id.clone().unwrap_or_default();
                OwnedResource::from_tags(
                    format!("arn:aws:ec2:{region}:{account}:instance/{}", i.id),
                    "instance",
                    i.launch_time,
                    i.tags,
                )
            })
            .collect())
    }

    /// Makes one mutating call and turns its answer into the step.
    async fn call(&self, worker: &Worker, call: &Call, now: OffsetDateTime) -> Result<Step> {
        let rules = self.rules();
        let ec2 = self.ec2(call.region())?;
        match call {
            Call::Launch { st, req } => {
                let pending = rules.pending_interval(worker, now);
                launched(st.clone(), ec2.run_instance(req).await, pending, now)
            }
            Call::Terminate {
                st,
                id,
                interruption,
            } => {
                let s = terminated(&rules, st.clone(), ec2.terminate(id).await, now)?;
                Ok(match interruption {
                    Some(i) => s.with_interruption(i.clone()),
                    None => s,
                })
            }
        }
    }
}

/// Parses `arn:aws:ec2:REGION:ACCOUNT:instance/ID` (or a bare id).
fn parse_instance_ref(id: &str) -> Option<(Option<&str>, &str)> {
    if let Some(rest) = id.strip_prefix("arn:") {
        let parts: Vec<&str> = rest.splitn(5, ':').collect();
        if parts.len() == 5 && parts[1] == "ec2" {
            let inst = parts[4].strip_prefix("instance/")?;
            return Some((Some(parts[2]), inst));
        }
        return None;
    }
    id.starts_with("i-").then_some((None, id))
}

impl AwsProvider {
    /// The region and instance id of a resource found by `list_owned` (a
    /// bare instance id is in the first configured region).
    fn instance_of<'a>(&'a self, resource: &'a OwnedResource) -> Result<(&'a str, &'a str)> {
        let (region, id) = parse_instance_ref(&resource.id).ok_or_else(|| {
            Error::invalid_config(
                "resource.id",
                format!(
                    "`{}` is not an EC2 instance ARN or instance id",
                    resource.id
                ),
            )
        })?;
        let region = match region {
            Some(r) => r,
            None => self
                .settings
                .regions
                .first()
                .map(String::as_str)
                .ok_or_else(|| Error::invalid_config("regions", "no region configured"))?,
        };
        Ok((region, id))
    }
}

#[async_trait]
impl Provider for AwsProvider {
    fn id(&self) -> &str {
        &self.settings.provider_id
    }

    fn kind(&self) -> &'static str {
        "aws"
    }

    fn validate(&self, launch: &serde_json::Value) -> Result<()> {
        let l = Ec2Launch::parse(launch)?;
        self.rules().check_region(&l.region)
    }

    /// The zone (or region), instance type, market and vCPU quota scope
    /// of `lc` (see [`offering`](crate::offering)).
    fn offering(&self, lc: &LaunchConfig) -> Result<Offering> {
        let l = Ec2Launch::parse(&lc.launch)?;
        Ok(crate::offering::offering(&self.settings.provider_id, &l))
    }

    fn partition(&self, worker: &Worker) -> Option<String> {
        if let Ok(Some(st)) = AwsState::of(worker) {
            return Some(st.region);
        }
        worker
            .spec
            .launch
            .get("region")
            .and_then(|r| r.as_str())
            .map(str::to_string)
    }

    async fn step(&self, worker: &Worker) -> Result<Step> {
        let mut all = self.step_many(std::slice::from_ref(worker)).await;
        all.pop()
            .unwrap_or_else(|| Err(Error::internal("step_many answered no step")))
    }

    /// One DescribeInstances answers up to this many workers' checks.
    fn batch_limit(&self) -> usize {
        crate::client::MAX_FILTER_VALUES
    }

    async fn step_many(&self, workers: &[Worker]) -> Vec<Result<Step>> {
        let now = self.clock.now();
        let rules = self.rules();
        let mut out: Vec<Option<Result<Step>>> = workers.iter().map(|_| None).collect();
        let mut calls: Vec<(usize, Call)> = Vec::new();
        let mut looks: Vec<(usize, AwsState, Lookup)> = Vec::new();
        for (i, w) in workers.iter().enumerate() {
            match plan(&rules, w, now) {
                Plan::Done(r) => out[i] = Some(r),
                Plan::Call(c) => calls.push((i, c)),
                Plan::Look(st, l) => looks.push((i, st, l)),
            }
        }

        let found = self.look(workers, &looks).await;
        for (i, st, l) in looks {
            let w = &workers[i];
            let next = match found.get(&st.region) {
                Some(Ok((by_id, by_tag))) => {
                    let f = match &l {
                        Lookup::Id(id) => by_id.get(id),
                        Lookup::Tag => pick_by_tag(w, &st, by_tag),
                    };
                    decide(&rules, w, st, f, now)
                }
                Some(Err(e)) => Plan::Done(Err(e.clone())),
                None => Plan::Done(Err(Error::internal("no describe result for the region"))),
            };
            match next {
                Plan::Done(r) => out[i] = Some(r),
                Plan::Call(c) => calls.push((i, c)),
                Plan::Look(..) => {
                    out[i] = Some(Err(Error::internal("a look led to another look")));
                }
            }
        }

        // The mutating calls, all concurrently (the transport limits them).
        let answers = bounded(calls.len(), calls.len(), |k| {
            let (i, c) = &calls[k];
            self.call(&workers[*i], c, now)
        })
        .await;
        for ((i, _), r) in calls.iter().zip(answers) {
            out[*i] = Some(r);
        }
        out.into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Error::internal("a worker got no step"))))
            .collect()
    }

    /// One filtered DescribeInstances listing (every page, through core's
    /// `paginate`) per configured region, the regions concurrently; the
    /// first failed region (in configuration order) fails the listing.
    async fn list_owned(&self, scope: &OwnershipScope) -> Result<Vec<OwnedResource>> {
        let regions = &self.settings.regions;
        let per_region = bounded(regions.len(), regions.len(), |r| {
            self.list_region(&regions[r], scope)
        })
        .await;
        let mut out = Vec::new();
        for found in per_region {
            out.extend(found?);
        }
        Ok(out)
    }

    async fn delete_owned(&self, resource: &OwnedResource) -> Result<()> {
        let (region, id) = self.instance_of(resource)?;
        match self.ec2(region)?.terminate(id).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == &ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// One CreateTags on the instance (its volumes, which the sweeper
    /// never lists and which go with the instance, are left as they are).
    async fn tag_owned(
        &self,
        resource: &OwnedResource,
        tags: &std::collections::BTreeMap<String, String>,
    ) -> Result<()> {
        let (region, id) = self.instance_of(resource)?;
        self.ec2(region)?.create_tags(id, tags).await
    }

    async fn verify_identity(
        &self,
        worker: &Worker,
        proof: &IdentityProof,
    ) -> Result<VerifiedIdentity> {
        identity::verify(&self.settings.provider_id, &self.identity, worker, proof)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_refs() {
        assert_eq!(
            parse_instance_ref("arn:aws:ec2:eu-west-1:123456789012:instance/i-0abc"),
            Some((Some("eu-west-1"), "i-0abc"))
        );
        assert_eq!(parse_instance_ref("i-0abc"), Some((None, "i-0abc")));
        assert_eq!(parse_instance_ref("arn:aws:s3:::bucket"), None);
        assert_eq!(parse_instance_ref("vol-1"), None);
    }
}
