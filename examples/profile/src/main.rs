//! The profile example: an axum app with Chute embedded. Settings come
//! from the environment (see README.md); `main` only wires them up.

mod app;
mod pages;
mod state;

use chute_axum::ChuteBuilder;
use chute_server::RawConfig;
use std::net::SocketAddr;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let listen: SocketAddr = std::env::var("PROFILE_LISTEN")
        .unwrap_or_else(|_| "127.0.0.1:3000".into())
        .parse()
        .map_err(|e| format!("PROFILE_LISTEN is not an address like 127.0.0.1:3000: {e}"))?;
    let chute = ChuteBuilder::from_raw(chute_settings()?)?.build().await?;
    let app = app::router(app::AppState::new(chute.clone()));
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen} (PROFILE_LISTEN): {e}"))?;
    println!("Profile app:        http://{}/", listener.local_addr()?);
    if let Some(s3) = chute.s3_addr() {
        println!("Embedded S3 store:  http://{s3}");
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(chute_server::shutdown_signal())
        .await?;
    chute.shutdown().await;
    Ok(())
}

/// Chute's settings: `CHUTE_*` variables, with the example's defaults for
/// what they leave out (a data directory, its own S3 port, a grant secret
/// made up per run, no open grants).
fn chute_settings() -> Result<RawConfig, Box<dyn std::error::Error>> {
    let mut raw = RawConfig::load(None, RawConfig::default())?;
    raw.data_dir.get_or_insert_with(|| "./profile-data".into());
    raw.s3_listen.get_or_insert_with(|| "127.0.0.1:3001".into());
    raw.open_grants.get_or_insert(false);
    if raw.grant_secret.is_none() {
        // Grants and receipts only need to outlive this process.
        let secret = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        raw.grant_secret = Some(format!("profile:{secret}"));
    }
    Ok(raw)
}
