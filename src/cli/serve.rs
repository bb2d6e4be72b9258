//! `callscribe serve`: the gRPC server for telephony systems, until SIGTERM or Ctrl-C.

use super::flags::{LanguageFlags, ModelFlags};
use crate::config::{default_max_streams, worker_layout, Config};
use crate::engine::Engine;
use crate::forward::Forwarder;
use crate::runtime::{self, Workers};
use crate::server::{self, ServeSettings};
use anyhow::Context;
use clap::Args;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// gRPC listen address (port 0 picks a free port; the first stdout line names it).
    #[arg(long)]
    pub listen: Option<String>,
    // The default model, for calls that name none, and its precision.
    #[command(flatten)]
    pub model: ModelFlags,
    /// Further models to load, selectable per call (repeat or comma-separate).
    #[arg(long = "also-load", value_delimiter = ',')]
    pub also_load: Vec<String>,
    // The default language and hotwords of every call.
    #[command(flatten)]
    pub language: LanguageFlags,
    /// Inference workers (0 = auto).
    #[arg(long)]
    pub workers: Option<usize>,
    /// whisper threads per worker (0 = auto).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Concurrent calls before RESOURCE_EXHAUSTED (0 = auto).
    #[arg(long)]
    pub max_streams: Option<usize>,
    /// Prometheus /metrics listen address, e.g. 127.0.0.1:9464.
    #[arg(long)]
    pub metrics_listen: Option<String>,
    /// On SIGTERM/Ctrl-C, seconds to let the calls in flight end on their own before
    /// finalising them (server.drain_timeout_secs; 0 = finalise at once).
    #[arg(long = "drain-timeout", value_name = "SECS")]
    pub drain_timeout_secs: Option<u64>,
}

impl ServeArgs {
    pub fn run(
        self,
        mut config: Config,
        config_path: Option<std::path::PathBuf>,
    ) -> anyhow::Result<ExitCode> {
        if let Some(l) = self.listen {
            config.server.listen = l;
        }
        self.model.apply(&mut config);
        config.server.models.extend(self.also_load);
        self.language.apply(&mut config);
        if let Some(w) = self.workers {
            config.server.workers = w;
        }
        if let Some(t) = self.threads {
            config.decode.threads = t;
        }
        if let Some(m) = self.max_streams {
            config.server.max_streams = m;
        }
        if let Some(m) = self.metrics_listen {
            config.server.metrics_listen = Some(m);
        }
        if let Some(d) = self.drain_timeout_secs {
            config.server.drain_timeout_secs = d;
        }
        config.server.validate().map_err(anyhow::Error::msg)?;

        let dialects = super::load_dialects(&config)?;
        // Resolve (and pull, if allowed) every model before binding, so a typo fails at once.
        // A deployment that lists its adapters (`dialects.load`) gets their models loaded,
        // once per distinct model; otherwise adapters run on the call's model.
        let mut names = vec![config.models.default.clone()];
        let adapter_models = if config.dialects.load.is_empty() {
            Default::default()
        } else {
            dialects.models()
        };
        for m in config.server.models.iter().chain(&adapter_models) {
            if !names.contains(m) {
                names.push(m.clone());
            }
        }
        let models = names
            .iter()
            .map(|n| super::resolve_model(&config, Some(n)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let (workers, threads) = worker_layout(config.server.workers, config.decode.threads);
        let max_streams = if config.server.max_streams > 0 {
            config.server.max_streams
        } else {
            default_max_streams(workers, threads)
        };
        let settings = ServeSettings {
            server: config.server.clone(),
            vad: super::resolve_vad(&config)?,
            decode: config.decode.clone(),
            workers,
            threads,
            max_streams,
            dialects,
            tenants: std::sync::Arc::new(
                crate::server::auth::Tenants::new(&config.tenants)
                    .context("the [[tenants]] tables")?,
            ),
        };
        let loader: server::ModelLoader = Box::new(move || {
            models
                .iter()
                .map(|(name, path)| Engine::load(name, path).map_err(|e| e.to_string()))
                .collect()
        });

        let runtime = runtime::build(Workers::PerCore).context("starting the async runtime")?;
        runtime.block_on(async move {
            let forwarder =
                Forwarder::start_for_calls(&config.forward).context("starting the forwarder")?;
            let mut handle =
                server::start_with_forwarder(settings, loader, forwarder.clone()).await?;
            handle.ready().await?;
            // Scripts and tests read the address from here: print it only once serving.
            println!("listening on {}", handle.addr);
            if let Some(m) = handle.metrics_addr {
                let tls = config.server.tls.as_ref().is_some_and(|t| t.metrics);
                let scheme = if tls { "https" } else { "http" };
                println!("metrics on {scheme}://{m}/metrics");
            }
            use std::io::Write;
            std::io::stdout().flush().ok();
            #[cfg(unix)]
            reload_on_sighup(&handle, config_path, config.clone());
            let mut stop = runtime::StopRequests::listen();
            stop.recv().await;
            let drain = std::time::Duration::from_secs(config.server.drain_timeout_secs);
            if !drain.is_zero() {
                handle.drain();
                eprintln!(
                    "draining: no new calls; waiting up to {}s for {} in flight (signal again to stop now)",
                    drain.as_secs(),
                    handle.calls_in_flight()
                );
                tokio::select! {
                    () = handle.drained() => {}
                    () = tokio::time::sleep(drain) => {}
                    () = stop.recv() => {}
                }
            }
            eprintln!("shutting down: finalising open calls");
            handle.shutdown();
            handle.stopped().await?;
            if let Some(f) = forwarder {
                // Undelivered segments stay in the spool for the next start.
                f.shutdown().await;
            }
            Ok::<_, anyhow::Error>(())
        })?;
        Ok(ExitCode::SUCCESS)
    }
}

/// SIGHUP re-reads the config file's `[dialects]` section and the adapter profiles, its
/// `[[tenants]]` (a key no longer listed is revoked) and the TLS files, and swaps in each
/// that is valid; live calls keep the adapter they started with and run on. A broken part
/// leaves its running set in place and is logged with its file and field; the other parts
/// still reload. TLS file *paths* are read at start only.
#[cfg(unix)]
fn reload_on_sighup(
    handle: &server::ServerHandle,
    config_path: Option<std::path::PathBuf>,
    running: Config,
) {
    let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot listen for SIGHUP: {e}");
            return;
        }
    };
    let reloader = handle.reloader();
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            match reloader.reload_tls() {
                Ok(crate::server::tls::Reloaded::Replaced) => eprintln!("reloaded TLS certificate"),
                Ok(crate::server::tls::Reloaded::Unchanged) => {}
                Err(e) => eprintln!("TLS reload failed, keeping the running certificate: {e}"),
            }
            let fresh = match Config::load(config_path.as_deref()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("reload failed, keeping the running adapters and tenants: {e}");
                    continue;
                }
            };
            // Validated by Config::load.
            match crate::server::auth::Tenants::new(&fresh.tenants) {
                Ok(t) => {
                    let n = t.ids().count();
                    reloader.reload_tenants(t);
                    eprintln!("reloaded {n} tenants");
                }
                Err(e) => eprintln!("reload failed, keeping the running tenants: {e}"),
            }
            let fresh = Config {
                dialects: fresh.dialects,
                ..running.clone()
            };
            let result =
                crate::dialect::Dialects::load(&fresh.dialects, &super::model_resolver(&fresh))
                    .map_err(|e| e.to_string().replace('\n', "; "))
                    .and_then(|d| reloader.reload(d));
            match result {
                Ok(()) => eprintln!("reloaded dialect adapters"),
                Err(e) => eprintln!("reload failed, keeping the running adapters: {e}"),
            }
        }
    });
}
