//! `Ec2`: one aws-sdk-ec2 client per region, sending every request through
//! the shared transport (via the transport connector) with the SDK's own
//! retries off, and the few EC2 calls the provider makes, with their answers
//! reduced to what it needs (`InstanceView`).

use std::collections::BTreeMap;

use aws_sdk_ec2::config::retry::RetryConfig;
use aws_sdk_ec2::config::Region;
use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, Filter, InstanceInterruptionBehavior,
    InstanceMarketOptionsRequest, InstanceType, MarketType, Placement, ResourceType,
    SpotInstanceType, SpotMarketOptions, Tag, TagSpecification, VolumeType,
};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use skyfleet_core::provider::support::{paginate, Page};
use skyfleet_core::Result;
use time::OffsetDateTime;

use crate::builder::Settings;
use crate::classify::{classify, malformed};
use crate::launch::Ec2Launch;

/// The most filter values EC2 takes in one call (beyond it answers 400
/// `FilterLimitExceeded`); batched describes are cut into chunks of this
/// size.
pub const MAX_FILTER_VALUES: usize = 200;

/// The page size of DescribeInstances (its `MaxResults` upper bound).
pub const PAGE_SIZE: i32 = 1000;

/// One instance as the provider sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceView {
    /// The instance id.
    pub id: String,
    /// The state name (`pending`, `running`, `shutting-down`, `terminated`,
    /// `stopping`, `stopped`), if EC2 gave one.
    pub state: Option<String>,
    /// The state reason code (`Server.SpotInstanceTermination`), if any.
    pub state_reason_code: Option<String>,
    /// The state reason message, if any.
    pub state_reason_message: Option<String>,
    /// The ClientToken it was launched with.
    pub client_token: Option<String>,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
    /// When it was launched.
    pub launch_time: Option<OffsetDateTime>,
    /// The owning account (from the reservation).
    pub owner_id: Option<String>,
    /// The primary private IPv4 address, once EC2 assigned one.
    pub private_ip: Option<String>,
}

impl InstanceView {
    fn from_sdk(i: &aws_sdk_ec2::types::Instance, owner: Option<&str>) -> Option<InstanceView> {
        let id = i.instance_id()?.to_string();
        Some(InstanceView {
            id,
            state: i
                .state()
                .and_then(|s| s.name())
                .map(|n| n.as_str().to_string()),
            state_reason_code: i.state_reason().and_then(|r| r.code()).map(str::to_string),
            state_reason_message: i
                .state_reason()
                .and_then(|r| r.message())
                .map(str::to_string),
            client_token: i
                .client_token()
                .filter(|t| !t.is_empty())
                .map(str::to_string),
            tags: i
                .tags()
                .iter()
                .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or("").to_string())))
                .collect(),
            launch_time: i
                .launch_time()
                .and_then(|t| OffsetDateTime::from_unix_timestamp(t.secs()).ok()),
            owner_id: owner.map(str::to_string),
            private_ip: i
                .private_ip_address()
                .filter(|ip| !ip.is_empty())
                .map(str::to_string),
        })
    }
}

/// What RunInstances is asked for: one instance of `launch`, with `token`,
/// `tags` on the instance and its volumes, and `user_data` (base64).
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// The launch config.
    pub launch: Ec2Launch,
    /// The ClientToken.
    pub token: String,
    /// Tags for the instance and its volumes.
    pub tags: BTreeMap<String, String>,
    /// Base64 UserData.
    pub user_data: String,
}

/// The EC2 client of one region.
#[derive(Debug, Clone)]
pub struct Ec2 {
    client: aws_sdk_ec2::Client,
}

/// Builds the SDK config of `region` over `http`, from `settings`: its
/// credentials, the SDK's own retries off, the endpoint override.
pub(crate) async fn sdk_config(
    settings: &Settings,
    region: &str,
    http: SharedHttpClient,
) -> aws_sdk_ec2::Config {
    let mut builder = settings
        .credentials
        .sdk_builder(settings.profile.as_deref(), region, &http)
        .await
        .region(Region::new(region.to_string()))
        .http_client(http)
        // The transport retries; SDK retries would multiply attempts.
        .retry_config(RetryConfig::disabled());
    if let Some(url) = &settings.endpoint_url {
        builder = builder.endpoint_url(url.clone());
    }
    builder.build()
}

fn tag_list(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

impl Ec2 {
    /// A client from an SDK config (which names its region).
    pub fn new(config: aws_sdk_ec2::Config) -> Self {
        Ec2 {
            client: aws_sdk_ec2::Client::from_conf(config),
        }
    }

    /// The underlying SDK client.
    #[cfg(feature = "testing")]
    pub fn sdk(&self) -> &aws_sdk_ec2::Client {
        &self.client
    }

    /// RunInstances of exactly one instance; the answer's instance.
    pub async fn run_instance(&self, req: &RunRequest) -> Result<InstanceView> {
        let l = &req.launch;
        let tags = tag_list(&req.tags);
        let mut call = self
            .client
            .run_instances()
            .image_id(&l.image_id)
            .instance_type(InstanceType::from(l.instance_type.as_str()))
            .min_count(1)
            .max_count(1)
            .client_token(&req.token)
            .user_data(&req.user_data)
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::Instance)
                    .set_tags(Some(tags.clone()))
                    .build(),
            )
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::Volume)
                    .set_tags(Some(tags))
                    .build(),
            );
        if let Some(s) = &l.subnet_id {
            call = call.subnet_id(s);
        }
        if let Some(z) = l.availability_zone() {
            call = call.placement(Placement::builder().availability_zone(z).build());
        }
        for g in &l.security_group_ids {
            call = call.security_group_ids(g);
        }
        if let Some(k) = &l.key_name {
            call = call.key_name(k);
        }
        if let Some(e) = l.ebs_optimized {
            call = call.ebs_optimized(e);
        }
        if l.is_spot() {
            let mut spot = SpotMarketOptions::builder();
            if let Some(o) = l.market.as_ref().and_then(|m| m.spot_options.as_ref()) {
                if let Some(p) = &o.max_price {
                    spot = spot.max_price(p);
                }
                if let Some(t) = &o.spot_instance_type {
                    spot = spot.spot_instance_type(SpotInstanceType::from(t.as_str()));
                }
                if let Some(b) = &o.instance_interruption_behavior {
                    spot = spot.instance_interruption_behavior(InstanceInterruptionBehavior::from(
                        b.as_str(),
                    ));
                }
            }
            call = call.instance_market_options(
                InstanceMarketOptionsRequest::builder()
                    .market_type(MarketType::Spot)
                    .spot_options(spot.build())
                    .build(),
            );
        }
        for d in &l.block_devices {
            let mut m = BlockDeviceMapping::builder().device_name(&d.device_name);
            if let Some(e) = &d.ebs {
                let mut b = EbsBlockDevice::builder();
                if let Some(v) = e.volume_size {
                    b = b.volume_size(v);
                }
                if let Some(v) = &e.volume_type {
                    b = b.volume_type(VolumeType::from(v.as_str()));
                }
                if let Some(v) = e.delete_on_termination {
                    b = b.delete_on_termination(v);
                }
                if let Some(v) = e.encrypted {
                    b = b.encrypted(v);
                }
                if let Some(v) = e.iops {
                    b = b.iops(v);
                }
                if let Some(v) = e.throughput {
                    b = b.throughput(v);
                }
                if let Some(v) = &e.snapshot_id {
                    b = b.snapshot_id(v);
                }
                m = m.ebs(b.build());
            }
            call = call.block_device_mappings(m.build());
        }
        let out = call
            .send()
            .await
            .map_err(|e| classify("RunInstances", &e))?;
        let first = out
            .instances()
            .first()
            .ok_or_else(|| malformed("RunInstances", "no instance in the answer"))?;
        InstanceView::from_sdk(first, out.owner_id())
            .ok_or_else(|| malformed("RunInstances", "an instance without an instance id"))
    }

    /// DescribeInstances with `filters`, every page (up to core's one
    /// runaway cap on pages).
    pub async fn describe(&self, filters: Vec<Filter>) -> Result<Vec<InstanceView>> {
        paginate("DescribeInstances", |next: Option<String>| {
            let call = self
                .client
                .describe_instances()
                .set_filters(Some(filters.clone()))
                .max_results(PAGE_SIZE)
                .set_next_token(next);
            async move {
                let page = call
                    .send()
                    .await
                    .map_err(|e| classify("DescribeInstances", &e))?;
                let mut items = Vec::new();
                for r in page.reservations() {
                    for i in r.instances() {
                        items.push(InstanceView::from_sdk(i, r.owner_id()).ok_or_else(|| {
                            malformed("DescribeInstances", "an instance without an instance id")
                        })?);
                    }
                }
                let next = page
                    .next_token()
                    .filter(|t| !t.is_empty())
                    .map(str::to_string);
                Ok(Page { items, next })
            }
        })
        .await
    }

    /// DescribeInstances of the instances with these ids (filtered, so a
    /// missing id is simply absent from the answer), in chunks of
    /// [`MAX_FILTER_VALUES`].
    pub async fn describe_ids(&self, ids: &[String]) -> Result<Vec<InstanceView>> {
        self.describe_by("instance-id", ids).await
    }

    /// DescribeInstances of the instances tagged with these worker ids.
    pub async fn describe_workers(&self, worker_ids: &[String]) -> Result<Vec<InstanceView>> {
        self.describe_by(
            &format!("tag:{}", skyfleet_core::model::tag::WORKER),
            worker_ids,
        )
        .await
    }

    async fn describe_by(&self, filter: &str, values: &[String]) -> Result<Vec<InstanceView>> {
        let mut out = Vec::new();
        for chunk in values.chunks(MAX_FILTER_VALUES) {
            let f = Filter::builder()
                .name(filter)
                .set_values(Some(chunk.to_vec()))
                .build();
            out.extend(self.describe(vec![f]).await?);
        }
        Ok(out)
    }

    /// CreateTags: adds (or overwrites) `tags` on resource `id`, keeping
    /// its other tags.
    pub async fn create_tags(&self, id: &str, tags: &BTreeMap<String, String>) -> Result<()> {
        self.client
            .create_tags()
            .resources(id)
            .set_tags(Some(tag_list(tags)))
            .send()
            .await
            .map_err(|e| classify("CreateTags", &e))?;
        Ok(())
    }

    /// TerminateInstances of one instance.
    pub async fn terminate(&self, id: &str) -> Result<()> {
        self.client
            .terminate_instances()
            .instance_ids(id)
            .send()
            .await
            .map_err(|e| classify("TerminateInstances", &e))?;
        Ok(())
    }
}
