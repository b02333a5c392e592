//! CreateLaunchTemplate, DescribeLaunchTemplates and DeleteLaunchTemplate,
//! and the template a RunInstances names (`LaunchTemplate.*`).

use std::collections::BTreeMap;

use super::block_devices::{block_devices, volume_spec_tags};
use super::launch_params::{instance_tags, instance_type, metadata_options, spot, user_data};
use super::run::RunInput;
use super::{check_tag, next_token, page, tag_pairs, well_formed, DryRun, MAX_TAG_SPECS};
use crate::ec2::config::Ec2Config;
use crate::ec2::error::Ec2Error;
use crate::ec2::filters::{self, Filter};
use crate::ec2::query::Params;
use crate::ec2::templates::{LaunchTemplate, TEMPLATE_GROUPS};
use crate::ec2::xml::Xml;
use crate::ec2::{Caller, Ec2};

/// Most RunInstances parameters one template's data may carry.
const MAX_TEMPLATE_PARAMS: usize = 100;

/// Filter names DescribeLaunchTemplates supports.
const FILTERS: &[&str] = &["launch-template-name", "tag:", "tag-key", "tag-value"];

/// The template a RunInstances launches from: what it adds to the request.
#[derive(Debug, Clone)]
pub(in crate::ec2) struct LaunchedFrom {
    id: String,
    version: &'static str,
    params: Vec<(String, String)>,
    instance_tags: BTreeMap<String, String>,
    volume_tags: BTreeMap<String, String>,
}

impl LaunchedFrom {
    /// The request with the template's parameters filling what it omits.
    pub(in crate::ec2) fn merge(&self, p: &Params) -> Params {
        p.with_defaults(&self.params)
    }

    /// As [`merge`](Self::merge), leaving out the template's parameter
    /// groups named in `skip` (a fleet decides the market itself).
    pub(in crate::ec2) fn merge_except(&self, p: &Params, skip: &[&str]) -> Params {
        let kept: Vec<(String, String)> = self
            .params
            .iter()
            .filter(|(k, _)| !skip.contains(&k.split('.').next().unwrap_or("")))
            .cloned()
            .collect();
        p.with_defaults(&kept)
    }

    /// The template's id.
    pub(in crate::ec2) fn id(&self) -> &str {
        &self.id
    }

    /// Adds the template's instance and volume tags the request did not
    /// set, and the `aws:ec2launchtemplate:*` tags EC2 puts on such
    /// instances.
    pub(in crate::ec2) fn tag(&self, input: &mut RunInput) {
        let volumes = input.volume_tags_mut();
        for (k, v) in &self.volume_tags {
            volumes.entry(k.clone()).or_insert_with(|| v.clone());
        }
        let tags = input.tags_mut();
        for (k, v) in &self.instance_tags {
            tags.entry(k.clone()).or_insert_with(|| v.clone());
        }
        tags.insert("aws:ec2launchtemplate:id".into(), self.id.clone());
        tags.insert("aws:ec2launchtemplate:version".into(), self.version.into());
    }
}

fn not_found_id(id: &str) -> Ec2Error {
    Ec2Error::new(
        400,
        "InvalidLaunchTemplateId.NotFound",
        format!("The specified launch template, with template ID {id}, does not exist."),
    )
}

fn not_found_name(name: &str) -> Ec2Error {
    Ec2Error::new(
        400,
        "InvalidLaunchTemplateName.NotFoundException",
        format!("The specified launch template, with template name {name}, does not exist."),
    )
}

fn check_id(id: &str) -> Result<(), Ec2Error> {
    if well_formed(id, "lt") {
        return Ok(());
    }
    Err(Ec2Error::new(
        400,
        "InvalidLaunchTemplateId.Malformed",
        format!("The specified ID for the launch template, {id}, is not valid. The ID must be in the form lt-xxxxxxxxxxxxxxxxx."),
    ))
}

/// A template name: 3 to 128 of `a-zA-Z0-9().-/_`.
fn check_name(name: &str) -> Result<(), Ec2Error> {
    let ok = (3..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"().-/_".contains(&b));
    if ok {
        return Ok(());
    }
    let shown: String = name.chars().take(128).collect();
    Err(Ec2Error::new(
        400,
        "InvalidLaunchTemplateName.MalformedException",
        format!("A launch template name must be between 3 and 128 characters, and may contain letters, numbers, and the following characters: - ( ) . / _.' ({shown})"),
    ))
}

/// What a template supplies to a launch.
struct TemplateData {
    /// RunInstances parameters.
    params: Vec<(String, String)>,
    /// Instance tags.
    instance_tags: BTreeMap<String, String>,
    /// Volume tags.
    volume_tags: BTreeMap<String, String>,
}

/// `LaunchTemplateData.*`: the RunInstances parameters and instance and
/// volume tags it supplies, checked as RunInstances checks them.
fn template_data(p: &Params) -> Result<TemplateData, Ec2Error> {
    let mut params = Vec::new();
    let mut tag_specs = Vec::new();
    for (name, value) in p.under("LaunchTemplateData") {
        let group = name.split('.').next().unwrap_or("");
        if group == "TagSpecification" {
            tag_specs.push((name, value));
        } else if TEMPLATE_GROUPS.contains(&group) {
            params.push((name, value));
        }
    }
    if params.len() > MAX_TEMPLATE_PARAMS {
        return Err(Ec2Error::invalid_value(format!(
            "LaunchTemplateData may carry at most {MAX_TEMPLATE_PARAMS} values"
        )));
    }
    let data = Params::from_pairs(params.iter().cloned());
    if let Some(image_id) = data.get("ImageId") {
        if !well_formed(image_id, "ami") {
            return Err(Ec2Error::new(
                400,
                "InvalidAMIID.Malformed",
                format!("Invalid id: \"{image_id}\" (expecting \"ami-...\")"),
            ));
        }
    }
    instance_type(&data)?;
    user_data(&data)?;
    metadata_options(&data)?;
    spot(&data)?;
    block_devices(&data)?;
    let specs = Params::from_pairs(tag_specs);
    Ok(TemplateData {
        params,
        instance_tags: instance_tags(&specs)?,
        volume_tags: volume_spec_tags(&specs)?,
    })
}

/// The template's own tags (`TagSpecification.N` of `launch-template`).
fn own_tags(p: &Params) -> Result<BTreeMap<String, String>, Ec2Error> {
    let mut tags = BTreeMap::new();
    for n in p.indices("TagSpecification").into_iter().take(MAX_TAG_SPECS) {
        let rt = p.get(&format!("TagSpecification.{n}.ResourceType"));
        if rt != Some("launch-template") {
            return Err(Ec2Error::invalid_value(format!(
                "'{}' is not a valid taggable resource type for this operation.",
                rt.unwrap_or("")
            )));
        }
        for (k, v) in tag_pairs(p, &format!("TagSpecification.{n}.Tag"))? {
            let v = v.unwrap_or_default();
            check_tag(&k, &v)?;
            tags.insert(k, v);
        }
    }
    Ok(tags)
}

/// One template's fields (inside `launchTemplate` or an `item`).
fn write_template(x: &mut Xml, t: &LaunchTemplate) {
    x.leaf("launchTemplateId", &t.id);
    x.leaf("launchTemplateName", &t.name);
    x.leaf("createTime", &t.create_time);
    x.leaf("createdBy", &t.created_by);
    x.num("defaultVersionNumber", 1);
    x.num("latestVersionNumber", 1);
    if !t.tags.is_empty() {
        x.open("tagSet");
        for (k, v) in &t.tags {
            x.open("item");
            x.leaf("key", k);
            x.leaf("value", v);
            x.close("item");
        }
        x.close("tagSet");
    }
}

fn single(action: &str, request_id: &str, t: &LaunchTemplate) -> String {
    let mut x = Xml::response(action, request_id, 1024);
    x.open("launchTemplate");
    write_template(&mut x, t);
    x.close("launchTemplate");
    x.finish_response(action)
}

fn matches(f: &Filter, t: &LaunchTemplate) -> bool {
    match f.name.as_str() {
        "launch-template-name" => f.any(&t.name),
        "tag-key" => t.tags.keys().any(|k| f.any(k)),
        "tag-value" => t.tags.values().any(|v| f.any(v)),
        name => name
            .strip_prefix("tag:")
            .and_then(|k| t.tags.get(k))
            .is_some_and(|v| f.any(v)),
    }
}

impl Ec2 {
    /// CreateLaunchTemplate.
    pub(in crate::ec2) fn create_launch_template(
        &self,
        caller: &Caller,
        p: &Params,
        cfg: &Ec2Config,
        request_id: &str,
    ) -> Result<String, Ec2Error> {
        let name = p.require("LaunchTemplateName")?;
        check_name(name)?;
        let client_token = p.get("ClientToken").unwrap_or("");
        if client_token.len() > 128 || !client_token.is_ascii() {
            return Err(Ec2Error::invalid_value(
                "The client token must be at most 128 ASCII characters.",
            ));
        }
        let data = template_data(p)?;
        let tags = own_tags(p)?;
        DryRun::parse(p).answer()?;
        let part = self.partition_or_create(caller);
        let mut part = part.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = part.templates.by_token(client_token) {
            if t.name == name
                && t.params == data.params
                && t.instance_tags == data.instance_tags
                && t.volume_tags == data.volume_tags
            {
                return Ok(single("CreateLaunchTemplate", request_id, t));
            }
            return Err(Ec2Error::new(
                400,
                "IdempotentParameterMismatch",
                "Arguments on this idempotent request are inconsistent with arguments used in previous request(s).",
            ));
        }
        if part.templates.by_name(name).is_some() {
            return Err(Ec2Error::new(
                400,
                "InvalidLaunchTemplateName.AlreadyExistsException",
                format!("Launch template name already in use: {name}"),
            ));
        }
        let limit = cfg.launch_template_limit as usize;
        if part.templates.len() >= limit {
            return Err(Ec2Error::new(
                400,
                "LaunchTemplateLimitExceeded",
                format!("You have reached the maximum number of launch templates ({limit}) for this account and region."),
            ));
        }
        let t = part.templates.insert(LaunchTemplate {
            seq: 0,
            id: format!("lt-{}", self.ctx.hex_id(17)),
            name: name.to_string(),
            create_time: crate::now_rfc3339(),
            created_by: format!("arn:aws:iam::{}:root", caller.account),
            client_token: client_token.to_string(),
            params: data.params,
            instance_tags: data.instance_tags,
            volume_tags: data.volume_tags,
            tags,
        });
        Ok(single("CreateLaunchTemplate", request_id, t))
    }

    /// DescribeLaunchTemplates.
    pub(in crate::ec2) fn describe_launch_templates(
        &self,
        caller: &Caller,
        p: &Params,
        request_id: &str,
    ) -> Result<String, Ec2Error> {
        let ids = p.list("LaunchTemplateId");
        for id in &ids {
            check_id(id)?;
        }
        let names = p.list("LaunchTemplateName");
        let filters = filters::parse(p)?;
        filters::check_names(&filters, FILTERS)?;
        let (max, start) = page(p, 1)?;
        let dry_run = DryRun::parse(p);
        let part = self.partition(caller);
        let guard = part.as_ref().map(|m| m.lock().unwrap_or_else(|e| e.into_inner()));
        let templates = guard.as_ref().map(|g| &g.templates);
        for id in &ids {
            if templates.and_then(|t| t.by_id(id)).is_none() {
                return Err(not_found_id(id));
            }
        }
        for name in &names {
            if templates.and_then(|t| t.by_name(name)).is_none() {
                return Err(not_found_name(name));
            }
        }
        dry_run.answer()?;
        let mut x = Xml::response("DescribeLaunchTemplates", request_id, 2048);
        x.open("launchTemplates");
        let mut shown = 0;
        let mut next = None;
        for t in templates.into_iter().flat_map(|t| t.iter()) {
            let selected = t.seq >= start
                && (ids.is_empty() || ids.contains(&t.id.as_str()))
                && (names.is_empty() || names.contains(&t.name.as_str()))
                && filters.iter().all(|f| matches(f, t));
            if !selected {
                continue;
            }
            if max.is_some_and(|m| shown >= m) {
                next = Some(t.seq);
                break;
            }
            x.open("item");
            write_template(&mut x, t);
            x.close("item");
            shown += 1;
        }
        x.close("launchTemplates");
        if let Some(seq) = next {
            x.leaf("nextToken", &next_token(seq));
        }
        Ok(x.finish_response("DescribeLaunchTemplates"))
    }

    /// DeleteLaunchTemplate (by `LaunchTemplateId` or `LaunchTemplateName`).
    pub(in crate::ec2) fn delete_launch_template(
        &self,
        caller: &Caller,
        p: &Params,
        request_id: &str,
    ) -> Result<String, Ec2Error> {
        let by_id = p.get("LaunchTemplateId");
        let by_name = p.get("LaunchTemplateName");
        if let Some(id) = by_id {
            check_id(id)?;
        }
        let dry_run = DryRun::parse(p);
        let part = self.partition(caller);
        let mut guard = part.as_ref().map(|m| m.lock().unwrap_or_else(|e| e.into_inner()));
        let found = match (by_id, by_name) {
            (Some(id), _) => guard
                .as_ref()
                .and_then(|g| g.templates.by_id(id))
                .map(|t| t.id.clone())
                .ok_or_else(|| not_found_id(id))?,
            (None, Some(name)) => guard
                .as_ref()
                .and_then(|g| g.templates.by_name(name))
                .map(|t| t.id.clone())
                .ok_or_else(|| not_found_name(name))?,
            (None, None) => return Err(Ec2Error::missing("LaunchTemplateId or LaunchTemplateName")),
        };
        dry_run.answer()?;
        let removed = guard
            .as_mut()
            .and_then(|g| g.templates.remove(&found))
            .ok_or_else(|| not_found_id(&found))?;
        Ok(single("DeleteLaunchTemplate", request_id, &removed))
    }

    /// The template a RunInstances names in `LaunchTemplate.*`, if any.
    pub(in crate::ec2) fn launched_from(
        &self,
        caller: &Caller,
        p: &Params,
    ) -> Result<Option<LaunchedFrom>, Ec2Error> {
        let by_id = p.get("LaunchTemplate.LaunchTemplateId");
        let by_name = p.get("LaunchTemplate.LaunchTemplateName");
        let version = p.get("LaunchTemplate.Version");
        let (by_id, by_name) = match (by_id, by_name) {
            (None, None) if version.is_none() => return Ok(None),
            (None, None) => {
                return Err(Ec2Error::missing(
                    "LaunchTemplate.LaunchTemplateId or LaunchTemplate.LaunchTemplateName",
                ))
            }
            (Some(_), Some(_)) => {
                return Err(Ec2Error::invalid_combination(
                    "Only one of LaunchTemplateId and LaunchTemplateName may be given.",
                ))
            }
            pair => pair,
        };
        if let Some(id) = by_id {
            check_id(id)?;
        }
        let part = self.partition(caller);
        let guard = part.as_ref().map(|m| m.lock().unwrap_or_else(|e| e.into_inner()));
        let templates = guard.as_ref().map(|g| &g.templates);
        let t = match (by_id, by_name) {
            (Some(id), _) => templates.and_then(|t| t.by_id(id)).ok_or_else(|| not_found_id(id))?,
            (None, Some(name)) => templates
                .and_then(|t| t.by_name(name))
                .ok_or_else(|| not_found_name(name))?,
            (None, None) => return Ok(None),
        };
        match version {
            None | Some("$Default" | "$Latest" | "1") => {}
            Some(v) if v.parse::<u64>().is_ok() => {
                return Err(Ec2Error::new(
                    400,
                    "InvalidLaunchTemplateId.VersionNotFound",
                    format!("Could not find launch template version {v} for launch template {}.", t.id),
                ))
            }
            Some(v) => {
                let shown: String = v.chars().take(64).collect();
                return Err(Ec2Error::invalid_value(format!(
                    "Invalid launch template version '{shown}': expecting $Default, $Latest or a version number."
                )));
            }
        }
        Ok(Some(LaunchedFrom {
            id: t.id.clone(),
            version: "1",
            params: t.params.clone(),
            instance_tags: t.instance_tags.clone(),
            volume_tags: t.volume_tags.clone(),
        }))
    }
}
