//! The extractors: [`ReceiptForm`] (a form or JSON body whose
//! receipt fields are verified on demand, beside the app's other fields),
//! and [`Receipt`] / [`Receipts`] (the body holds receipts only, under the
//! field and constraints a [`ReceiptPolicy`] names). All take their
//! [`ReceiptVerifier`] from the app state with `FromRef`, and refuse with
//! a [`ReceiptRejection`].

use crate::rejection::ReceiptRejection;
use crate::verify::{Constraints, ReceiptVerifier, VerifiedReceipt};
use axum::extract::{FromRef, FromRequest, Request};
use axum::http::{StatusCode, header};
use std::marker::PhantomData;

/// The largest body the extractors read: receipts are about 1 KiB each.
pub const MAX_BODY: usize = 256 * 1024;

/// Which field a receipt route reads and what it demands, as a type:
/// `Receipt<Avatar>` with `impl ReceiptPolicy for Avatar`.
pub trait ReceiptPolicy: Send + Sync + 'static {
    /// The field; `None` uses the verifier's ([`crate::DEFAULT_FIELD`]
    /// unless configured).
    const FIELD: Option<&'static str> = None;

    /// What the receipt must meet beyond the verifier's own constraints.
    fn constraints() -> Constraints {
        Constraints::new()
    }
}

/// Any valid receipt in the verifier's field.
#[derive(Debug, Clone, Copy, Default)]
pub struct AnyReceipt;

impl ReceiptPolicy for AnyReceipt {}

/// A body's fields (urlencoded form or a flat JSON object), with the
/// verifier to check receipt fields on demand. Use it when a form carries
/// receipts beside other fields:
/// `form.receipt("avatar", &Constraints::new().types(["image/*"]))`.
#[derive(Debug, Clone)]
pub struct ReceiptForm {
    fields: Vec<(String, String)>,
    verifier: ReceiptVerifier,
}

impl ReceiptForm {
    /// The first value of `name`.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, in order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The single receipt in `name`, verified and checked against
    /// `constraints`; `None` when the field is absent or empty.
    pub fn receipt(
        &self,
        name: &str,
        constraints: &Constraints,
    ) -> Result<Option<VerifiedReceipt>, ReceiptRejection> {
        let mut all = self.receipts(name, constraints)?;
        match all.len() {
            0 => Ok(None),
            1 => Ok(all.pop()),
            n => Err(ReceiptRejection::too_many(name, n).with_format(self.verifier.format())),
        }
    }

    /// Every receipt in `name` (none is fine), each verified and checked;
    /// one bad receipt refuses them all.
    pub fn receipts(
        &self,
        name: &str,
        constraints: &Constraints,
    ) -> Result<Vec<VerifiedReceipt>, ReceiptRejection> {
        self.all(name)
            .filter(|v| !v.trim().is_empty())
            .map(|token| self.verifier.verify(name, token, constraints))
            .collect()
    }

    /// The verifier in use.
    pub fn verifier(&self) -> &ReceiptVerifier {
        &self.verifier
    }
}

impl<S> FromRequest<S> for ReceiptForm
where
    S: Send + Sync,
    ReceiptVerifier: FromRef<S>,
{
    type Rejection = ReceiptRejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, ReceiptRejection> {
        let verifier = ReceiptVerifier::from_ref(state);
        let format = verifier.format();
        let fields = read_fields(req).await.map_err(|r| r.with_format(format))?;
        Ok(Self { fields, verifier })
    }
}

/// One verified receipt from the body's field named by `P` (the
/// verifier's field, `receipt`, for [`AnyReceipt`]); exactly one is
/// required.
#[derive(Debug, Clone)]
pub struct Receipt<P: ReceiptPolicy = AnyReceipt>(pub VerifiedReceipt, PhantomData<P>);

impl<P: ReceiptPolicy> Receipt<P> {
    /// The verified receipt.
    pub fn into_inner(self) -> VerifiedReceipt {
        self.0
    }
}

impl<P: ReceiptPolicy> std::ops::Deref for Receipt<P> {
    type Target = VerifiedReceipt;

    fn deref(&self) -> &VerifiedReceipt {
        &self.0
    }
}

impl<S, P> FromRequest<S> for Receipt<P>
where
    S: Send + Sync,
    P: ReceiptPolicy,
    ReceiptVerifier: FromRef<S>,
{
    type Rejection = ReceiptRejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, ReceiptRejection> {
        let form = ReceiptForm::from_request(req, state).await?;
        let field = P::FIELD.unwrap_or(form.verifier.field_name()).to_owned();
        match form.receipt(&field, &P::constraints())? {
            Some(r) => Ok(Self(r, PhantomData)),
            None => Err(ReceiptRejection::missing(&field).with_format(form.verifier.format())),
        }
    }
}

/// Every verified receipt in the body's field named by `P` (a repeated
/// form field or a JSON array); at least one is required.
#[derive(Debug, Clone)]
pub struct Receipts<P: ReceiptPolicy = AnyReceipt>(pub Vec<VerifiedReceipt>, PhantomData<P>);

impl<P: ReceiptPolicy> Receipts<P> {
    /// The verified receipts.
    pub fn into_inner(self) -> Vec<VerifiedReceipt> {
        self.0
    }
}

impl<P: ReceiptPolicy> std::ops::Deref for Receipts<P> {
    type Target = [VerifiedReceipt];

    fn deref(&self) -> &[VerifiedReceipt] {
        &self.0
    }
}

impl<S, P> FromRequest<S> for Receipts<P>
where
    S: Send + Sync,
    P: ReceiptPolicy,
    ReceiptVerifier: FromRef<S>,
{
    type Rejection = ReceiptRejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, ReceiptRejection> {
        let form = ReceiptForm::from_request(req, state).await?;
        let field = P::FIELD.unwrap_or(form.verifier.field_name()).to_owned();
        let all = form.receipts(&field, &P::constraints())?;
        if all.is_empty() {
            return Err(ReceiptRejection::missing(&field).with_format(form.verifier.format()));
        }
        Ok(Self(all, PhantomData))
    }
}

/// The body as `(name, value)` pairs: a urlencoded form as is; a JSON
/// object's scalars, and arrays of them as repeated fields.
async fn read_fields(req: Request) -> Result<Vec<(String, String)>, ReceiptRejection> {
    let raw_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let content_type = essence(&raw_type);
    let body = axum::body::to_bytes(req.into_body(), MAX_BODY)
        .await
        .map_err(|e| {
            if is_too_long(&e) {
                ReceiptRejection::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!(
                        "the body is larger than {MAX_BODY} bytes; a form of receipts is a few KiB \
                         (were the files themselves sent?)"
                    ),
                )
            } else {
                ReceiptRejection::new(
                    StatusCode::BAD_REQUEST,
                    "bad_form",
                    format!("cannot read the body: {e}"),
                )
            }
        })?;
    let bad = |e: &dyn std::fmt::Display| {
        ReceiptRejection::new(
            StatusCode::BAD_REQUEST,
            "bad_form",
            format!("cannot parse the body: {e}"),
        )
    };
    match content_type.as_str() {
        "application/x-www-form-urlencoded" => serde_urlencoded::from_bytes(&body).map_err(|e| bad(&e)),
        "multipart/form-data" => multipart_fields(&raw_type, body).await,
        "application/json" => {
            let body: serde_json::Map<String, serde_json::Value> =
                serde_json::from_slice(&body).map_err(|e| bad(&e))?;
            let mut fields = Vec::new();
            for (name, value) in body {
                match value {
                    serde_json::Value::Array(items) => {
                        for item in items {
                            fields.extend(json_field(&name, item)?);
                        }
                    }
                    value => fields.extend(json_field(&name, value)?),
                }
            }
            Ok(fields)
        }
        other => Err(ReceiptRejection::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "receipts come in a form (urlencoded or multipart) or a JSON object, not {:?}",
                if other.is_empty() {
                    "a body without Content-Type"
                } else {
                    other
                }
            ),
        )),
    }
}

/// A media type without its parameters, lowercased: `text/html`.
pub(crate) fn essence(media_type: &str) -> String {
    media_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// A JSON value as a field: strings as they are, numbers and booleans as
/// their text, `null` as no field. An object or a nested array is
/// refused rather than skipped: "one bad receipt refuses them all" must
/// hold for JSON arrays too.
fn json_field(name: &str, value: serde_json::Value) -> Result<Option<(String, String)>, ReceiptRejection> {
    use serde_json::Value;
    let text = match value {
        Value::Null => return Ok(None),
        Value::String(s) => s,
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Array(_) | Value::Object(_) => {
            return Err(ReceiptRejection::new(
                StatusCode::BAD_REQUEST,
                "bad_form",
                format!(
                    "field {name:?} holds a JSON object or nested array; fields are strings \
                     (an array of strings for several receipts)"
                ),
            ));
        }
    };
    Ok(Some((name.to_owned(), text)))
}

/// Whether reading a body failed on the size limit (not on the connection).
fn is_too_long(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = err.source();
    }
    false
}

/// A multipart form's text fields. A file part means the widget did not
/// run (the browser sent the file itself): refused, since the bytes were
/// meant for the store, not the app.
async fn multipart_fields(
    content_type: &str,
    body: bytes::Bytes,
) -> Result<Vec<(String, String)>, ReceiptRejection> {
    let bad = |e: &dyn std::fmt::Display| {
        ReceiptRejection::new(
            StatusCode::BAD_REQUEST,
            "bad_form",
            format!("cannot parse the form: {e}"),
        )
    };
    let boundary = multer::parse_boundary(content_type).map_err(|e| bad(&e))?;
    let body = futures::stream::once(async move { Ok::<_, std::convert::Infallible>(body) });
    let mut form = multer::Multipart::new(body, boundary);
    let mut fields = Vec::new();
    while let Some(field) = form.next_field().await.map_err(|e| bad(&e))? {
        let name = field.name().unwrap_or_default().to_owned();
        if field.file_name().is_some_and(|f| !f.is_empty()) {
            return Err(ReceiptRejection::new(
                StatusCode::BAD_REQUEST,
                "file_in_form",
                format!(
                    "field {name:?} holds a file, not a receipt: the upload widget did not run \
                     (is JavaScript on, and /chute.js loaded?)"
                ),
            ));
        }
        let value = field.text().await.map_err(|e| bad(&e))?;
        fields.push((name, value));
    }
    Ok(fields)
}
