//! `callscribe capture`: transcribe a call from the sound card, live, on the agent's machine,
//! or send it to a `callscribe serve` with `--server`. Ctrl-C ends the call: the open
//! utterance is finalised, the recording closed and a summary printed.

use super::client::{self, Printer, StreamFormat};
use crate::audio::codec::{self, Encoding};
use crate::audio::Role;
use crate::capture::{self, Capture, CaptureRequest, CaptureStats, Recorder, SampleKind};
use crate::config::{worker_layout, Config};
use crate::engine::Pool;
use crate::forward::Forwarder;
use crate::plan::{CallPlan, CallRequest};
use crate::proto::v1 as pb;
use crate::server::convert::{output_to_proto, set_call_format, summary_to_proto};
use crate::stream::{CallDriver, CallFormat, CallOutput, Completed, DialectOutput, DriverSetup};
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// How often the pipeline drains the ring: a tenth of the default ring, and short enough
/// that speech events reach the screen without a visible lag.
const DRAIN_EVERY: Duration = Duration::from_millis(10);
/// Inference jobs queued for one captured call. A sound card cannot be slowed down, so
/// finals are never refused for being many; this bounds the queue at minutes of speech.
const INFERENCE_QUEUE: usize = 256;
/// Audio messages queued towards `--server` before the capture loop waits on the network
/// (and the ring, not memory, absorbs the delay): 64 × 10 ms.
const SEND_QUEUE: usize = 64;
/// Suggestions waiting to be printed; more are dropped (a late suggestion is worth little).
const SUGGESTION_QUEUE: usize = 64;

type SuggestionTx =
    tokio::sync::mpsc::Sender<Result<pb::StreamingTranscribeResponse, tonic::Status>>;

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
    /// Dialect adapter id (`callscribe dialects list`); default: chosen as a server would
    /// (region, language, then identified from the first speech). Sent on with --server.
    #[arg(long)]
    pub dialect: Option<String>,
    /// The caller's region, city or telephone number, for the dialect routing table.
    #[arg(long)]
    pub region: Option<String>,
    /// Write exactly what was captured to this WAV file.
    #[arg(long)]
    pub record: Option<PathBuf>,
    /// Send the audio to a `callscribe serve` (host:port or URL) instead of transcribing here.
    #[arg(long)]
    pub server: Option<String>,
    /// Model (default: the configured default; the server's with --server).
    #[arg(short, long)]
    pub model: Option<String>,
    /// Precision of a catalogue model's weights (default: `models.weights`, q8_0).
    #[arg(long, value_enum)]
    pub weights: Option<crate::model::Weights>,
    /// Spoken language (en, zh, …) or auto.
    #[arg(short, long)]
    pub language: Option<String>,
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
        if let Some(w) = self.weights {
            config.models.weights = w;
        }
        if self.list_devices {
            return list_devices(self.format);
        }
        let (name, device) = capture::find_input(self.device.as_deref())?;
        let request = CaptureRequest {
            channels: self.channels,
            sample_rate_hz: self.rate,
            sample: self.sample_format,
            buffer_ms: self.buffer_ms,
        };
        let roles = self.roles()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        if let Some(server) = &self.server {
            let server = client::server_url(server);
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
        // A live call needs finals within real time: fitted windows, as `serve` uses.
        let request = CallRequest {
            model: self.model.clone(),
            dialect: self.dialect.clone(),
            region: self.region.clone(),
            language: self.language.clone(),
            hotwords: Vec::new(),
            fit_window: config.server.fit_window,
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
        let mut driver = CallDriver::new(&model.pool, setup)?;
        let mut accepted = self.streaming_config(&call_id, driver.live().format());
        // As a server accepts it: the adapter actually selected (empty until identified).
        accepted.dialect = model.plan.adapter_id().to_owned();
        let (suggestions, mut suggested) = tokio::sync::mpsc::channel(SUGGESTION_QUEUE);
        let mut out = LocalOut {
            printer: Printer::new(self.format),
            call_id: call_id.clone(),
            accepted: accepted.clone(),
            forwarder: start_forwarder(config),
            language: model.plan.language_code().map(str::to_owned),
            suggestions,
        };
        out.send(pb::streaming_transcribe_response::Response::AcceptedConfig(
            accepted,
        ))?;
        out.dialect(driver.take_dialect())?;
        let mut samples = Vec::new();
        let mut outputs: Vec<CallOutput> = Vec::new();
        let mut overruns = OverrunLog::default();
        let mut tick = tokio::time::interval(DRAIN_EVERY);
        let mut interrupted = interrupt();
        loop {
            tokio::select! {
                biased;
                _ = &mut interrupted => break,
                Some(done) = driver.next() => out.completed(done, driver.language())?,
                Some(Ok(s)) = suggested.recv() => out.printer.response(&s)?,
                _ = tick.tick() => {
                    samples.clear();
                    capture.drain(&mut samples);
                    if let Some(r) = recorder.as_mut() {
                        r.write(&samples)?;
                    }
                    driver.push_samples(&samples, &mut outputs)?;
                    for o in outputs.drain(..) {
                        out.output(&o)?;
                    }
                    overruns.check(capture.stats());
                }
            }
        }
        // Ctrl-C: stop the device, take what it already delivered, finalise the open utterance.
        capture.stop();
        samples.clear();
        capture.drain(&mut samples);
        if let Some(r) = recorder.as_mut() {
            r.write(&samples)?;
        }
        driver.push_samples(&samples, &mut outputs)?;
        driver.finish(&mut outputs)?;
        for o in outputs.drain(..) {
            out.output(&o)?;
        }
        while let Some(done) = driver.next().await {
            out.completed(done, driver.language())?;
        }
        // Every final is submitted: wait for the sinks (and the suggestions they answer).
        if let Some(f) = &out.forwarder {
            let timeout = Duration::from_millis(config.forward.flush_timeout_ms);
            super::flush_forwarding(f, timeout).await;
        }
        while let Ok(Ok(s)) = suggested.try_recv() {
            out.printer.response(&s)?;
        }
        out.printer.clear_interim()?;
        out.send(pb::streaming_transcribe_response::Response::Summary(
            summary_to_proto(&call_id, &driver.summary()),
        ))?;
        if let Some(f) = out.forwarder.take() {
            f.shutdown().await;
        }
        self.finish(capture, recorder)
    }

    /// Sends the captured audio to a server as a live call (LINEAR16 on the wire).
    async fn remote(
        &self,
        mut capture: Capture,
        format: CallFormat,
        server: String,
    ) -> anyhow::Result<()> {
        let call_id = self.call_id(&capture);
        let config = self.streaming_config(&call_id, &format);
        let mut recorder = self.recorder(&capture)?;
        let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(SEND_QUEUE);
        let format_out = self.format;
        let session = tokio::spawn(async move {
            let mut out = Printer::new(format_out);
            let audio = tokio_stream::wrappers::ReceiverStream::new(rx);
            client::stream_call(&server, config, audio, &mut out).await
        });
        let mut session = std::pin::pin!(session);
        let mut samples = Vec::new();
        let mut overruns = OverrunLog::default();
        let mut tick = tokio::time::interval(DRAIN_EVERY);
        let mut interrupted = interrupt();
        let mut ended_early = None;
        loop {
            tokio::select! {
                biased;
                _ = &mut interrupted => break,
                r = &mut session => {
                    // The server ended the call before Ctrl-C (an error, or shutdown).
                    ended_early = Some(r);
                    break;
                }
                _ = tick.tick() => {
                    samples.clear();
                    capture.drain(&mut samples);
                    if let Some(r) = recorder.as_mut() {
                        r.write(&samples)?;
                    }
                    if !samples.is_empty() {
                        let mut bytes = Vec::with_capacity(samples.len() * 2);
                        codec::encode(Encoding::Linear16, &samples, &mut bytes);
                        if tx.send(bytes).await.is_err() {
                            continue; // the session ended; the next turn sees why
                        }
                    }
                    overruns.check(capture.stats());
                }
            }
        }
        capture.stop();
        samples.clear();
        capture.drain(&mut samples);
        if let Some(r) = recorder.as_mut() {
            r.write(&samples)?;
        }
        if !samples.is_empty() {
            let mut bytes = Vec::new();
            codec::encode(Encoding::Linear16, &samples, &mut bytes);
            let _ = tx.send(bytes).await;
        }
        // Half-close: the server finalises the open utterance and sends the summary.
        drop(tx);
        let result = match ended_early {
            Some(r) => r,
            None => session.await,
        };
        let finished = self.finish(capture, recorder);
        result.context("the call's session task failed")??;
        finished
    }

    fn recorder(&self, capture: &Capture) -> anyhow::Result<Option<Recorder>> {
        self.record
            .as_deref()
            .map(|p| Recorder::create(p, capture.format()))
            .transpose()
            .map_err(Into::into)
    }

    fn streaming_config(&self, call_id: &str, format: &CallFormat) -> pb::StreamingConfig {
        let mut config = pb::StreamingConfig {
            call_id: call_id.to_owned(),
            dialect: self.dialect.clone().unwrap_or_default(),
            region: self.region.clone().unwrap_or_default(),
            language: self.language.clone().unwrap_or_default(),
            interim_results: !self.no_interim,
            model: self.model.clone().unwrap_or_default(),
            ..Default::default()
        };
        set_call_format(&mut config, format);
        config
    }

    /// Closes the recording and reports what the device did.
    fn finish(&self, capture: Capture, recorder: Option<Recorder>) -> anyhow::Result<()> {
        let f = capture.format();
        let stats = capture.stats();
        let frames = stats.device_frames.load(Ordering::Relaxed);
        let lost = stats.overrun_frames.load(Ordering::Relaxed);
        let overruns = stats.overruns.load(Ordering::Relaxed);
        let errors = stats.stream_errors.load(Ordering::Relaxed);
        let recorded = recorder.map(Recorder::finish).transpose()?;
        let secs = frames as f64 / f64::from(f.sample_rate_hz);
        if self.format == StreamFormat::Json {
            let v = serde_json::json!({"capture_summary": {
                "device": capture.device(), "sample_rate_hz": f.sample_rate_hz,
                "channels": f.channels, "sample_format": f.sample.as_str(),
                "captured_ms": (secs * 1000.0).round() as u64, "overruns": overruns,
                "overrun_frames": lost, "device_errors": errors,
                "recording": recorded.as_ref().map(|p| p.display().to_string())}});
            println!("{v}");
        } else {
            eprintln!(
                "capture '{}': {secs:.1} s captured, {overruns} overrun(s) ({lost} frame(s) lost), {errors} device error(s){}",
                capture.device(),
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

/// Where a locally transcribed call's events go: the terminal (as `stream` prints a server's
/// responses), and each final on to knowledge lookup, as the server forwards its calls'.
struct LocalOut {
    printer: Printer,
    call_id: String,
    /// The call's config as a server would have accepted it (forwarded with each final).
    accepted: pb::StreamingConfig,
    forwarder: Option<Forwarder>,
    /// The call's language as last decoded (forwarded with each final).
    language: Option<String>,
    /// Suggestions come back here, to be printed under the utterance they answer.
    suggestions: SuggestionTx,
}

impl LocalOut {
    fn send(&mut self, r: pb::streaming_transcribe_response::Response) -> anyhow::Result<()> {
        self.printer.response(&response(&self.call_id, r))
    }

    fn output(&mut self, o: &CallOutput) -> anyhow::Result<()> {
        let r = output_to_proto(&self.call_id, o);
        self.send(r.clone())?;
        if let pb::streaming_transcribe_response::Response::Final(result) = &r {
            crate::forward::hook::final_sent(
                self.forwarder.as_ref(),
                &self.accepted,
                self.language.as_deref(),
                result,
                &self.suggestions,
            );
        }
        Ok(())
    }

    /// The call's dialect adapter, the way `stream` prints a server's `DialectSelected`.
    fn dialect(&mut self, d: Option<DialectOutput>) -> anyhow::Result<()> {
        if let Some(d) = d {
            self.send(pb::streaming_transcribe_response::Response::Dialect(
                crate::server::convert::dialect_selected(&d.selection, &d.language),
            ))?;
        }
        Ok(())
    }

    /// A decode's result, after the adapter it identified, if it did.
    fn completed(&mut self, done: Completed, language: Option<&str>) -> anyhow::Result<()> {
        self.dialect(done.dialect)?;
        if let Some(o) = done.output {
            self.language = language.map(str::to_owned);
            self.output(&o)?;
        }
        Ok(())
    }
}

/// The forwarder for a local call, as `serve` starts it; `None` (with a warning) when it
/// cannot start, e.g. another callscribe process holds the spool: the transcript matters more.
fn start_forwarder(config: &Config) -> Option<Forwarder> {
    if !config.forward.enabled {
        return None;
    }
    Forwarder::start(config.forward.clone(), Default::default())
        .map_err(|e| eprintln!("warning: forwarding off for this call: {e}"))
        .ok()
}

fn response(
    call_id: &str,
    r: pb::streaming_transcribe_response::Response,
) -> pb::StreamingTranscribeResponse {
    pb::StreamingTranscribeResponse {
        call_id: call_id.to_owned(),
        response: Some(r),
    }
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM.
fn interrupt() -> Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(async {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            if let Ok(mut term) = signal(SignalKind::terminate()) {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
                return;
            }
        }
        let _ = tokio::signal::ctrl_c().await;
    })
}

/// Reports overruns as they happen, one log line per burst, never per callback.
#[derive(Default)]
struct OverrunLog {
    reported: u64,
}

impl OverrunLog {
    fn check(&mut self, stats: &CaptureStats) {
        let lost = stats.overrun_frames.load(Ordering::Relaxed);
        if lost > self.reported {
            tracing::warn!(
                lost_frames = lost - self.reported,
                total_lost_frames = lost,
                "capture buffer overrun: the pipeline fell behind the device and frames were lost"
            );
            eprintln!(
                "warning: capture buffer overrun: {} frame(s) lost ({} in total)",
                lost - self.reported,
                lost
            );
            self.reported = lost;
        }
    }
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
