//! The bucket's CORS rule for browser uploads: installed once when the
//! bucket has none, so the origins Chute allows on its API may also send
//! bytes to the store. A bucket that already has rules keeps them: they
//! are the operator's.

use super::S3Store;
use super::client::{Body, Request};
use crate::{StoreError, StoreResult};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use md5::{Digest as _, Md5};
use reqwest::Method;

/// What [`S3Store::ensure_cors`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CorsOutcome {
    /// The bucket had no CORS configuration; Chute's rule is installed.
    Installed,
    /// The bucket already has a CORS configuration; left as it is.
    Kept,
}

impl S3Store {
    /// Installs a CORS rule allowing `origins` (S3 patterns such as
    /// `https://app.example.com` or `http://localhost:*`) to GET, PUT,
    /// POST and HEAD with any header, exposing `ETag` and `Location`,
    /// unless the bucket already has a CORS configuration.
    pub async fn ensure_cors(&self, origins: &[String]) -> StoreResult<CorsOutcome> {
        if origins.is_empty() {
            return Ok(CorsOutcome::Kept);
        }
        if self.put_subresource_if_absent("cors", cors_xml(origins)).await? {
            Ok(CorsOutcome::Installed)
        } else {
            Ok(CorsOutcome::Kept)
        }
    }

    /// Writes a bucket subresource (`?cors`, `?lifecycle`) unless the
    /// bucket has one (S3 answers 404 when it has none). Returns whether
    /// it wrote. S3 wants these bodies with a Content-MD5.
    pub(super) async fn put_subresource_if_absent(&self, name: &str, body: String) -> StoreResult<bool> {
        let get = Request::new(Method::GET, None).query(name, "");
        match self.inner.client.send(get).await {
            Ok(_) => return Ok(false),
            Err(StoreError::Backend { status: 404, .. }) => {}
            Err(e) => return Err(e),
        }
        let md5 = B64.encode(Md5::digest(body.as_bytes()));
        let put = Request::new(Method::PUT, None)
            .query(name, "")
            .header("content-md5", md5)
            .header("content-type", "application/xml")
            .body(Body::Bytes(bytes::Bytes::from(body)));
        self.inner.client.send(put).await?;
        Ok(true)
    }
}

fn cors_xml(origins: &[String]) -> String {
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <CORSConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><CORSRule>",
    );
    for o in origins {
        xml.push_str("<AllowedOrigin>");
        xml.push_str(&escape(o));
        xml.push_str("</AllowedOrigin>");
    }
    for m in ["GET", "PUT", "POST", "HEAD"] {
        xml.push_str(&format!("<AllowedMethod>{m}</AllowedMethod>"));
    }
    xml.push_str(
        "<AllowedHeader>*</AllowedHeader><ExposeHeader>ETag</ExposeHeader>\
         <ExposeHeader>Location</ExposeHeader><MaxAgeSeconds>600</MaxAgeSeconds>\
         </CORSRule></CORSConfiguration>",
    );
    xml
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_names_every_origin_escaped() {
        let xml = cors_xml(&[
            "https://a.example".into(),
            "http://localhost:*".into(),
            "x<&".into(),
        ]);
        assert!(xml.contains("<AllowedOrigin>https://a.example</AllowedOrigin>"));
        assert!(xml.contains("<AllowedOrigin>http://localhost:*</AllowedOrigin>"));
        assert!(xml.contains("<AllowedOrigin>x&lt;&amp;</AllowedOrigin>"));
        assert!(xml.contains("<ExposeHeader>ETag</ExposeHeader>"));
    }
}
