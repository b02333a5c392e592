//! The key every transport layer shares state under, and the request
//! extensions that carry it.
//!
//! Clouds meter their APIs per account (subscription, project), per region and
//! per kind of call, so the transport keeps one limiter, one semaphore, one
//! retry budget and one set of counters per [`Key`]. A provider attaches the
//! key to each request as an [`http::Extensions`] entry (see [`RequestExt`]);
//! a request without one falls back to a key derived from its method under the
//! provider name `"unkeyed"`, so nothing is ever unlimited by accident.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use http::{Method, Request};

/// The kind of call, which is how every cloud groups its API limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ApiClass {
    /// Non-mutating calls (`Describe*`, `*.get`, ARM `GET`).
    Read,
    /// Mutating calls that create or change resources.
    Write,
    /// Calls that delete or terminate resources.
    Delete,
    /// Polling of long-running operations or of instance state.
    Poll,
}

impl ApiClass {
    /// All classes, in a fixed order.
    pub const ALL: [ApiClass; 4] = [
        ApiClass::Read,
        ApiClass::Write,
        ApiClass::Delete,
        ApiClass::Poll,
    ];

    /// A short stable name (`"read"`, `"write"`, `"delete"`, `"poll"`), used in
    /// metrics labels, spans and config field paths.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiClass::Read => "read",
            ApiClass::Write => "write",
            ApiClass::Delete => "delete",
            ApiClass::Poll => "poll",
        }
    }

    /// The class implied by an HTTP method alone: `GET`/`HEAD` read,
    /// `DELETE` delete, anything else write.
    pub fn from_method(method: &Method) -> ApiClass {
        if method == Method::GET || method == Method::HEAD {
            ApiClass::Read
        } else if method == Method::DELETE {
            ApiClass::Delete
        } else {
            ApiClass::Write
        }
    }
}

impl fmt::Display for ApiClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which quota a request draws on: provider, account (AWS account,
/// Azure subscription or GCP project), region and [`ApiClass`].
///
/// Cheap to clone (one reference count: every layer of the stack clones the
/// key of every request) and cheap to hash (the hash is computed once, in
/// [`Key::new`], and every per-key map of the transport uses it as is
/// instead of running SipHash over three strings on each lookup: five such
/// lookups per call were the single largest CPU cost of the stack).
#[derive(Clone)]
pub struct Key(Arc<KeyInner>);

struct KeyInner {
    provider: Arc<str>,
    account: Arc<str>,
    region: Arc<str>,
    class: ApiClass,
    /// FNV-1a over the fields, see [`Key::new`].
    hash: u64,
}

impl Key {
    /// A key for `provider` (`"aws"`, `"azure"`, `"gcp"`, ...), `account`,
    /// `region` (empty for global APIs) and `class`.
    pub fn new(
        provider: impl Into<Arc<str>>,
        account: impl Into<Arc<str>>,
        region: impl Into<Arc<str>>,
        class: ApiClass,
    ) -> Self {
        Key::from_parts(provider.into(), account.into(), region.into(), class)
    }

    fn from_parts(
        provider: Arc<str>,
        account: Arc<str>,
        region: Arc<str>,
        class: ApiClass,
    ) -> Self {
        // FNV-1a: a few instructions per byte, and keys are short. Each
        // field is followed by a 0xff byte (never in UTF-8) so that
        // ("ab", "c") and ("a", "bc") hash apart.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |bytes: &[u8]| {
            for b in bytes.iter().chain(std::iter::once(&0xff)) {
                h ^= u64::from(*b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
        };
        eat(provider.as_bytes());
        eat(account.as_bytes());
        eat(region.as_bytes());
        eat(&[class as u8]);
        Key(Arc::new(KeyInner {
            provider,
            account,
            region,
            class,
            hash: h,
        }))
    }

    /// The key used for a request that carries none: provider `"unkeyed"`,
    /// class from the method.
    pub fn unkeyed(method: &Method) -> Self {
        Key::new("unkeyed", "", "", ApiClass::from_method(method))
    }

    /// The same account and region with another class.
    pub fn with_class(&self, class: ApiClass) -> Self {
        if class == self.0.class {
            return self.clone();
        }
        let k = &self.0;
        Key::from_parts(
            k.provider.clone(),
            k.account.clone(),
            k.region.clone(),
            class,
        )
    }

    /// The provider name.
    pub fn provider(&self) -> &str {
        &self.0.provider
    }

    /// The account, subscription or project.
    pub fn account(&self) -> &str {
        &self.0.account
    }

    /// The region (empty for global APIs).
    pub fn region(&self) -> &str {
        &self.0.region
    }

    /// The API class.
    pub fn class(&self) -> ApiClass {
        self.0.class
    }

    /// The shared strings (provider, account, region), for cheap labels.
    pub(crate) fn shared_parts(&self) -> [&Arc<str>; 3] {
        [&self.0.provider, &self.0.account, &self.0.region]
    }

    fn fields(&self) -> (&str, &str, &str, ApiClass) {
        (self.provider(), self.account(), self.region(), self.class())
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("provider", &self.provider())
            .field("account", &self.account())
            .field("region", &self.region())
            .field("class", &self.class())
            .finish()
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
            || (self.0.hash == other.0.hash && self.fields() == other.fields())
    }
}

impl Eq for Key {}

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.0.hash);
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Key) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    /// Provider, account, region, then class (the field order).
    fn cmp(&self, other: &Key) -> std::cmp::Ordering {
        self.fields().cmp(&other.fields())
    }
}

/// A hasher for maps keyed by [`Key`]: passes the key's precomputed hash
/// through (FNV-mixing anything else written to it).
#[derive(Default, Clone, Copy)]
pub(crate) struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
}

/// A `HashMap` keyed by [`Key`] hashing with [`KeyHasher`].
pub(crate) type KeyMap<V> =
    std::collections::HashMap<Key, V, std::hash::BuildHasherDefault<KeyHasher>>;

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}/{}",
            self.0.provider, self.0.account, self.0.region, self.0.class
        )
    }
}

/// The name of the API operation (`RunInstances`, `virtualMachines.get`), for
/// tracing, metrics and per-operation limits. A request extension.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OperationName(pub Cow<'static, str>);

impl OperationName {
    /// The operation name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Marks a request as safe to repeat (it carries an idempotency token such as
/// EC2's `ClientToken` or GCE's `requestId`), so timeouts and 5xx answers may
/// be retried even though its method is `POST`. A request extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Idempotent;

/// The attempt number (1 for the first) of a request inside the retry loop.
/// Set by the retry layer; read by the layers below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt(pub u32);

/// Setters and getters for the transport's request extensions.
///
/// ```
/// use bytes::Bytes;
/// use skyfleet_core::transport::{ApiClass, Key, RequestExt};
/// let req = http::Request::get("https://ec2.us-east-1.amazonaws.com/")
///     .body(Bytes::new())
///     .unwrap()
///     .with_key(Key::new("aws", "123456789012", "us-east-1", ApiClass::Read))
///     .with_operation("DescribeInstances");
/// assert_eq!(req.transport_key().class(), ApiClass::Read);
/// assert_eq!(req.operation(), "DescribeInstances");
/// ```
pub trait RequestExt: Sized {
    /// Attaches the quota key.
    fn with_key(self, key: Key) -> Self;
    /// Attaches the operation name.
    fn with_operation(self, name: impl Into<Cow<'static, str>>) -> Self;
    /// Marks the request idempotent (see [`Idempotent`]).
    fn idempotent(self) -> Self;
    /// The attached key, or [`Key::unkeyed`] for the method.
    fn transport_key(&self) -> Key;
    /// The attached operation name, or `""`.
    fn operation(&self) -> &str;
    /// The attempt number set by the retry layer (1 when none).
    fn attempt(&self) -> u32;
}

impl<B> RequestExt for Request<B> {
    fn with_key(mut self, key: Key) -> Self {
        self.extensions_mut().insert(key);
        self
    }

    fn with_operation(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.extensions_mut().insert(OperationName(name.into()));
        self
    }

    fn idempotent(mut self) -> Self {
        self.extensions_mut().insert(Idempotent);
        self
    }

    fn transport_key(&self) -> Key {
        match self.extensions().get::<Key>() {
            Some(k) => k.clone(),
            None => Key::unkeyed(self.method()),
        }
    }

    fn operation(&self) -> &str {
        self.extensions()
            .get::<OperationName>()
            .map(OperationName::as_str)
            .unwrap_or("")
    }

    fn attempt(&self) -> u32 {
        self.extensions().get::<Attempt>().map(|a| a.0).unwrap_or(1)
    }
}

/// Whether a request may be repeated without risk of doing its work twice:
/// its method is idempotent (`GET`, `HEAD`, `PUT`, `DELETE`, `OPTIONS`), it is
/// marked [`Idempotent`], or it carries a recognised idempotency token (an
/// `Idempotency-Key` header, GCE's `requestId` query parameter, EC2's
/// `ClientToken` form field).
pub fn is_idempotent<B: AsRef<[u8]>>(req: &Request<B>) -> bool {
    let m = req.method();
    if m == Method::GET
        || m == Method::HEAD
        || m == Method::PUT
        || m == Method::DELETE
        || m == Method::OPTIONS
        || req.extensions().get::<Idempotent>().is_some()
        || req.headers().contains_key("idempotency-key")
    {
        return true;
    }
    if let Some(q) = req.uri().query() {
        if q.split('&').any(|p| p.starts_with("requestId=")) {
            return true;
        }
    }
    let body = req.body().as_ref();
    form_has_field(body, b"ClientToken=")
}

fn form_has_field(body: &[u8], field: &[u8]) -> bool {
    body.split(|b| *b == b'&').any(|p| p.starts_with(field))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn unkeyed_request_gets_class_from_method() {
        let req = Request::delete("http://x/").body(Bytes::new()).unwrap();
        assert_eq!(req.transport_key().class(), ApiClass::Delete);
        assert_eq!(req.transport_key().provider(), "unkeyed");
        assert_eq!(req.attempt(), 1);
    }

    #[test]
    fn idempotency_detection() {
        let post = |body: &'static str, uri: &str| {
            Request::post(uri)
                .body(Bytes::from_static(body.as_bytes()))
                .unwrap()
        };
        assert!(!is_idempotent(&post("Action=RunInstances", "http://x/")));
        assert!(is_idempotent(&post(
            "Action=RunInstances&ClientToken=abc",
            "http://x/"
        )));
        assert!(is_idempotent(&post("{}", "http://x/i?requestId=1")));
        assert!(is_idempotent(&post("{}", "http://x/").idempotent()));
        assert!(is_idempotent(
            &Request::get("http://x/").body(Bytes::new()).unwrap()
        ));
    }
}
