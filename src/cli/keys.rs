//! `callscribe keys new --tenant ID`: a new API key, shown once, and the configuration that
//! enables it (its hash only: the server never stores a key).

use crate::config::Config;
use crate::server::auth::{key_hash, new_key, valid_id};
use clap::Subcommand;
use std::io::Write;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Print a new random API key once, then the TOML that enables it on a server.
    New {
        /// The tenant the key is for (letters, digits, '.', '_', '-').
        #[arg(long)]
        tenant: String,
        /// The tenant's concurrent-call quota, for a new tenant's table.
        #[arg(long, default_value_t = 4)]
        max_concurrent_calls: usize,
    },
}

impl KeysCommand {
    pub fn run(self, config: Config) -> anyhow::Result<ExitCode> {
        match self {
            KeysCommand::New {
                tenant,
                max_concurrent_calls,
            } => {
                if !valid_id(&tenant) {
                    anyhow::bail!(
                        "--tenant {tenant:?}: use 1 to 64 letters, digits, '.', '_' or '-'"
                    );
                }
                if max_concurrent_calls == 0 {
                    anyhow::bail!("--max-concurrent-calls must be at least 1");
                }
                let key = new_key()?;
                let hash = key_hash(&key);
                let mut out = std::io::stdout().lock();
                writeln!(out, "{key}")?;
                writeln!(out)?;
                if config.tenants.iter().any(|t| t.id == tenant) {
                    // A second table with the same id would be refused: extend the first.
                    writeln!(
                        out,
                        "# Tenant '{tenant}' is already configured: add this hash to its key_hashes,\n\
                         # then reload the server (kill -HUP) or restart it.\n\"{hash}\""
                    )?;
                } else {
                    writeln!(
                        out,
                        "# Tenant '{tenant}': append to the server's config file, then reload the\n\
                         # server (kill -HUP) or restart it. Only the key's hash is stored; the key\n\
                         # above is shown this once.\n\
                         [[tenants]]\n\
                         id = \"{tenant}\"\n\
                         key_hashes = [\"{hash}\"]\n\
                         max_concurrent_calls = {max_concurrent_calls}\n\
                         # new_calls_per_minute = 60\n\
                         # models = [\"base\"]\n\
                         # dialects = [\"putonghua\", \"cantonese\"]"
                    )?;
                }
                eprintln!(
                    "The key is on the first line: give it to tenant '{tenant}' now; it cannot be \
                     shown again. Clients send it as `authorization: Bearer <key>` or `x-api-key`."
                );
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}
