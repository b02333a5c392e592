//! CreateTags, DeleteTags and DescribeTags (instances are the only taggable
//! resource here).

use std::time::Instant;

use super::{check_tag, next_token, page, tag_pairs, well_formed, DryRun, MAX_TAGS};
use crate::ec2::error::Ec2Error;
use crate::ec2::filters;
use crate::ec2::query::Params;
use crate::ec2::store::Partition;
use crate::ec2::xml::Xml;
use crate::ec2::{Caller, Ec2};

/// The filters DescribeTags accepts.
const TAG_FILTERS: &[&str] = &["key", "value", "resource-id", "resource-type"];

/// A `(key, value)` pair; DeleteTags matches any value when it is `None`.
type TagPair = (String, Option<String>);

/// The parameters of a CreateTags or DeleteTags, checked.
struct TagsInput<'p> {
    tags: Vec<TagPair>,
    /// `ResourceId.N`: at least one, each a well-formed instance id.
    ids: Vec<&'p str>,
    dry_run: DryRun,
}

impl<'p> TagsInput<'p> {
    /// `create` requires at least one tag and checks each.
    fn parse(p: &'p Params, create: bool) -> Result<TagsInput<'p>, Ec2Error> {
        let tags = tag_pairs(p, "Tag")?;
        if create {
            if tags.is_empty() {
                return Err(Ec2Error::missing("Tag"));
            }
            for (k, v) in &tags {
                check_tag(k, v.as_deref().unwrap_or(""))?;
            }
        }
        let ids = p.list("ResourceId");
        if ids.is_empty() {
            return Err(Ec2Error::missing("ResourceId"));
        }
        if let Some(id) = ids.iter().find(|id| !well_formed(id, "i")) {
            return Err(Ec2Error::new(
                400,
                "InvalidID",
                format!("The ID '{id}' is not valid"),
            ));
        }
        Ok(TagsInput {
            tags,
            ids,
            dry_run: DryRun::parse(p),
        })
    }
}

/// Checks that every target exists (under the lock).
fn check_targets(ids: &[&str], part: Option<&Partition>, now: Instant) -> Result<(), Ec2Error> {
    let missing: Vec<&str> = ids
        .iter()
        .copied()
        .filter(|id| part.and_then(|pt| pt.get(id, now)).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(Ec2Error::instances_not_found(&missing));
    }
    Ok(())
}

impl Ec2 {
    /// CreateTags.
    pub(in crate::ec2) fn create_tags(
        &self,
        caller: &Caller,
        p: &Params,
        request_id: &str,
    ) -> Result<String, Ec2Error> {
        let TagsInput { tags, ids, dry_run } = TagsInput::parse(p, true)?;
        let now = Instant::now();
        let part = self.partition(caller);
        let mut guard = part
            .as_ref()
            .map(|pt| pt.lock().unwrap_or_else(|e| e.into_inner()));
        check_targets(&ids, guard.as_deref(), now)?;
        dry_run.answer()?;
        if let Some(part) = guard.as_deref_mut() {
            for id in &ids {
                if let Some(i) = part.get(id, now) {
                    let new_keys = tags.iter().filter(|(k, _)| !i.tags.contains_key(k)).count();
                    if i.tags.len() + new_keys > MAX_TAGS {
                        return Err(Ec2Error::new(
                            400,
                            "TagLimitExceeded",
                            format!(
                                "The maximum number of tags ({MAX_TAGS}) has been reached for resource {id}"
                            ),
                        ));
                    }
                }
            }
            for id in &ids {
                if let Some(i) = part.get_mut(id, now) {
                    for (k, v) in &tags {
                        i.tags.insert(k.clone(), v.clone().unwrap_or_default());
                    }
                }
            }
        }
        let mut x = Xml::response("CreateTags", request_id, 256);
        x.leaf("return", "true");
        Ok(x.finish_response("CreateTags"))
    }

    /// DeleteTags.
    pub(in crate::ec2) fn delete_tags(
        &self,
        caller: &Caller,
        p: &Params,
        request_id: &str,
    ) -> Result<String, Ec2Error> {
        let TagsInput { tags, ids, dry_run } = TagsInput::parse(p, false)?;
        let now = Instant::now();
        let part = self.partition(caller);
        let mut guard = part
            .as_ref()
            .map(|pt| pt.lock().unwrap_or_else(|e| e.into_inner()));
        check_targets(&ids, guard.as_deref(), now)?;
        dry_run.answer()?;
        if let Some(part) = guard.as_deref_mut() {
            for id in &ids {
                if let Some(i) = part.get_mut(id, now) {
                    if tags.is_empty() {
                        i.tags.clear();
                    }
                    for (k, v) in &tags {
                        let matches = match v {
                            None => true,
                            Some(v) => i.tags.get(k) == Some(v),
                        };
                        if matches {
                            i.tags.remove(k);
                        }
                    }
                }
            }
        }
        let mut x = Xml::response("DeleteTags", request_id, 256);
        x.leaf("return", "true");
        Ok(x.finish_response("DeleteTags"))
    }

    /// DescribeTags.
    pub(in crate::ec2) fn describe_tags(
        &self,
        caller: &Caller,
        p: &Params,
        request_id: &str,
    ) -> Result<String, Ec2Error> {
        let filters = filters::parse(p)?;
        filters::check_names(&filters, TAG_FILTERS)?;
        let (max, start) = page(p, 5)?;
        DryRun::parse(p).answer()?;
        let now = Instant::now();
        let mut x = Xml::response("DescribeTags", request_id, 1024);
        let mut rows: Vec<(&str, &str, &str)> = Vec::new();
        let part = self.partition(caller);
        let guard = part
            .as_ref()
            .map(|pt| pt.lock().unwrap_or_else(|e| e.into_inner()));
        if let Some(part) = guard.as_deref() {
            for i in part.instances.values() {
                if i.seen(now).gone {
                    continue;
                }
                for (k, v) in &i.tags {
                    let ok = filters.iter().all(|f| match f.name.as_str() {
                        "key" => f.any(k),
                        "value" => f.any(v),
                        "resource-id" => f.any(&i.id),
                        "resource-type" => f.any("instance"),
                        _ => false,
                    });
                    if ok {
                        rows.push((&i.id, k, v));
                    }
                }
            }
        }
        let start = usize::try_from(start).unwrap_or(usize::MAX).min(rows.len());
        let end = max.map_or(rows.len(), |m| (start + m).min(rows.len()));
        if start == end {
            x.empty("tagSet");
        } else {
            x.open("tagSet");
            for (id, k, v) in &rows[start..end] {
                x.open("item");
                x.leaf("resourceId", id);
                x.leaf("resourceType", "instance");
                x.leaf("key", k);
                x.leaf("value", v);
                x.close("item");
            }
            x.close("tagSet");
        }
        if end < rows.len() {
            x.leaf("nextToken", &next_token(end as u64));
        }
        Ok(x.finish_response("DescribeTags"))
    }
}
