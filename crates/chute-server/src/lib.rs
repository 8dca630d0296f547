//! Chute's HTTP server: configuration ([`config`]), the upload lifecycle
//! ([`lifecycle`]) and its HTTP API ([`api`]), grant sources ([`grants`]),
//! image derivatives ([`derivatives`]), lifecycle events ([`hooks`]) and their signed HTTP delivery
//! ([`webhooks`]), expiry ([`reaper`]), tus 1.0 at `/files/` ([`tus`]),
//! the app router ([`app()`]), and
//! [`serve`], which opens the store, binds the app and S3 listeners and
//! shuts both down gracefully.
//!
//! `app(state)` is the composition root of the app listener: tests build
//! it directly and call it with `oneshot`. The embedded S3 endpoint comes
//! from `chute-s3`; storage from `chute-store`.

pub mod api;
mod app;
pub mod check;
pub mod companion;
pub mod config;
mod credentials;
mod demo;
pub mod derivatives;
mod embed;
pub mod grants;
pub mod hooks;
pub mod lifecycle;
pub mod openapi;
pub mod pace;
pub mod reaper;
mod serve;
pub mod stream;
pub mod tus;
pub mod webhooks;
pub mod widget;

pub use app::{AppState, Origins, api_with, app, app_with, is_loopback_origin};
pub use config::StoreCredentials;
pub use config::{Config, ConfigError, Mode, RawConfig};
pub use embed::{Embedded, embed};
pub use serve::{ServeError, Server, open_lifecycle, reap_options, serve, shutdown_signal};
