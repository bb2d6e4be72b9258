//! `callscribe dialects list|show ID|check [--dir DIR]`: the adapters a deployment offers.
//! `check` validates every profile and that each adapter's model is installed or pullable and
//! has the adapter's language token (`yue` needs a large-v3-family vocabulary).

use crate::config::Config;
use crate::dialect::{self, DialectError, Dialects};
use crate::model::{self, Catalogue, ModelStore};
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, Subcommand)]
pub enum DialectsCommand {
    /// The adapters loaded with this configuration, and the region routes.
    List,
    /// One adapter's full profile.
    Show { id: String },
    /// Validate every profile in a folder (default: the configured `dialects.dir`, else the
    /// built-in set); each error names its file and field.
    Check {
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

/// Whether a model name resolves: the catalogue or the local store (imported fine-tunes).
pub fn model_resolver(config: &Config) -> impl Fn(&str) -> bool {
    let catalogue = Catalogue::builtin().ok();
    let store = ModelStore::locate(config.models.dir.as_deref());
    move |name: &str| {
        catalogue.as_ref().is_some_and(|c| c.get(name).is_ok()) || store.installed(name).is_some()
    }
}

/// Why a model cannot decode a language token (`None`: it can, or the model is unknown, which
/// the profile check reports on its own): read off the installed file's vocabulary, or the
/// catalogue's for a model still to be pulled.
pub fn language_checker(config: &Config) -> impl Fn(&str, &str) -> Option<String> {
    let catalogue = Catalogue::builtin().ok();
    let store = ModelStore::locate(config.models.dir.as_deref());
    move |model: &str, language: &str| {
        let n_vocab = model::languages::model_n_vocab(&store, catalogue.as_ref()?, model)?;
        model::languages::language_problem(n_vocab, language)
    }
}

/// The deployment's adapters, as `transcribe` and `serve` use them.
pub fn load_dialects(config: &Config) -> anyhow::Result<Arc<Dialects>> {
    Ok(Arc::new(Dialects::load(
        &config.dialects,
        &model_resolver(config),
    )?))
}

impl DialectsCommand {
    pub fn run(self, config: Config) -> anyhow::Result<ExitCode> {
        match self {
            DialectsCommand::List => {
                let d = load_dialects(&config)?;
                println!(
                    "{:<11} {:<8} {:<7} {:<5} name",
                    "id", "version", "model", "lang"
                );
                for a in d.list() {
                    let p = &a.profile;
                    println!(
                        "{:<11} {:<8} {:<7} {:<5} {}",
                        p.id, p.version, p.model.name, p.model.language, p.name
                    );
                }
                let cfg = d.config();
                println!(
                    "\ndefault: {} · identification: {} · {} region routes",
                    cfg.default,
                    if cfg.detect { "on" } else { "off" },
                    d.routes().len()
                );
                Ok(ExitCode::SUCCESS)
            }
            DialectsCommand::Show { id } => {
                let d = load_dialects(&config)?;
                let a = d.get(&id)?;
                println!("# {}", a.origin);
                print!("{}", toml::to_string_pretty(&a.profile)?);
                let routes: Vec<&str> = d
                    .routes()
                    .entries()
                    .filter(|(_, to)| *to == a.id())
                    .map(|(k, _)| k)
                    .collect();
                println!("\n# routed here: {}", routes.join(", "));
                Ok(ExitCode::SUCCESS)
            }
            DialectsCommand::Check { dir } => {
                let known = model_resolver(&config);
                let languages = language_checker(&config);
                let result = match dir.or(config.dialects.dir.clone()) {
                    Some(dir) => dialect::check_dir_languages(&dir, &known, &languages)
                        .map(|n| (n, dir.display().to_string())),
                    None => Dialects::load(&config.dialects, &known).and_then(|d| {
                        d.check_languages(&languages)?;
                        Ok((d.list().count(), "built-in adapters".to_owned()))
                    }),
                };
                match result {
                    Ok((n, what)) => {
                        println!("{what}: {n} profile(s) OK");
                        Ok(ExitCode::SUCCESS)
                    }
                    Err(DialectError::Many(errors)) => {
                        for e in &errors.0 {
                            eprintln!("error: {e}");
                        }
                        Ok(ExitCode::FAILURE)
                    }
                    Err(e) => Err(e.into()),
                }
            }
        }
    }
}
