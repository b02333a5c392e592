//! DescribeRegions and DescribeAvailabilityZones: the configured regions
//! and the zones of the caller's region.

use super::{zone_id, zones, DryRun};
use crate::ec2::config::Ec2Config;
use crate::ec2::error::Ec2Error;
use crate::ec2::filters;
use crate::ec2::query::Params;
use crate::ec2::xml::Xml;
use crate::ec2::Caller;

/// DescribeRegions.
pub(in crate::ec2) fn describe_regions(
    _caller: &Caller,
    p: &Params,
    cfg: &Ec2Config,
    request_id: &str,
) -> Result<String, Ec2Error> {
    let names = p.list("RegionName");
    for n in &names {
        if !cfg.regions.iter().any(|r| r == n) {
            return Err(Ec2Error::invalid_value(format!("Invalid region: {n}")));
        }
    }
    let filters = filters::parse(p)?;
    filters::check_names(&filters, &["region-name", "endpoint", "opt-in-status"])?;
    p.bool("AllRegions")?;
    DryRun::parse(p).answer()?;
    let mut x = Xml::response("DescribeRegions", request_id, 1024);
    x.open("regionInfo");
    for r in &cfg.regions {
        let endpoint = format!("ec2.{r}.amazonaws.com");
        if !names.is_empty() && !names.contains(&r.as_str()) {
            continue;
        }
        let ok = filters.iter().all(|f| match f.name.as_str() {
            "region-name" => f.any(r),
            "endpoint" => f.any(&endpoint),
            "opt-in-status" => f.any("opt-in-not-required"),
            _ => false,
        });
        if !ok {
            continue;
        }
        x.open("item");
        x.leaf("regionName", r);
        x.leaf("regionEndpoint", &endpoint);
        x.leaf("optInStatus", "opt-in-not-required");
        x.close("item");
    }
    x.close("regionInfo");
    Ok(x.finish_response("DescribeRegions"))
}

/// DescribeAvailabilityZones (of the caller's region).
pub(in crate::ec2) fn describe_availability_zones(
    caller: &Caller,
    p: &Params,
    cfg: &Ec2Config,
    request_id: &str,
) -> Result<String, Ec2Error> {
    let all = zones(&caller.region, cfg.zones_per_region);
    let names = p.list("ZoneName");
    let ids = p.list("ZoneId");
    for n in &names {
        if !all.iter().any(|z| z == n) {
            return Err(Ec2Error::invalid_value(format!(
                "Invalid availability zone: [{n}]"
            )));
        }
    }
    let filters = filters::parse(p)?;
    filters::check_names(
        &filters,
        &[
            "zone-name",
            "zone-id",
            "state",
            "region-name",
            "zone-type",
            "group-name",
        ],
    )?;
    p.bool("AllAvailabilityZones")?;
    DryRun::parse(p).answer()?;
    let mut x = Xml::response("DescribeAvailabilityZones", request_id, 1024);
    x.open("availabilityZoneInfo");
    for (index, z) in all.iter().enumerate() {
        let zid = zone_id(&caller.region, index);
        if !names.is_empty() && !names.contains(&z.as_str()) {
            continue;
        }
        if !ids.is_empty() && !ids.contains(&zid.as_str()) {
            continue;
        }
        let ok = filters.iter().all(|f| match f.name.as_str() {
            "zone-name" => f.any(z),
            "zone-id" => f.any(&zid),
            "state" => f.any("available"),
            "region-name" | "group-name" => f.any(&caller.region),
            "zone-type" => f.any("availability-zone"),
            _ => false,
        });
        if !ok {
            continue;
        }
        x.open("item");
        x.leaf("zoneName", z);
        x.leaf("zoneState", "available");
        x.leaf("regionName", &caller.region);
        x.empty("messageSet");
        x.leaf("optInStatus", "opt-in-not-required");
        x.leaf("zoneId", &zid);
        x.leaf("groupName", &caller.region);
        x.leaf("networkBorderGroup", &caller.region);
        x.leaf("zoneType", "availability-zone");
        x.close("item");
    }
    x.close("availabilityZoneInfo");
    Ok(x.finish_response("DescribeAvailabilityZones"))
}
