//! [`CloudProfile`]: what the transport knows of one cloud, registered by
//! that cloud's provider: default limits per API class, per-operation
//! limits, shared buckets and a response classifier (the throttle and
//! capacity codes the cloud puts in bodies).
//!
//! Core's own defaults are cloud-neutral (one default limit, throttles read
//! from status `429` and the standard delay headers); a provider registers
//! its profile on the transport it is given
//! ([`Transport::register_profile`](super::Transport::register_profile)),
//! so one transport shared by several providers learns each of them, and
//! callers that build a transport change nothing. Explicit settings in the
//! [`TransportConfig`](super::TransportConfig) (`with_limit`,
//! `with_operation_limit`, `with_shared_bucket`) override a profile's.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use bytes::Bytes;
use http::Response;

use super::classify::Outcome;
use super::config::{class_index, Limit};
use super::key::ApiClass;
use crate::Result;

/// A cloud's reading of a response, before the neutral one: `Some` to
/// decide (an EC2 `RequestLimitExceeded` body is a throttle; a 500 with
/// `InsufficientInstanceCapacity` is final), `None` to leave the response to
/// the status and headers.
pub type Classifier = fn(&Response<Bytes>) -> Option<Outcome>;

/// What the transport knows of one cloud (see the module doc).
///
/// ```
/// use skyfleet_core::transport::{ApiClass, CloudProfile, Limit, Transport};
/// let profile = CloudProfile::new("mycloud")
///     .with_limit(ApiClass::Read, Limit::per_second(20, 100))
///     .with_shared_bucket(ApiClass::Poll, ApiClass::Read)
///     .with_operation_limit("CreateThing", Limit::per_second(2, 5));
/// let transport = Transport::builder().build().unwrap();
/// transport.register_profile(profile.clone()).unwrap();
/// transport.register_profile(profile).unwrap(); // idempotent
/// assert_eq!(
///     transport.config().limit_for("mycloud", ApiClass::Poll),
///     (ApiClass::Read, Limit::per_second(20, 100))
/// );
/// ```
#[derive(Debug, Clone)]
pub struct CloudProfile {
    provider: String,
    limits: [Option<Limit>; 4],
    operation_limits: HashMap<String, Limit>,
    shared_buckets: [Option<ApiClass>; 4],
    classifier: Option<Classifier>,
}

impl CloudProfile {
    /// An empty profile for `provider` (the first part of its keys).
    pub fn new(provider: impl Into<String>) -> Self {
        CloudProfile {
            provider: provider.into(),
            limits: [None; 4],
            operation_limits: HashMap::new(),
            shared_buckets: [None; 4],
            classifier: None,
        }
    }

    /// The default limit of `class` calls.
    pub fn with_limit(mut self, class: ApiClass, limit: Limit) -> Self {
        self.limits[class_index(class)] = Some(limit);
        self
    }

    /// Gives `operation` its own bucket (per account and region), as EC2
    /// does for `RunInstances`.
    pub fn with_operation_limit(mut self, operation: impl Into<String>, limit: Limit) -> Self {
        self.operation_limits.insert(operation.into(), limit);
        self
    }

    /// Makes `class` calls draw on the bucket of `into` (ARM polls are reads).
    pub fn with_shared_bucket(mut self, class: ApiClass, into: ApiClass) -> Self {
        self.shared_buckets[class_index(class)] = (class != into).then_some(into);
        self
    }

    /// Reads responses with `classifier` first.
    pub fn with_classifier(mut self, classifier: Classifier) -> Self {
        self.classifier = Some(classifier);
        self
    }

    /// The provider the profile is for.
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// The default limit of `class`, if the profile sets one.
    pub fn limit(&self, class: ApiClass) -> Option<Limit> {
        self.limits[class_index(class)]
    }

    /// The limit of `operation`, if it has its own bucket.
    pub fn operation_limit(&self, operation: &str) -> Option<Limit> {
        self.operation_limits.get(operation).copied()
    }

    /// Whether any operation has its own bucket.
    pub fn has_operation_limits(&self) -> bool {
        !self.operation_limits.is_empty()
    }

    /// The class whose bucket `class` calls draw on, if not their own.
    pub fn shared_bucket(&self, class: ApiClass) -> Option<ApiClass> {
        self.shared_buckets[class_index(class)]
    }

    /// The cloud's reading of `resp`, if its classifier has one.
    pub fn classify(&self, resp: &Response<Bytes>) -> Option<Outcome> {
        self.classifier.and_then(|c| c(resp))
    }

    /// Checks every limit, naming the offending field
    /// (`profiles.aws.read.count`, `profiles.aws.RunInstances.burst`).
    pub fn validate(&self) -> Result<()> {
        for class in ApiClass::ALL {
            if let Some(l) = self.limit(class) {
                l.validate(&format!("profiles.{}.{class}", self.provider))?;
            }
        }
        let mut ops: Vec<_> = self.operation_limits.iter().collect();
        ops.sort_by(|a, b| a.0.cmp(b.0));
        for (op, l) in ops {
            l.validate(&format!("profiles.{}.{op}", self.provider))?;
        }
        Ok(())
    }
}

/// The profiles a transport knows, by provider. Cloning a config copies
/// them (the copy is independent); the layers of one transport share one
/// config, hence one set.
#[derive(Default)]
pub(crate) struct Profiles(RwLock<HashMap<String, Arc<CloudProfile>>>);

impl Profiles {
    /// Adds (or replaces) the profile of its provider.
    pub(crate) fn register(&self, profile: CloudProfile) {
        let mut map = self.0.write().unwrap_or_else(PoisonError::into_inner);
        map.insert(profile.provider.clone(), Arc::new(profile));
    }

    /// The profile of `provider`, if registered.
    pub(crate) fn get(&self, provider: &str) -> Option<Arc<CloudProfile>> {
        let map = self.0.read().unwrap_or_else(PoisonError::into_inner);
        map.get(provider).cloned()
    }

    /// Runs `f` on the profile of `provider` without cloning its `Arc`.
    pub(crate) fn with<R>(&self, provider: &str, f: impl FnOnce(Option<&CloudProfile>) -> R) -> R {
        let map = self.0.read().unwrap_or_else(PoisonError::into_inner);
        f(map.get(provider).map(|p| &**p))
    }

    /// The registered providers, sorted.
    pub(crate) fn providers(&self) -> Vec<String> {
        let map = self.0.read().unwrap_or_else(PoisonError::into_inner);
        let mut v: Vec<_> = map.keys().cloned().collect();
        v.sort();
        v
    }
}

impl Clone for Profiles {
    fn clone(&self) -> Self {
        let map = self.0.read().unwrap_or_else(PoisonError::into_inner);
        Profiles(RwLock::new(map.clone()))
    }
}

impl std::fmt::Debug for Profiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.providers()).finish()
    }
}
