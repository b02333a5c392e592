//! [`paginate`]: drive a paged listing (EC2 `NextToken`, ARM `nextLink`,
//! GCE `pageToken`) to its end, with one runaway cap for every cloud.
//!
//! An endpoint that keeps answering with a next cursor (a bug, a mock, a
//! listing that grows faster than it is read) must not hold a step forever:
//! after [`MAX_PAGES`] pages the listing is an error that names the cap.

use std::future::Future;

use crate::error::{Error, Result};

/// The most pages one listing may take. Far above any real listing (10,000
/// pages of 500 to 1,000 items each), low enough to end a loop in minutes.
pub const MAX_PAGES: usize = 10_000;

/// One page of a listing: its items and the cursor of the next page (a
/// token, or a URL), `None` on the last page.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T, C = String> {
    /// The items of this page.
    pub items: Vec<T>,
    /// The cursor of the next page; `None` (or empty, for the caller to map
    /// to `None`) ends the listing.
    pub next: Option<C>,
}

impl<T, C> Page<T, C> {
    /// The last page, holding `items`.
    pub fn last(items: Vec<T>) -> Self {
        Page { items, next: None }
    }
}

/// Fetches every page of `operation`: `fetch(None)` for the first, then
/// `fetch(Some(cursor))` with each page's `next` until a page has none.
/// More than [`MAX_PAGES`] pages is an [`ErrorKind::Internal`] error with
/// code `MAX_PAGES`; a failed fetch ends the listing with its error.
///
/// [`ErrorKind::Internal`]: crate::ErrorKind::Internal
///
/// ```
/// # tokio_test_block(async {
/// use skyfleet_core::provider::support::{paginate, Page};
/// let all = paginate("items.list", |cursor: Option<u32>| async move {
///     let n = cursor.unwrap_or(0);
///     Ok(Page { items: vec![n], next: (n < 2).then_some(n + 1) })
/// })
/// .await
/// .unwrap();
/// assert_eq!(all, vec![0, 1, 2]);
/// # });
/// # fn tokio_test_block(f: impl std::future::Future<Output = ()>) {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
pub async fn paginate<T, C, F, Fut>(operation: &str, fetch: F) -> Result<Vec<T>>
where
    F: FnMut(Option<C>) -> Fut,
    Fut: Future<Output = Result<Page<T, C>>>,
{
    paginate_capped(operation, MAX_PAGES, fetch).await
}

async fn paginate_capped<T, C, F, Fut>(operation: &str, cap: usize, mut fetch: F) -> Result<Vec<T>>
where
    F: FnMut(Option<C>) -> Fut,
    Fut: Future<Output = Result<Page<T, C>>>,
{
    let mut out = Vec::new();
    let mut cursor = None;
    for _ in 0..cap {
        let page = fetch(cursor.take()).await?;
        out.extend(page.items);
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(out),
        }
    }
    Err(Error::internal(format!(
        "{operation}: more than MAX_PAGES ({cap}) pages: the endpoint keeps answering with a next page"
    ))
    .with_code("MAX_PAGES"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[tokio::test]
    async fn follows_cursors_to_the_end() {
        let mut seen = Vec::new();
        let all = paginate("x.list", |c: Option<String>| {
            seen.push(c.clone());
            async move {
                Ok(match c.as_deref() {
                    None => Page {
                        items: vec![1, 2],
                        next: Some("b".to_string()),
                    },
                    Some("b") => Page::last(vec![3]),
                    Some(other) => panic!("unexpected cursor {other}"),
                })
            }
        })
        .await
        .unwrap();
        assert_eq!(all, vec![1, 2, 3]);
        assert_eq!(seen, vec![None, Some("b".to_string())]);
    }

    #[tokio::test]
    async fn a_runaway_listing_is_an_error_naming_the_cap() {
        let mut pages = 0;
        let e = paginate_capped("x.list", 5, |_c: Option<u32>| {
            pages += 1;
            async {
                Ok(Page::<u8, u32> {
                    items: vec![0],
                    next: Some(1),
                })
            }
        })
        .await
        .unwrap_err();
        assert_eq!(pages, 5);
        assert_eq!(e.kind(), &ErrorKind::Internal);
        assert_eq!(e.code(), Some("MAX_PAGES"));
        assert!(e.message().contains("MAX_PAGES (5)"), "{e}");
    }

    #[tokio::test]
    async fn a_failed_page_ends_the_listing() {
        let e = paginate("x.list", |c: Option<u32>| async move {
            match c {
                None => Ok(Page {
                    items: vec![1],
                    next: Some(1),
                }),
                Some(_) => Err(Error::not_found("gone")),
            }
        })
        .await
        .unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::NotFound);
    }
}
