//! `callscribe kb index|query`: build and try the embedded knowledge base.

use crate::config::Config;
use crate::forward::SinkConfig;
use crate::kb::KnowledgeBase;
use anyhow::Context;
use clap::Subcommand;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Debug, Subcommand)]
pub enum KbCommand {
    /// Index a folder of articles (*.md with +++ TOML front matter, *.jsonl Q/A pairs) into
    /// DIR/.index, reused while the articles are unchanged.
    Index { dir: PathBuf },
    /// Look text up as a final segment would be: best articles first. Exit status 1 when
    /// nothing scores at least the minimum (like grep finding nothing).
    Query {
        text: String,
        /// Folder of articles (default: the `kb` sink's `dir` in the config, else the bundled
        /// sample).
        #[arg(long)]
        kb: Option<PathBuf>,
        /// Articles to show.
        #[arg(short = 'n', long, default_value_t = 3)]
        limit: usize,
        /// Lowest score shown (default: forward.min_score).
        #[arg(long)]
        min_score: Option<f32>,
        /// One JSON object per hit.
        #[arg(long)]
        json: bool,
    },
}

impl KbCommand {
    pub fn run(self, config: Config) -> anyhow::Result<ExitCode> {
        match self {
            KbCommand::Index { dir } => {
                let started = Instant::now();
                let n = KnowledgeBase::build_index(&dir)?;
                eprintln!(
                    "indexed {n} article(s) from {} into {} in {} ms",
                    dir.display(),
                    dir.join(crate::kb::INDEX_DIR).display(),
                    started.elapsed().as_millis()
                );
                Ok(ExitCode::SUCCESS)
            }
            KbCommand::Query {
                text,
                kb,
                limit,
                min_score,
                json,
            } => {
                let dir = kb.or_else(|| {
                    config.forward.sinks.iter().find_map(|s| match s {
                        SinkConfig::Kb { dir } => dir.clone(),
                        _ => None,
                    })
                });
                let kb = match &dir {
                    Some(d) => KnowledgeBase::open(d),
                    None => KnowledgeBase::sample(),
                }
                .context("opening the knowledge base")?;
                let started = Instant::now();
                let hits = kb.query(&text, limit, min_score.unwrap_or(config.forward.min_score))?;
                let took = started.elapsed();
                let mut out = std::io::stdout().lock();
                for (i, h) in hits.iter().enumerate() {
                    if json {
                        writeln!(out, "{}", serde_json::to_string(h)?)?;
                    } else {
                        writeln!(
                            out,
                            "{}. {} ({:.2}) {}\n   {}",
                            i + 1,
                            h.article_id,
                            h.score,
                            h.title,
                            h.snippet
                        )?;
                    }
                }
                out.flush()?;
                eprintln!(
                    "{} hit(s) in {:.2} ms from {} ({} articles)",
                    hits.len(),
                    took.as_secs_f64() * 1000.0,
                    kb.origin,
                    kb.len()
                );
                Ok(if hits.is_empty() {
                    ExitCode::from(1)
                } else {
                    ExitCode::SUCCESS
                })
            }
        }
    }
}
