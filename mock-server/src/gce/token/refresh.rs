//! `grant_type=refresh_token`: a user's refresh token exchanged for an
//! access token, as google-auth's `google.oauth2.credentials.Credentials`
//! sends it (form fields `client_id`, `client_secret`, `refresh_token`,
//! optionally `scope`).
//!
//! Which clients and refresh tokens are valid is `gcp.authorized_users`.
//! Refusals are Google's: an unknown client is 401 `invalid_client` ("The
//! OAuth client was not found."), a wrong client secret 401
//! `invalid_client` ("Unauthorized"), and a missing, unknown or another
//! client's refresh token 400 `invalid_grant` ("Bad Request").

use http::StatusCode;
use subtle::ConstantTimeEq;

use super::{invalid_grant, oauth_error, OAuthError};
use crate::gce::AuthorizedUser;

/// The grant type.
pub(crate) const REFRESH_TOKEN: &str = "refresh_token";

/// The scope reported when the request names none (what `gcloud auth
/// application-default login` asks for).
pub(crate) const DEFAULT_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// Compares secrets in time independent of where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Authenticates the client and checks the refresh token; `Err` is the
/// error response.
pub(super) fn check<'a>(
    users: &[AuthorizedUser],
    field: impl Fn(&str) -> Option<&'a str>,
) -> Result<(), OAuthError> {
    let client_id = field("client_id").unwrap_or("");
    let mut of_client = users.iter().filter(|u| u.client_id == client_id).peekable();
    if client_id.is_empty() || of_client.peek().is_none() {
        return Err(oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "The OAuth client was not found.",
        ));
    }
    let secret = field("client_secret").unwrap_or("");
    let token = field("refresh_token").unwrap_or("");
    let mut secret_ok = false;
    for user in of_client {
        if !same(&user.client_secret, secret) {
            continue;
        }
        secret_ok = true;
        if !token.is_empty() && same(&user.refresh_token, token) {
            return Ok(());
        }
    }
    if !secret_ok {
        return Err(oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Unauthorized",
        ));
    }
    Err(invalid_grant("Bad Request"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| *v)
    }

    #[test]
    fn clients_secrets_and_tokens() {
        let users = vec![AuthorizedUser::default()];
        let u = &users[0];
        let good = [
            ("client_id", u.client_id.as_str()),
            ("client_secret", u.client_secret.as_str()),
            ("refresh_token", u.refresh_token.as_str()),
        ];
        assert!(check(&users, form(&good)).is_ok());
        let e = check(&users, form(&[("client_id", "other")])).unwrap_err();
        assert_eq!((e.status, e.error), (StatusCode::UNAUTHORIZED, "invalid_client"));
        let mut bad_secret = good;
        bad_secret[1].1 = "nope";
        let e = check(&users, form(&bad_secret)).unwrap_err();
        assert_eq!((e.error, e.description.as_str()), ("invalid_client", "Unauthorized"));
        let mut bad_token = good;
        bad_token[2].1 = "";
        let e = check(&users, form(&bad_token)).unwrap_err();
        assert_eq!((e.status, e.error), (StatusCode::BAD_REQUEST, "invalid_grant"));
    }
}
