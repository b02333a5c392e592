//! EC2 error codes and SDK failures as skyfleet [`Error`]s.
//!
//! A caller acts on the kind: try another launch config on
//! [`ErrorKind::CapacityOrQuota`] (no capacity for the type in the zone,
//! instance or vCPU limit, spot limit), back off on
//! [`ErrorKind::Throttled`] (`RequestLimitExceeded`), fix credentials on the
//! auth kinds, fix the launch config on [`ErrorKind::InvalidConfig`] (which
//! names the field the code points at). EC2's code and message are kept.
//! A response the SDK could not parse becomes an `Internal` error with code
//! `MalformedResponse`, never a panic.

use std::error::Error as StdError;

use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use skyfleet_core::{Error, ErrorKind};

/// The kind EC2 error `code` maps to, if the code is one skyfleet knows
/// (`SomethingNew` maps to none).
pub fn kind_for_code(code: &str) -> Option<ErrorKind> {
    // Instance state reasons are `Server.InsufficientInstanceCapacity`,
    // `Client.InstanceInitiatedShutdown`, ...: classify on the last part.
    let bare = code
        .strip_prefix("Server.")
        .or_else(|| code.strip_prefix("Client."))
        .unwrap_or(code);
    let field = |f: &str| {
        Some(ErrorKind::InvalidConfig {
            field: format!("launch.{f}"),
        })
    };
    match bare {
        "InsufficientInstanceCapacity"
        | "InsufficientCapacity"
        | "InsufficientHostCapacity"
        | "InsufficientReservedInstanceCapacity"
        | "InsufficientAddressCapacity"
        | "InsufficientFreeAddressesInSubnet"
        | "InstanceLimitExceeded"
        | "VcpuLimitExceeded"
        | "MaxSpotInstanceCountExceeded"
        | "SpotMaxPriceTooLow"
        | "InsufficientCapacityOnHost"
        | "ReservationCapacityExceeded"
        | "Unsupported" => Some(ErrorKind::CapacityOrQuota),
        "RequestLimitExceeded"
        | "Throttling"
        | "ThrottlingException"
        | "RequestThrottled"
        | "RequestThrottledException"
        | "EC2ThrottledException"
        | "TooManyRequestsException"
        | "SlowDown" => Some(ErrorKind::Throttled { retry_after: None }),
        "AuthFailure"
        | "AuthFailure.ServiceLinkedRoleCreationNotPermitted"
        | "SignatureDoesNotMatch"
        | "MissingAuthenticationToken"
        | "InvalidClientTokenId"
        | "ExpiredToken"
        | "RequestExpired"
        | "IncompleteSignature" => Some(ErrorKind::Unauthenticated),
        "UnauthorizedOperation"
        | "AccessDenied"
        | "AccessDeniedException"
        | "OptInRequired"
        | "Blocked"
        | "PendingVerification" => Some(ErrorKind::PermissionDenied),
        "InvalidInstanceID.NotFound" | "IdempotentInstanceTerminated" => Some(ErrorKind::NotFound),
        "IdempotentParameterMismatch" => Some(ErrorKind::AlreadyExists),
        "InternalError"
        | "InternalFailure"
        | "Unavailable"
        | "ServiceUnavailable"
        | "RequestTimeout"
        | "RequestTimeoutException"
        | "InternalError.Unavailable" => Some(ErrorKind::Transient),
        c if c.starts_with("InvalidAMIID.") => field("ImageId"),
        c if c.starts_with("InvalidSubnetID.") || c.starts_with("InvalidSubnet") => {
            field("SubnetId")
        }
        c if c.starts_with("InvalidGroup.") || c.starts_with("InvalidSecurityGroupID") => {
            field("SecurityGroupIds")
        }
        c if c.starts_with("InvalidKeyPair.") => field("KeyName"),
        "InvalidBlockDeviceMapping" | "InvalidSnapshot.NotFound" => field("BlockDeviceMappings"),
        "InvalidAvailabilityZone" => field("Placement.AvailabilityZone"),
        "InvalidInstanceType" => field("InstanceType"),
        "InvalidUserData.Malformed" => field("workerConfig"),
        "InvalidParameterValue"
        | "InvalidParameterCombination"
        | "InvalidParameter"
        | "MissingParameter"
        | "UnknownParameter"
        | "InvalidInput"
        | "TagLimitExceeded"
        | "InvalidTagKey.Malformed" => Some(ErrorKind::InvalidConfig {
            field: "launch".into(),
        }),
        _ => None,
    }
}

fn kind_for_status(status: u16) -> ErrorKind {
    match status {
        401 => ErrorKind::Unauthenticated,
        403 => ErrorKind::PermissionDenied,
        404 => ErrorKind::NotFound,
        429 => ErrorKind::Throttled { retry_after: None },
        500..=599 if status != 501 => ErrorKind::Transient,
        _ => ErrorKind::OperationFailed,
    }
}

/// The first error of type `T` in `err`'s source chain (itself included).
fn find_source<'a, T: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(t) = e.downcast_ref::<T>() {
            return Some(t);
        }
        cur = e.source();
    }
    None
}

fn chain_text(err: &(dyn StdError + 'static)) -> String {
    let mut parts = Vec::new();
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        let s = e.to_string();
        if parts.last() != Some(&s) {
            parts.push(s);
        }
        cur = e.source();
    }
    parts.join(": ")
}

/// Classifies a failed aws-sdk-ec2 call of `operation`.
pub fn classify<E>(operation: &str, err: &SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    let e = match err {
        SdkError::ServiceError(se) => {
            let raw = se.raw();
            let status = raw.status().as_u16();
            if (200..300).contains(&status) {
                // A success status whose body the SDK could not read.
                return Error::new(
                    ErrorKind::Internal,
                    format!(
                        "{operation}: malformed response (HTTP {status}): {}",
                        chain_text(err)
                    ),
                )
                .with_code("MalformedResponse")
                .with_provider("aws");
            }
            let code = se.err().code().unwrap_or("").to_string();
            let message = se.err().message().unwrap_or("").to_string();
            let mut kind = kind_for_code(&code).unwrap_or_else(|| kind_for_status(status));
            if let ErrorKind::Throttled { retry_after } = &mut kind {
                let mut headers = http::HeaderMap::new();
                for (k, v) in raw.headers() {
                    if let (Ok(k), Ok(v)) = (
                        http::HeaderName::from_bytes(k.as_bytes()),
                        http::HeaderValue::from_str(v),
                    ) {
                        headers.append(k, v);
                    }
                }
                *retry_after = skyfleet_core::transport::retry_after(&headers);
            }
            let text = if message.is_empty() {
                format!("{operation}: HTTP {status} {code}")
            } else {
                format!("{operation}: {message}")
            };
            let e = Error::new(kind, text);
            if code.is_empty() {
                e
            } else {
                e.with_code(code)
            }
        }
        SdkError::TimeoutError(_) => Error::new(
            ErrorKind::Timeout,
            format!("{operation}: timed out: {}", chain_text(err)),
        ),
        SdkError::DispatchFailure(df) => {
            // The transport's own classification, when the connector kept it.
            if let Some(inner) = find_source::<Error>(err) {
                let mut e = Error::new(
                    inner.kind().clone(),
                    format!("{operation}: {}", inner.message()),
                );
                if let Some(c) = inner.code() {
                    e = e.with_code(c);
                }
                e
            } else if df.is_timeout() {
                Error::new(
                    ErrorKind::Timeout,
                    format!("{operation}: timed out: {}", chain_text(err)),
                )
            } else {
                Error::new(
                    ErrorKind::Transient,
                    format!("{operation}: request not delivered: {}", chain_text(err)),
                )
            }
        }
        SdkError::ResponseError(re) => Error::new(
            ErrorKind::Internal,
            format!(
                "{operation}: malformed response (HTTP {}): {}",
                re.raw().status().as_u16(),
                chain_text(err)
            ),
        )
        .with_code("MalformedResponse"),
        SdkError::ConstructionFailure(_) => {
            let text = chain_text(err);
            let kind =
                if find_source::<aws_credential_types::provider::error::CredentialsError>(err)
                    .is_some()
                    || text.contains("credentials")
                {
                    ErrorKind::Unauthenticated
                } else {
                    ErrorKind::Internal
                };
            Error::new(
                kind,
                format!("{operation}: request could not be built: {text}"),
            )
        }
        _ => Error::new(
            ErrorKind::Internal,
            format!("{operation}: {}", chain_text(err)),
        ),
    };
    e.with_provider("aws")
}

/// The error of an answer the SDK parsed but that lacks what skyfleet needs
/// (an instance id, a state).
pub fn malformed(operation: &str, what: &str) -> Error {
    Error::new(
        ErrorKind::Internal,
        format!("{operation}: malformed response: {what}"),
    )
    .with_code("MalformedResponse")
    .with_provider("aws")
}

#[cfg(test)]
mod tests {
    use super::*;
    use skyfleet_core::offering::CapacityClass;

    /// Every capacity and quota code of issue #17, with its class.
    #[test]
    fn capacity_codes_are_classified_with_their_class() {
        for (code, class) in [
            ("InsufficientInstanceCapacity", CapacityClass::Capacity),
            (
                "Server.InsufficientInstanceCapacity",
                CapacityClass::Capacity,
            ),
            ("MaxSpotInstanceCountExceeded", CapacityClass::Capacity),
            ("InsufficientFreeAddressesInSubnet", CapacityClass::Capacity),
            ("SpotMaxPriceTooLow", CapacityClass::Capacity),
            ("VcpuLimitExceeded", CapacityClass::Quota),
            ("InstanceLimitExceeded", CapacityClass::Quota),
        ] {
            assert_eq!(
                kind_for_code(code),
                Some(ErrorKind::CapacityOrQuota),
                "{code}"
            );
            let bare = code.strip_prefix("Server.").unwrap_or(code);
            assert_eq!(CapacityClass::of_code(Some(bare)), class, "{code}");
        }
        assert_eq!(kind_for_code("Server.SpotInstanceTermination"), None);
    }

    #[test]
    fn codes_map_to_kinds() {
        for c in [
            "InsufficientInstanceCapacity",
            "InstanceLimitExceeded",
            "VcpuLimitExceeded",
            "MaxSpotInstanceCountExceeded",
            "Server.InsufficientInstanceCapacity",
        ] {
            assert_eq!(kind_for_code(c), Some(ErrorKind::CapacityOrQuota), "{c}");
        }
        assert_eq!(kind_for_code("SomethingNew"), None);
        assert_eq!(
            kind_for_code("RequestLimitExceeded"),
            Some(ErrorKind::Throttled { retry_after: None })
        );
        assert_eq!(
            kind_for_code("AuthFailure"),
            Some(ErrorKind::Unauthenticated)
        );
        assert_eq!(
            kind_for_code("UnauthorizedOperation"),
            Some(ErrorKind::PermissionDenied)
        );
        assert_eq!(
            kind_for_code("InvalidAMIID.NotFound"),
            Some(ErrorKind::InvalidConfig {
                field: "launch.ImageId".into()
            })
        );
        assert_eq!(kind_for_status(503), ErrorKind::Transient);
        assert_eq!(kind_for_status(400), ErrorKind::OperationFailed);
    }
}
