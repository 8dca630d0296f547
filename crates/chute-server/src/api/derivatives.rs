//! `GET /api/objects/{receipt}/derivatives`: the status of an upload's
//! image derivatives (pending, ready or failed), each with its key, size,
//! dimensions and, when ready, a presigned GET URL on the store the
//! browser talks to (the embedded S3 listener or the S3 backend's public
//! endpoint, signed the same way as upload URLs). The receipt is the
//! capability: whoever holds it may read the status; the URLs come only
//! where `image_status_urls` allows (development mode by default), since
//! in production a receipt is not read access (see `demo.rs`) and the app
//! reads derivatives at their keys as it reads originals.

use crate::app::AppState;
use crate::derivatives::manifest::{Entry, Status};
use crate::lifecycle::ApiError;
use axum::Json;
use axum::extract::{Path, State};
use chute_core::{DeriveOn, ObjectKey};
use serde::Serialize;
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// The answer of the status route.
#[derive(Debug, Clone, Serialize)]
pub struct DerivativesStatus {
    /// The upload id.
    pub upload_id: String,
    /// When the derivatives are made.
    pub derive_on: DeriveOn,
    /// The derivatives by name (empty when the upload is not an image or
    /// the grant names none).
    pub derivatives: BTreeMap<String, DerivativeStatus>,
}

/// One derivative's status.
#[derive(Debug, Clone, Serialize)]
pub struct DerivativeStatus {
    /// Spec, key, type, status, size, dimensions, error.
    #[serde(flatten)]
    pub entry: Entry,
    /// A presigned GET URL, when ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

pub(super) async fn derivatives(
    State(state): State<AppState>,
    Path(receipt): Path<String>,
) -> Result<Json<DerivativesStatus>, ApiError> {
    let lifecycle = &state.lifecycle;
    let claims = lifecycle.verify_receipt(&receipt)?;
    let service = lifecycle.derivatives();
    let manifest = service
        .status(&claims)
        .await
        .map_err(|e| ApiError::store("reading the derivatives' status", &e))?;
    let entries: BTreeMap<String, Entry> = match manifest {
        Some(m) => m.derivatives,
        None => claims
            .derivatives
            .iter()
            .map(|(name, key)| {
                let planned = service.plan(&claims.jti, &claims.grant).remove(name);
                let entry = Entry {
                    spec: planned.as_ref().map(|p| p.raw.clone()).unwrap_or_default(),
                    key: key.clone(),
                    content_type: planned.map_or("", |p| p.format.content_type()).to_owned(),
                    status: Status::Pending,
                    size: None,
                    width: None,
                    height: None,
                    error: None,
                };
                (name.clone(), entry)
            })
            .collect(),
    };
    let now = OffsetDateTime::now_utc();
    let ttl = lifecycle.settings().presign_ttl;
    let derivatives = entries
        .into_iter()
        .map(|(name, entry)| {
            let url = match (entry.status, ObjectKey::parse(&entry.key)) {
                (Status::Ready, Ok(key)) if service.settings().status_urls => {
                    lifecycle.signer().get(&key, ttl, now).ok().map(|s| s.url)
                }
                _ => None,
            };
            (name, DerivativeStatus { entry, url })
        })
        .collect();
    Ok(Json(DerivativesStatus {
        upload_id: claims.jti.clone(),
        derive_on: claims.grant.derive_on,
        derivatives,
    }))
}
