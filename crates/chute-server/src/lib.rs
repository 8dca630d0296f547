//! Chute's HTTP server: configuration ([`config`]), the app router
//! ([`app()`]), and [`serve`], which opens the store, binds the app and S3
//! listeners and shuts both down gracefully.
//!
//! `app(state)` is the composition root of the app listener: tests build
//! it directly and call it with `oneshot`. The embedded S3 endpoint comes
//! from `chute-s3`; storage from `chute-store`.

mod app;
pub mod config;
mod credentials;
mod serve;

pub use app::{AppState, app};
pub use config::StoreCredentials;
pub use config::{Config, ConfigError, Mode, RawConfig};
pub use serve::{ServeError, Server, serve, shutdown_signal};
