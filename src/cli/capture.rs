//! `callscribe capture`: transcribe a call from the sound card, live, on the agent's machine,
//! or send it to a `callscribe serve` with `--server`. Ctrl-C ends the call: the open
//! utterance is finalised, the recording closed and a summary printed.
//!
//! The command parses its flags, loads the model, opens the device and prints; the loop
//! between the device's ring and the call is the library's (`capture::session`).

use super::client;
use super::flags::{ConnectFlags, DialectFlags, LanguageFlags, ModelFlags};
use super::printer::{Printer, StreamFormat};
use crate::audio::codec::Encoding;
use crate::audio::Role;
use crate::capture::session::{self, CaptureSummary, LocalCall, SEND_QUEUE};
use crate::capture::{self, Capture, CaptureRequest, Recorder, SampleKind};
use crate::config::{worker_layout, Config};
use crate::engine::Pool;
use crate::forward::Forwarder;
use crate::plan::{CallPlan, CallRequest};
use crate::runtime::{self, Workers};
use crate::stream::{AcceptedCall, CallDriver, CallFormat, DriverSetup, LiveRequest};
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Inference jobs queued for one captured call. A sound card cannot be slowed down, so
/// finals are never refused for being many; this bounds the queue at minutes of speech.
const INFERENCE_QUEUE: usize = 256;

#[derive(Debug, Args)]
pub struct CaptureArgs {
    /// List input devices (name, default configuration, what they support) and exit.
    #[arg(long)]
    pub list_devices: bool,
    /// Input device (its name from --list-devices); default: the system's default input.
    #[arg(long)]
    pub device: Option<String>,
    /// Channels to capture (1 or 2); default: the device's.
    #[arg(long)]
    pub channels: Option<u16>,
    /// Sample rate in Hz; default: the device's. Only rates the device offers natively.
    #[arg(long)]
    pub rate: Option<u32>,
    /// Sample format; default: the device's (i16, u16 or f32).
    #[arg(long, value_enum)]
    pub sample_format: Option<SampleKind>,
    /// Role of each channel, e.g. agent,customer; default: mixed (mono), agent,customer (stereo).
    #[arg(long, value_delimiter = ',')]
    pub roles: Vec<String>,
    // Sent on with --server, as are --model and --language.
    #[command(flatten)]
    pub dialect: DialectFlags,
    /// Write exactly what was captured to this WAV file.
    #[arg(long)]
    pub record: Option<PathBuf>,
    /// Send the audio to a `callscribe serve` (host:port or URL) instead of transcribing here.
    #[arg(long)]
    pub server: Option<String>,
    // With --server: TLS, mutual TLS and the API key for a secure server.
    #[command(flatten)]
    pub connect: ConnectFlags,
    #[command(flatten)]
    pub model: ModelFlags,
    #[command(flatten)]
    pub language: LanguageFlags,
    /// No interim results, finals only.
    #[arg(long)]
    pub no_interim: bool,
    /// Call id (default: capture-<device>).
    #[arg(long)]
    pub call_id: Option<String>,
    /// How much audio the ring buffer holds, in milliseconds, before overruns lose frames.
    #[arg(long, default_value_t = 4000)]
    pub buffer_ms: u32,
    #[arg(long, value_enum, default_value = "text")]
    pub format: StreamFormat,
}

fn parse_role(s: &str) -> anyhow::Result<Role> {
    match s.trim().to_ascii_lowercase().as_str() {
        "agent" => Ok(Role::Agent),
        "customer" => Ok(Role::Customer),
        "mixed" => Ok(Role::Mixed),
        other => anyhow::bail!("--roles: '{other}' is not a role (agent, customer, mixed)"),
    }
}

impl CaptureArgs {
    pub fn run(self, mut config: Config) -> anyhow::Result<ExitCode> {
        self.model.apply(&mut config);
        self.language.apply(&mut config);
        if self.list_devices {
            return list_devices(self.format);
        }
        if self.server.is_some() && !self.language.hotwords.is_empty() {
            anyhow::bail!("--hotwords apply to a call transcribed here; a server uses its own");
        }
        if self.server.is_none() && self.connect.tls_given() {
            anyhow::bail!("--tls-ca, --tls-cert and --tls-key apply with --server");
        }
        let (name, device) = capture::find_input(self.device.as_deref())?;
        let request = CaptureRequest {
            channels: self.channels,
            sample_rate_hz: self.rate,
            sample: self.sample_format,
            buffer_ms: self.buffer_ms,
        };
        let roles = self.roles()?;
        let runtime = runtime::build(Workers::One).context("starting the async runtime")?;
        if let Some(server) = &self.server {
            let server = client::Connection::new(server, &self.connect)?;
            // Nothing to load: start capturing at once.
            let capture = Capture::start(&name, &device, &request)?;
            let format = self.call_format(&capture, roles)?;
            runtime.block_on(self.remote(capture, format, server))?;
        } else {
            let local = self.load(&config)?;
            // The model is loaded before the device starts, so no audio waits on it.
            let capture = Capture::start(&name, &device, &request)?;
            let format = self.call_format(&capture, roles)?;
            runtime.block_on(self.local(capture, format, &config, &local))?;
        }
        Ok(ExitCode::SUCCESS)
    }

    fn roles(&self) -> anyhow::Result<Option<Vec<Role>>> {
        if self.roles.is_empty() {
            return Ok(None);
        }
        self.roles
            .iter()
            .map(|r| parse_role(r))
            .collect::<anyhow::Result<Vec<_>>>()
            .map(Some)
    }

    fn call_format(
        &self,
        capture: &Capture,
        roles: Option<Vec<Role>>,
    ) -> anyhow::Result<CallFormat> {
        let f = capture.format();
        let channels = f.channels as usize;
        let roles = match roles {
            Some(r) if r.len() != channels => anyhow::bail!(
                "--roles names {} role(s) for {channels} captured channel(s); give one per channel",
                r.len()
            ),
            Some(r) => r,
            None if channels == 1 => vec![Role::Mixed],
            None => vec![Role::Agent, Role::Customer],
        };
        let format = CallFormat {
            // Samples reach the pipeline decoded; the encoding matters only on the wire.
            encoding: Encoding::Linear16,
            sample_rate_hz: f.sample_rate_hz,
            roles,
        };
        format
            .validate()
            .with_context(|| format!("capturing from '{}'", capture.device()))?;
        eprintln!(
            "capturing from '{}': {} Hz, {} channel(s), {}{}; Ctrl-C ends the call",
            capture.device(),
            f.sample_rate_hz,
            f.channels,
            f.sample.as_str(),
            self.dialect
                .dialect
                .as_deref()
                .map(|d| format!(", dialect {d}"))
                .unwrap_or_default()
        );
        Ok(format)
    }

    fn call_id(&self, capture: &Capture) -> String {
        self.call_id
            .clone()
            .unwrap_or_else(|| format!("capture-{}", capture.device()))
    }

    fn load(&self, config: &Config) -> anyhow::Result<LocalModel> {
        let request = CallRequest {
            // A live call needs finals within real time: fitted windows, as `serve` uses.
            fit_window: config.server.fit_window,
            ..self.dialect.request(&self.model)
        };
        let models = super::OnDemand::new(config);
        let plan = CallPlan::resolve(
            &request,
            &config.decode,
            Some(super::load_dialects(config)?),
            &models,
        )?;
        let (workers, threads) = worker_layout(config.server.workers, config.decode.threads);
        let pool = Pool::start(
            vec![models.into_engine()?],
            workers,
            threads,
            INFERENCE_QUEUE,
        )?;
        Ok(LocalModel {
            vad: super::resolve_vad(config)?,
            pool,
            plan,
        })
    }

    /// Transcribes here: the same call driver as a gRPC call, fed from the ring.
    async fn local(
        &self,
        mut capture: Capture,
        format: CallFormat,
        config: &Config,
        model: &LocalModel,
    ) -> anyhow::Result<()> {
        let call_id = self.call_id(&capture);
        let setup = DriverSetup {
            call_id: call_id.clone(),
            format,
            vad: model.vad.clone(),
            interim_every_ms: if self.no_interim {
                0
            } else {
                config.server.interim_interval_ms
            },
            model: 0,
            plan: model.plan.clone(),
        };
        let mut recorder = self.recorder(&capture)?;
        let driver = CallDriver::new(&model.pool, setup)?;
        let format = driver.live().format();
        // As a server accepts it: the adapter actually selected (empty until identified).
        let accepted = AcceptedCall {
            call_id: call_id.clone(),
            sample_rate_hz: format.sample_rate_hz,
            channel_count: format.roles.len() as u32,
            language: self.language.language.clone().unwrap_or_default(),
            model: self.model.model.clone().unwrap_or_default(),
            dialect: model.plan.adapter_id().to_owned(),
            region: self.dialect.region.clone().unwrap_or_default(),
        };
        let call = LocalCall {
            driver,
            accepted,
            forwarder: Forwarder::start_for_calls(&config.forward)
                .context("starting the forwarder")?,
            flush_timeout: Duration::from_millis(config.forward.flush_timeout_ms),
        };
        let mut printer = Printer::new(self.format);
        session::transcribe(
            &mut capture,
            recorder.as_mut(),
            call,
            runtime::shutdown_signal(),
            &mut |report| printer.print(&call_id, report),
        )
        .await?;
        self.finish(capture, recorder)
    }

    /// Sends the captured audio to a server as a live call (LINEAR16 on the wire).
    async fn remote(
        &self,
        mut capture: Capture,
        format: CallFormat,
        server: client::Connection,
    ) -> anyhow::Result<()> {
        let request = LiveRequest {
            call_id: Some(self.call_id(&capture)),
            format,
            choices: CallRequest {
                model: self.model.model.clone(),
                language: self.language.language.clone(),
                dialect: self.dialect.dialect.clone(),
                region: self.dialect.region.clone(),
                ..CallRequest::default()
            },
            interim: !self.no_interim,
            endpoint_silence_ms: None,
            started_at_unix_ms: None,
        };
        let mut recorder = self.recorder(&capture)?;
        let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(SEND_QUEUE);
        let format_out = self.format;
        let call = tokio::spawn(async move {
            let mut out = Printer::new(format_out);
            let audio = tokio_stream::wrappers::ReceiverStream::new(rx);
            client::stream_call(&server, &request, audio, &mut out).await
        });
        let ended = session::send(
            &mut capture,
            recorder.as_mut(),
            runtime::shutdown_signal(),
            tx,
            call,
        )
        .await?;
        let finished = self.finish(capture, recorder);
        ended.context("the call's session task failed")??;
        finished
    }

    fn recorder(&self, capture: &Capture) -> anyhow::Result<Option<Recorder>> {
        self.record
            .as_deref()
            .map(|p| Recorder::create(p, capture.format()))
            .transpose()
            .map_err(Into::into)
    }

    /// Closes the recording and prints what the device did.
    fn finish(&self, capture: Capture, recorder: Option<Recorder>) -> anyhow::Result<()> {
        let CaptureSummary {
            device,
            format: f,
            captured_secs: secs,
            overruns,
            overrun_frames: lost,
            device_errors: errors,
            recording: recorded,
        } = session::finish(capture, recorder)?;
        if self.format == StreamFormat::Json {
            let v = serde_json::json!({"capture_summary": {
                "device": device, "sample_rate_hz": f.sample_rate_hz,
                "channels": f.channels, "sample_format": f.sample.as_str(),
                "captured_ms": (secs * 1000.0).round() as u64, "overruns": overruns,
                "overrun_frames": lost, "device_errors": errors,
                "recording": recorded.as_ref().map(|p| p.display().to_string())}});
            println!("{v}");
        } else {
            eprintln!(
                "capture '{device}': {secs:.1} s captured, {overruns} overrun(s) ({lost} frame(s) lost), {errors} device error(s){}",
                recorded
                    .as_ref()
                    .map(|p| format!(", recorded to {}", p.display()))
                    .unwrap_or_default()
            );
        }
        Ok(())
    }
}

struct LocalModel {
    pool: Pool,
    plan: CallPlan,
    vad: crate::segment::Vad,
}

fn list_devices(format: StreamFormat) -> anyhow::Result<ExitCode> {
    let devices = capture::list_inputs()?;
    for d in &devices {
        if format == StreamFormat::Json {
            let v = serde_json::json!({
                "name": d.name, "description": d.description,
                "default": d.default.map(|(c, r, f)| serde_json::json!({
                    "channels": c, "sample_rate_hz": r, "sample_format": f.to_string()})),
                "supported": d.supported.iter().map(|(c, lo, hi, f)| serde_json::json!({
                    "channels": c, "min_sample_rate_hz": lo, "max_sample_rate_hz": hi,
                    "sample_format": f.to_string()})).collect::<Vec<_>>()});
            println!("{v}");
            continue;
        }
        println!("{}  ({})", d.name, d.description);
        match d.default {
            Some((c, r, f)) => println!("  default: {c} ch, {r} Hz, {f}"),
            None => println!("  default: (cannot be opened now)"),
        }
        for line in supported_lines(&d.supported) {
            println!("  supports: {line}");
        }
    }
    if devices.is_empty() {
        eprintln!("no input devices");
    }
    Ok(ExitCode::SUCCESS)
}

/// One line per sample format and rate range, with the channel counts folded into a range:
/// ALSA plugin devices accept any of 64 channel counts at every format.
fn supported_lines(supported: &[(u16, u32, u32, cpal::SampleFormat)]) -> Vec<String> {
    let mut groups: Vec<(cpal::SampleFormat, u32, u32, u16, u16)> = Vec::new();
    for &(c, lo, hi, f) in supported {
        match groups
            .iter_mut()
            .find(|g| g.0 == f && g.1 == lo && g.2 == hi)
        {
            Some(g) => {
                g.3 = g.3.min(c);
                g.4 = g.4.max(c);
            }
            None => groups.push((f, lo, hi, c, c)),
        }
    }
    groups
        .into_iter()
        .map(|(f, lo, hi, cmin, cmax)| {
            let ch = if cmin == cmax {
                format!("{cmin} ch")
            } else {
                format!("{cmin}–{cmax} ch")
            };
            let rate = if lo == hi {
                format!("{lo} Hz")
            } else {
                format!("{lo}–{hi} Hz")
            };
            format!("{f}, {ch}, {rate}")
        })
        .collect()
}
