//! ListObjectsV2 shaped into the Store's listing rule
//! ([`crate::conformance::model_list`]): keys and common prefixes merged
//! in order, nothing at or before `start_after` (S3 may repeat a common
//! prefix that `start_after` falls inside), and the last entry of a full
//! page as the next `start_after`. More S3 pages are read until the page
//! is full or the listing ends.

use super::S3Store;
use super::client::{Request, unquote};
use super::xml::{self, ListBucketResult, timestamp};
use crate::{ListOptions, ListResult, ObjectMeta, StoreResult};
use chute_core::ObjectKey;
use reqwest::Method;

/// One listing entry: an object, or a common prefix (`None`).
type Entry = (String, Option<xml::ListEntry>);

impl S3Store {
    pub(super) async fn list_objects(&self, opts: &ListOptions) -> StoreResult<ListResult> {
        let max = match opts.max_keys {
            0 => 1000,
            n => n.min(1000),
        };
        let start_after = opts.start_after.as_deref();
        let delimiter = opts.delimiter.as_deref().filter(|d| !d.is_empty());
        let mut entries: Vec<Entry> = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut req = Request::new(Method::GET, None)
                .query("list-type", "2")
                .query("prefix", opts.prefix.clone())
                .query("max-keys", (max + 1).min(1000).to_string());
            if let Some(d) = delimiter {
                req = req.query("delimiter", d);
            }
            match (&token, start_after) {
                (Some(t), _) => req = req.query("continuation-token", t.clone()),
                (None, Some(sa)) if !sa.is_empty() => req = req.query("start-after", sa),
                _ => {}
            }
            let ctx = Request::new(Method::GET, None);
            let resp = self.client().send(req).await?;
            let page: ListBucketResult = self.client().read_xml(resp, &ctx, "ListObjectsV2").await?;
            let mut merged: Vec<Entry> = page
                .contents
                .into_iter()
                .map(|c| (c.key.clone(), Some(c)))
                .chain(page.common_prefixes.into_iter().map(|p| (p.prefix, None)))
                .collect();
            merged.sort_by(|a, b| a.0.cmp(&b.0));
            for entry in merged {
                let repeated = entry.1.is_none() && entries.last().is_some_and(|(last, _)| *last == entry.0);
                if start_after.is_some_and(|sa| entry.0.as_str() <= sa) || repeated {
                    continue;
                }
                entries.push(entry);
            }
            match page.next_continuation_token {
                Some(t) if page.is_truncated && entries.len() <= max && token.as_ref() != Some(&t) => {
                    token = Some(t);
                }
                _ => break,
            }
        }
        let next_start_after = (entries.len() > max).then(|| entries[max - 1].0.clone());
        entries.truncate(max);
        let mut result = ListResult {
            next_start_after,
            ..ListResult::default()
        };
        for (name, object) in entries {
            match object {
                None => result.common_prefixes.push(name),
                // Keys Chute could not have written are left out.
                Some(o) => {
                    if let Ok(key) = ObjectKey::parse(&o.key) {
                        result.objects.push(ObjectMeta {
                            key,
                            size: o.size,
                            parts_count: super::headers::parts_count(&unquote(&o.etag)),
                            etag: unquote(&o.etag),
                            last_modified: timestamp(&o.last_modified),
                            headers: Default::default(),
                            metadata: Default::default(),
                            checksum: None,
                        });
                    }
                }
            }
        }
        Ok(result)
    }
}
