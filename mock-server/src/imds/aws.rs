//! EC2's instance metadata service under `/_imds/aws/{instance-id}`:
//! IMDSv2 session tokens (`PUT /latest/api/token`), the `meta-data` tree,
//! the signed identity document under `dynamic/instance-identity/`, and
//! `user-data`.
//!
//! Tokens are stateless: the expiry (ms) and an HMAC of (instance id, expiry)
//! under a per-mock key, so a token works for the instance it was issued
//! for, until it expires (real time, not scaled), and nothing is stored.
//! A GET without a token is served (IMDSv1) unless the instance was
//! launched with `MetadataOptions.HttpTokens=required`; a GET with a bad or
//! expired token is 401 either way, as EC2 does.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::response::Response;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::request::Parts;
use http::{HeaderValue, Method, StatusCode};

use super::facts::AwsVm;
use super::{aws_identity, clip, forwarded, name, plain, segments, Imds};

/// The TTL header of a token request and answer.
pub const TTL_HEADER: &str = "x-aws-ec2-metadata-token-ttl-seconds";
/// The token header of a GET.
pub const TOKEN_HEADER: &str = "x-aws-ec2-metadata-token";
/// The longest token TTL EC2 grants (6 hours).
pub const MAX_TTL: u64 = 21_600;
/// Bytes of HMAC kept in a token.
const MAC_LEN: usize = 16;

/// EC2's metadata error page: a small XHTML document with the status.
fn page(status: StatusCode) -> Response {
    let title = format!(
        "{} - {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"iso-8859-1\"?>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" xml:lang=\"en\" lang=\"en\">\n <head>\n  <title>{title}</title>\n </head>\n <body>\n  <h1>{title}</h1>\n </body>\n</html>\n"
    );
    let mut resp = plain(status, "text/html", body);
    resp.headers_mut()
        .insert(http::header::SERVER, HeaderValue::from_static("EC2ws"));
    resp
}

fn text(body: impl Into<axum::body::Body>) -> Response {
    let mut resp = plain(StatusCode::OK, "text/plain", body);
    resp.headers_mut()
        .insert(http::header::SERVER, HeaderValue::from_static("EC2ws"));
    resp
}

/// Milliseconds since the epoch (token expiry is kept to the millisecond,
/// so a token of N seconds lasts N seconds, not N minus a fraction).
fn now_ms() -> u64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The token TTL a PUT asks for: an integer from 1 to [`MAX_TTL`].
pub fn parse_ttl(value: Option<&[u8]>) -> Option<u64> {
    let v = std::str::from_utf8(value?).ok()?.trim();
    if v.is_empty() || v.len() > 10 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse::<u64>().ok().filter(|t| (1..=MAX_TTL).contains(t))
}

impl Imds {
    fn token_mac(&self, instance_id: &str, expires: u64) -> aws_lc_rs::hmac::Tag {
        let mut ctx = aws_lc_rs::hmac::Context::with_key(&self.token_key);
        ctx.update(instance_id.as_bytes());
        ctx.update(&[0]);
        ctx.update(&expires.to_be_bytes());
        ctx.sign()
    }

    /// A session token for `instance_id` valid for `ttl` seconds.
    fn issue_token(&self, instance_id: &str, ttl: u64) -> String {
        let expires = now_ms().saturating_add(ttl.saturating_mul(1000));
        let mut raw = expires.to_be_bytes().to_vec();
        raw.extend_from_slice(&self.token_mac(instance_id, expires).as_ref()[..MAC_LEN]);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Whether `token` was issued for `instance_id` and is unexpired.
    fn token_valid(&self, instance_id: &str, token: &[u8]) -> bool {
        let Ok(raw) = URL_SAFE_NO_PAD.decode(token) else {
            return false;
        };
        if raw.len() != 8 + MAC_LEN {
            return false;
        }
        let (exp, mac) = raw.split_at(8);
        let mut e = [0u8; 8];
        e.copy_from_slice(exp);
        let expires = u64::from_be_bytes(e);
        let expected = self.token_mac(instance_id, expires);
        // Constant-time comparison of the kept prefix.
        let same =
            aws_lc_rs::constant_time::verify_slices_are_equal(&expected.as_ref()[..MAC_LEN], mac)
                .is_ok();
        same && expires > now_ms()
    }
}

/// Any request under `/_imds/aws/`.
pub async fn handle(State(imds): State<Arc<Imds>>, req: Request) -> Response {
    let (req, _) = req.into_parts();
    let (op, mut resp) = serve(&imds, &req).await;
    name(&mut resp, op);
    resp
}

async fn serve(imds: &Imds, req: &Parts) -> (&'static str, Response) {
    if forwarded(&req.headers) {
        return ("imds.aws.forwarded", page(StatusCode::FORBIDDEN));
    }
    let path = req.uri.path().strip_prefix("/_imds/aws/").unwrap_or("");
    let segs = segments(path);
    let Some((instance_id, rest)) = segs.split_first() else {
        return ("imds.aws.unknown", page(StatusCode::NOT_FOUND));
    };
    if rest == ["latest", "api", "token"] {
        return ("imds.aws.token", token(imds, req, instance_id));
    }
    if req.method != Method::GET && req.method != Method::HEAD {
        return ("imds.aws.get", page(StatusCode::METHOD_NOT_ALLOWED));
    }
    let Some(vm) = imds.ec2.imds_vm(instance_id) else {
        return ("imds.aws.get", page(StatusCode::NOT_FOUND));
    };
    match req.headers.get(TOKEN_HEADER) {
        Some(t) if !imds.token_valid(instance_id, t.as_bytes()) => {
            return ("imds.aws.get", page(StatusCode::UNAUTHORIZED))
        }
        None if vm.tokens_required => return ("imds.aws.get", page(StatusCode::UNAUTHORIZED)),
        _ => {}
    }
    read(imds, &vm, rest).await
}

/// `PUT /latest/api/token`.
fn token(imds: &Imds, req: &Parts, instance_id: &str) -> Response {
    if req.method != Method::PUT {
        return page(StatusCode::METHOD_NOT_ALLOWED);
    }
    let Some(ttl) = parse_ttl(req.headers.get(TTL_HEADER).map(HeaderValue::as_bytes)) else {
        return page(StatusCode::BAD_REQUEST);
    };
    if imds.ec2.imds_vm(instance_id).is_none() {
        return page(StatusCode::NOT_FOUND);
    }
    let mut resp = text(imds.issue_token(instance_id, ttl));
    resp.headers_mut()
        .insert(TTL_HEADER, HeaderValue::from(ttl));
    resp
}

/// The `meta-data/` tree: every leaf, and the directories above them.
fn meta_data(vm: &AwsVm, path: &[&str]) -> Option<String> {
    let leaf = match path {
        [] => {
            return Some(
                if vm.spot_action.is_some() {
                    "ami-id\nami-launch-index\nami-manifest-path\nhostname\ninstance-action\ninstance-id\ninstance-life-cycle\ninstance-type\nlocal-hostname\nlocal-ipv4\nmac\nplacement/\nreservation-id\nservices/\nspot/"
                } else {
                    "ami-id\nami-launch-index\nami-manifest-path\nhostname\ninstance-action\ninstance-id\ninstance-life-cycle\ninstance-type\nlocal-hostname\nlocal-ipv4\nmac\nplacement/\nreservation-id\nservices/"
                }
                .into(),
            )
        }
        ["ami-id"] => vm.image_id.clone(),
        ["ami-launch-index"] => vm.launch_index.to_string(),
        ["ami-manifest-path"] => "(unknown)".into(),
        ["hostname"] | ["local-hostname"] => vm.private_dns.clone(),
        ["instance-action"] => "none".into(),
        ["instance-id"] => vm.instance_id.clone(),
        ["instance-life-cycle"] => if vm.spot { "spot" } else { "on-demand" }.into(),
        ["instance-type"] => vm.instance_type.clone(),
        ["local-ipv4"] => vm.private_ip.clone(),
        ["mac"] => mac(vm),
        ["placement"] => "availability-zone\nregion".into(),
        ["placement", "availability-zone"] => vm.zone.clone(),
        ["placement", "region"] => vm.region.clone(),
        ["reservation-id"] => vm.reservation_id.clone(),
        ["spot"] if vm.spot_action.is_some() => "instance-action\ntermination-time".into(),
        ["spot", "instance-action"] => {
            let time = vm.spot_action.as_ref()?;
            serde_json::json!({"action": "terminate", "time": time}).to_string()
        }
        ["spot", "termination-time"] => vm.spot_action.clone()?,
        ["services"] => "domain\npartition".into(),
        ["services", "domain"] => "amazonaws.com".into(),
        ["services", "partition"] => "aws".into(),
        _ => return None,
    };
    Some(leaf)
}

/// A stable MAC address derived from the private IP (`0e:..`, locally
/// administered, as EC2's are).
fn mac(vm: &AwsVm) -> String {
    let octets: Vec<u8> = vm
        .private_ip
        .split('.')
        .filter_map(|o| o.parse().ok())
        .collect();
    let mut m = [0x0e, 0x10, 0, 0, 0, 0];
    for (i, o) in octets.iter().take(4).enumerate() {
        m[2 + i] = *o;
    }
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

async fn read(imds: &Imds, vm: &AwsVm, rest: &[&str]) -> (&'static str, Response) {
    let not_found = || page(StatusCode::NOT_FOUND);
    match rest {
        [] => ("imds.aws.versions", text("latest")),
        ["latest"] => {
            let mut list = "dynamic\nmeta-data".to_string();
            if vm.user_data.is_some() {
                list.push_str("\nuser-data");
            }
            ("imds.aws.latest", text(list))
        }
        ["latest", "user-data"] => match &vm.user_data {
            Some(ud) => ("imds.aws.user-data", text(ud.to_vec())),
            None => ("imds.aws.user-data", not_found()),
        },
        ["latest", "meta-data", path @ ..] => match meta_data(vm, path) {
            Some(v) => ("imds.aws.meta-data", text(v)),
            None => ("imds.aws.meta-data", not_found()),
        },
        ["latest", "dynamic"] => ("imds.aws.dynamic", text("instance-identity/")),
        ["latest", "dynamic", "instance-identity"] => {
            ("imds.aws.dynamic", text("document\nrsa2048\nsignature"))
        }
        ["latest", "dynamic", "instance-identity", which] => {
            let doc = aws_identity::document(vm);
            let signed = match *which {
                "document" => return ("imds.aws.document", text(doc)),
                "signature" => aws_identity::signature(imds, &doc).await,
                "rsa2048" => aws_identity::rsa2048(imds, &doc).await,
                _ => return ("imds.aws.dynamic", not_found()),
            };
            let op = if *which == "signature" {
                "imds.aws.signature"
            } else {
                "imds.aws.rsa2048"
            };
            match signed {
                Ok(body) => (op, text(body)),
                Err(e) => {
                    tracing::error!(error = %e, "cannot sign the identity document");
                    (op, page(StatusCode::INTERNAL_SERVER_ERROR))
                }
            }
        }
        other => {
            tracing::debug!(path = clip(&other.join("/")), "unknown EC2 metadata path");
            ("imds.aws.unknown", not_found())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_outside_one_to_six_hours_are_refused() {
        assert_eq!(parse_ttl(Some(b"1")), Some(1));
        assert_eq!(parse_ttl(Some(b"21600")), Some(21_600));
        for bad in [
            &b"0"[..],
            b"21601",
            b"-5",
            b"1.5",
            b"",
            b" ",
            b"99999999999999999999",
            b"\xff",
        ] {
            assert_eq!(parse_ttl(Some(bad)), None, "{bad:?}");
        }
        assert_eq!(parse_ttl(None), None);
    }
}
