//! The command line: `chute serve` with the flags of DESIGN.md section 7,
//! and `chute gc`.
//! Flags override `CHUTE_*` variables, which override the config file.

use anyhow::Context as _;
use chute_server::{Config, RawConfig};
use std::path::PathBuf;

/// Chute: file uploads straight into S3-compatible storage.
#[derive(Debug, clap::Parser)]
#[command(name = "chute", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Run the upload server and, in development, the embedded S3 store.
    Serve(ServeArgs),
    /// Remove expired uploads once, for cron: abort stale multipart
    /// uploads, delete unpromoted temporary objects and old grant counters.
    Gc(GcArgs),
}

#[derive(Debug, clap::Args)]
struct GcArgs {
    /// A TOML config file; every setting can also come from CHUTE_<NAME>.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where the embedded store keeps its data [default: ./chute-data].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Report what would be removed; remove nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// A TOML config file; every setting can also come from CHUTE_<NAME>.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where the embedded store keeps its data [default: ./chute-data].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// App listener address [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Embedded S3 listener address [default: 127.0.0.1:9000].
    #[arg(long, value_name = "ADDR")]
    s3_listen: Option<String>,
}

impl Cli {
    /// Runs the chosen command.
    pub async fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Serve(args) => {
                let flags = RawConfig {
                    data_dir: args.data_dir,
                    listen: args.listen,
                    s3_listen: args.s3_listen,
                    ..RawConfig::default()
                };
                let raw = RawConfig::load(args.config.as_deref(), flags)?;
                let config = Config::try_from(raw)?;
                chute_server::serve(config, chute_server::shutdown_signal())
                    .await
                    .context("chute serve")
            }
            Command::Gc(args) => {
                let flags = RawConfig {
                    data_dir: args.data_dir,
                    ..RawConfig::default()
                };
                let config = Config::try_from(RawConfig::load(args.config.as_deref(), flags)?)?;
                let report = chute_server::reaper::gc(&config, args.dry_run)
                    .await
                    .context("chute gc")?;
                println!("{report}");
                if report.failed > 0 {
                    anyhow::bail!("{} removal(s) failed; the next run retries them", report.failed);
                }
                Ok(())
            }
        }
    }
}
