//! The command line: `chute serve` with the flags of DESIGN.md section 7,
//! `chute gc`, `chute check` and `chute upload` (its flags live in
//! [`crate::upload`]).
//! Flags override `CHUTE_*` variables, which override the config file.

use anyhow::Context as _;
use chute_server::{Config, Mode, RawConfig};
use std::path::PathBuf;
use std::process::ExitCode;

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
    /// Validate the settings; with --deploy, also list every setting unfit
    /// for production (one line each) and fail if there is any.
    Check(CheckArgs),
    /// Upload files to a Chute server from the terminal (straight to its
    /// store, parts in parallel, resumable), or with --tus to a tus server.
    Upload(crate::upload::UploadArgs),
}

#[derive(Debug, clap::Args)]
struct CheckArgs {
    /// A TOML config file; every setting can also come from CHUTE_<NAME>.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Also refuse settings unfit for production: the embedded store,
    /// generated or example credentials, no grant secret, open grants,
    /// wildcard CORS with cookies, plain-http public URLs.
    #[arg(long)]
    deploy: bool,
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
    /// S3 backend only: give the bucket a lifecycle rule expiring tmp/ in
    /// the store itself (only if it has no lifecycle configuration), then
    /// run the pass.
    #[arg(long)]
    install_lifecycle_rule: bool,
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
    /// Runs the chosen command; `chute upload` picks its own exit codes.
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        match self.command {
            Command::Upload(args) => Ok(crate::upload::run(args).await),
            command => command.run().await.map(|()| ExitCode::SUCCESS),
        }
    }
}

impl Command {
    async fn run(self) -> anyhow::Result<()> {
        match self {
            Command::Upload(_) => Ok(()),
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
                if args.install_lifecycle_rule {
                    use chute_server::reaper::ExpiryRuleOutcome;
                    match chute_server::reaper::install_expiry_rule(&config)
                        .await
                        .context("chute gc")?
                    {
                        ExpiryRuleOutcome::Installed => {
                            println!("installed the bucket lifecycle rule for tmp/")
                        }
                        ExpiryRuleOutcome::Kept => println!(
                            "the bucket already has a lifecycle configuration; left it unchanged \
                             (add a rule for tmp/ to it yourself, see README)"
                        ),
                    }
                }
                let report = chute_server::reaper::gc(&config, args.dry_run)
                    .await
                    .context("chute gc")?;
                println!("{report}");
                if report.failed > 0 {
                    anyhow::bail!("{} removal(s) failed; the next run retries them", report.failed);
                }
                Ok(())
            }
            Command::Check(args) => {
                let raw = RawConfig::load(args.config.as_deref(), RawConfig::default())?;
                let config = Config::try_from(raw)?;
                let mode = match config.mode {
                    Mode::Development => "development",
                    Mode::Production => "production",
                };
                if !args.deploy {
                    println!("ok: the settings are valid ({mode} mode)");
                    return Ok(());
                }
                let problems = chute_server::check::deploy_problems(&config);
                if problems.is_empty() {
                    println!("ok: the settings are fit for production");
                    return Ok(());
                }
                for problem in &problems {
                    println!("{problem}");
                }
                anyhow::bail!("{} setting(s) unfit for production", problems.len())
            }
        }
    }
}
