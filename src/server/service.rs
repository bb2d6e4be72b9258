//! The `callscribe.v1.Transcription` service: admission, first-message validation, and the
//! hand-off of each call to its own task ([`super::call`]).
//!
//! Every RPC arrives authenticated: [`super::auth::interceptor`] has put its [`Caller`] in
//! the request. Here each call's plan is checked against the caller's tenant
//! (PERMISSION_DENIED), then admitted by the tenant's quota and the server's capacity
//! (RESOURCE_EXHAUSTED); every call that got this far is audited once, however it ends.

use super::audit::{self, CallRecord};
use super::auth::{Caller, TenantSlot};
use super::call;
use super::{Loaded, Shared};
use crate::audio::codec;
use crate::audio::decode::decode_bytes;
use crate::audio::wav::WavAudio;
use crate::audio::ChannelMode;
use crate::dialect::SelectionReport;
use crate::pipeline::{transcribe_audio, PipelineError, RecordingOptions};
use crate::plan::CallPlan;
use crate::proto::convert::{call_format, call_request, dialect_selected, final_result, invalid};
use crate::proto::v1 as pb;
use crate::proto::v1::transcription_server::Transcription;
use crate::stream::FinalReport;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::OwnedSemaphorePermit;
use tonic::{Request, Response, Status, Streaming};

pub struct TranscriptionService {
    shared: Arc<Shared>,
}

/// A call's places: one in its tenant's quota, one in the server's capacity; both are given
/// back when the call ends.
pub struct Admission {
    _tenant: Option<TenantSlot>,
    _server: OwnedSemaphorePermit,
    /// After the permit: health is recomputed once the slot is free again.
    _health: super::health::Nudge,
}

/// The caller the edge authenticated. Only a request that bypassed the interceptor has
/// none, and then there are no tenants to answer to.
fn caller_of<T>(request: &Request<T>) -> Caller {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .unwrap_or_default()
}

impl TranscriptionService {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    fn loaded(&self) -> Result<&Loaded, Status> {
        self.shared
            .loaded
            .get()
            .ok_or_else(|| Status::unavailable("models are still loading; retry shortly"))
    }

    /// A slot in the caller's tenant quota and one in the server's capacity, or
    /// RESOURCE_EXHAUSTED naming the one that is full: a call beyond capacity is refused
    /// rather than slowing every call below real time, and a tenant at its quota is refused
    /// without taking capacity from the others.
    fn admit(&self, caller: &Caller) -> Result<Admission, Status> {
        if self.shared.shutdown.is_cancelled() {
            return Err(Status::unavailable("the server is shutting down"));
        }
        if self.shared.health.is_draining() {
            return Err(Status::unavailable(
                "the server is draining (finishing its calls before it stops); retry on another server",
            ));
        }
        let tenant = match &caller.tenant {
            Some(t) => Some(self.shared.quotas.admit(t, std::time::Instant::now())?),
            None => None,
        };
        match self.shared.admission.clone().try_acquire_owned() {
            Ok(server) => {
                // At capacity now: health says so before the next call is sent here.
                self.shared.health.nudge();
                Ok(Admission {
                    _tenant: tenant,
                    _server: server,
                    _health: self.shared.health.on_drop(),
                })
            }
            Err(_) => {
                if let Some(t) = tenant {
                    t.never_started();
                }
                self.shared.metrics.refused_streams.inc();
                Err(Status::resource_exhausted(format!(
                    "at capacity: {} concurrent calls (server.max_streams); retry later or on another server",
                    self.shared.settings.max_streams
                )))
            }
        }
    }

    /// Counts and audits a call refused after the edge let it in.
    fn refuse<T>(&self, caller: &Caller, record: &CallRecord, s: Status) -> Result<T, Status> {
        self.shared.metrics.error(&s);
        audit::call(
            &self.shared.metrics,
            caller,
            record,
            &audit::outcome(Some(&s)),
            0.0,
        );
        Err(s)
    }

    /// A live call's first message read, checked and admitted: the call, ready to run.
    async fn open_stream(
        &self,
        caller: &Caller,
        record: &mut CallRecord,
        inbound: &mut Streaming<pb::StreamingTranscribeRequest>,
    ) -> Result<(call::CallSetup, Admission), Status> {
        let loaded = self.loaded()?;
        let first = inbound.message().await?.ok_or_else(|| {
            Status::invalid_argument(
                "the stream ended before its first message: send a config first",
            )
        })?;
        let cfg = match first.request {
            Some(pb::streaming_transcribe_request::Request::Config(c)) => c,
            Some(pb::streaming_transcribe_request::Request::Audio(_)) => {
                return Err(Status::invalid_argument(
                    "audio before config: the first message must carry config",
                ))
            }
            None => {
                return Err(Status::invalid_argument(
                    "empty first message: it must carry config",
                ))
            }
        };
        record.call_id = cfg.call_id.clone();
        let setup = call::setup(&self.shared, loaded, cfg)?;
        record.call_id = setup.call_id.clone();
        record.model = setup.plan.model.name.clone();
        record.adapter = setup.plan.adapter_id().to_owned();
        caller.authorise(&setup.plan)?;
        let admission = self.admit(caller)?;
        Ok((setup, admission))
    }

    /// A whole recording, checked, admitted and transcribed; with its seconds of audio.
    async fn transcribe_recording(
        &self,
        caller: &Caller,
        record: &mut CallRecord,
        req: pb::TranscribeRequest,
    ) -> Result<(pb::TranscribeResponse, f64), Status> {
        let loaded = self.loaded()?;
        let cfg = req.config.unwrap_or_default();
        record.call_id = cfg.call_id.clone();
        let (audio, roles) = recording(&req.wav, &req.audio, &cfg)?;
        // A bad model, language or adapter is the client's mistake: say so before any work.
        let request = call_request(&cfg, false);
        let plan = CallPlan::resolve(
            &request,
            &self.shared.settings.decode,
            Some(self.shared.dialects()),
            loaded.pool.models(),
        )
        .map_err(invalid)?;
        record.model = plan.model.name.clone();
        record.adapter = plan.adapter_id().to_owned();
        caller.authorise(&plan)?;
        let _admission = self.admit(caller)?;
        let call_id = if cfg.call_id.is_empty() {
            "recording".to_owned()
        } else {
            cfg.call_id.clone()
        };
        record.call_id = call_id.clone();
        let opts = RecordingOptions {
            channels: roles,
            vad: Some(self.shared.settings.vad.clone()),
            ..RecordingOptions::default()
        };
        let audio_secs = audio.duration_secs() * audio.channels.len() as f64;
        let (source, shared) = (call_id.clone(), self.shared.clone());
        let started = std::time::Instant::now();
        // The audio stages run here, the windows on the executor: the thread only waits.
        let result = tokio::task::spawn_blocking(move || {
            let loaded = shared.loaded.get().ok_or_else(|| PipelineError::Engine {
                path: source.clone(),
                source: Box::new(crate::engine::EngineError::Inference(
                    "the models are not loaded".into(),
                )),
            })?;
            transcribe_audio(&source, audio, &loaded.pool, &plan, &opts, &mut |_| {})
        })
        .await;
        let transcript = match result {
            Ok(Ok(t)) => t,
            Ok(Err(e)) => {
                return Err(match e {
                    PipelineError::Engine { .. } => Status::internal(e.to_string()),
                    _ => Status::invalid_argument(e.to_string()),
                })
            }
            Err(_) => return Err(Status::internal("the recording's pipeline failed")),
        };
        self.shared
            .metrics
            .audio_seconds(caller.tenant_id())
            .inc_by(audio_secs);
        self.shared
            .metrics
            .inference_seconds
            .inc_by(started.elapsed().as_secs_f64());
        let adapter_id = transcript
            .dialect
            .as_ref()
            .map(|d| d.id.clone())
            .unwrap_or_default();
        if !adapter_id.is_empty() {
            record.adapter = adapter_id.clone();
        }
        let results = transcript
            .numbered()
            .map(|(sequence, s)| {
                final_result(FinalReport::new(
                    &call_id,
                    sequence,
                    s.clone(),
                    adapter_id.clone(),
                ))
            })
            .collect();
        let dialect = transcript.dialect.as_ref().map(|d| {
            dialect_selected(SelectionReport::new(
                &d.id,
                &d.version,
                &d.reason,
                &transcript.language,
            ))
        });
        let response = pb::TranscribeResponse {
            call_id,
            results,
            duration_ms: transcript.duration_ms,
            language: transcript.language,
            model: transcript.model,
            dialect,
        };
        Ok((response, audio_secs))
    }

    /// The adapters and routes, as far as the caller's tenant may use them.
    fn list_dialects_now(&self, caller: &Caller) -> pb::ListDialectsResponse {
        let d = self.shared.dialects();
        let allowed = |id: &str| caller.tenant.as_ref().is_none_or(|t| t.allows_adapter(id));
        pb::ListDialectsResponse {
            dialects: d
                .list()
                .filter(|a| allowed(a.id()))
                .map(|a| {
                    let p = &a.profile;
                    pb::DialectInfo {
                        id: p.id.clone(),
                        version: p.version.clone(),
                        name: p.name.clone(),
                        model: p.model.name.clone(),
                        language: p.model.language.clone(),
                        provinces: p.regions.provinces.clone(),
                        cities: p.regions.cities.clone(),
                        area_codes: p.regions.area_codes.clone(),
                        note: p.note.clone(),
                    }
                })
                .collect(),
            default: d.config().default.clone(),
            identification: d.config().detect,
            routes: d
                .routes()
                .entries()
                .filter(|&(_, adapter)| allowed(adapter))
                .map(|(key, adapter)| pb::Route {
                    key: key.to_owned(),
                    adapter: adapter.to_owned(),
                })
                .collect(),
        }
    }
}

type ResponseStream =
    Pin<Box<dyn futures::Stream<Item = Result<pb::StreamingTranscribeResponse, Status>> + Send>>;

/// Responses buffered per stream towards a slow client.
const RESPONSE_BUFFER: usize = super::RESPONSE_BUFFER;

#[tonic::async_trait]
impl Transcription for TranscriptionService {
    type StreamingTranscribeStream = ResponseStream;

    async fn streaming_transcribe(
        &self,
        request: Request<Streaming<pb::StreamingTranscribeRequest>>,
    ) -> Result<Response<Self::StreamingTranscribeStream>, Status> {
        let caller = caller_of(&request);
        let mut record = CallRecord {
            rpc: "StreamingTranscribe",
            ..CallRecord::default()
        };
        let mut inbound = request.into_inner();
        let (setup, admission) = match self.open_stream(&caller, &mut record, &mut inbound).await {
            Ok(opened) => opened,
            Err(s) => return self.refuse(&caller, &record, s),
        };
        let (tx, responses) = call::responses(RESPONSE_BUFFER);
        let admitted = call::Admitted {
            setup,
            caller,
            record,
            admission,
        };
        tokio::spawn(call::run(self.shared.clone(), admitted, inbound, tx));
        Ok(Response::new(Box::pin(responses)))
    }

    async fn transcribe(
        &self,
        request: Request<pb::TranscribeRequest>,
    ) -> Result<Response<pb::TranscribeResponse>, Status> {
        let caller = caller_of(&request);
        let mut record = CallRecord {
            rpc: "Transcribe",
            ..CallRecord::default()
        };
        match self
            .transcribe_recording(&caller, &mut record, request.into_inner())
            .await
        {
            Ok((response, audio_secs)) => {
                audit::call(&self.shared.metrics, &caller, &record, "OK", audio_secs);
                Ok(Response::new(response))
            }
            Err(s) => self.refuse(&caller, &record, s),
        }
    }

    async fn list_models(
        &self,
        request: Request<pb::ListModelsRequest>,
    ) -> Result<Response<pb::ListModelsResponse>, Status> {
        let caller = caller_of(&request);
        let loaded = self.loaded()?;
        // A tenant sees the models it may use.
        let models = loaded
            .pool
            .models()
            .iter()
            .enumerate()
            .filter(|(_, m)| {
                caller
                    .tenant
                    .as_ref()
                    .is_none_or(|t| t.allows_model(&m.name))
            })
            .map(|(i, m)| pb::ModelInfo {
                name: m.name.clone(),
                multilingual: m.multilingual,
                default: i == 0,
            })
            .collect();
        Ok(Response::new(pb::ListModelsResponse { models }))
    }

    async fn list_dialects(
        &self,
        request: Request<pb::ListDialectsRequest>,
    ) -> Result<Response<pb::ListDialectsResponse>, Status> {
        Ok(Response::new(self.list_dialects_now(&caller_of(&request))))
    }
}

/// A Transcribe request's audio: WAV bytes (any format `transcribe` reads), or raw audio
/// described by `config`. Returns planar audio and the channel roles.
fn recording(
    wav: &[u8],
    raw: &[u8],
    cfg: &pb::StreamingConfig,
) -> Result<(WavAudio, ChannelMode), Status> {
    if !wav.is_empty() && !raw.is_empty() {
        return Err(Status::invalid_argument(
            "send either wav or audio, not both",
        ));
    }
    if !wav.is_empty() {
        // Any recording `transcribe` reads (WAV, MP3, FLAC, Ogg, WebM, M4A…), decoded in memory;
        // errors name it "wav", the field it came in.
        let audio = decode_bytes("wav", wav.to_vec())
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let roles = if cfg.channel_roles.is_empty() {
            ChannelMode::default()
        } else {
            let fmt = call_format(&pb::StreamingConfig {
                encoding: pb::AudioEncoding::Linear16 as i32,
                sample_rate_hz: audio.sample_rate_hz.clamp(8000, 48_000),
                channel_count: audio.channels.len() as u32,
                ..cfg.clone()
            })?;
            ChannelMode::Separate(fmt.roles)
        };
        return Ok((audio, roles));
    }
    if raw.is_empty() {
        return Err(Status::invalid_argument(
            "no audio: set wav (a recording's bytes: WAV, MP3, FLAC, Ogg, WebM, M4A) or audio with config",
        ));
    }
    let format = call_format(cfg)?;
    let frame = format.frame_bytes();
    if !raw.len().is_multiple_of(frame) {
        return Err(Status::invalid_argument(format!(
            "audio of {} bytes is not a whole number of {frame}-byte frames",
            raw.len()
        )));
    }
    let mut interleaved = Vec::with_capacity(raw.len());
    codec::decode(format.encoding, raw, &mut interleaved);
    let n = format.roles.len();
    let channels = (0..n)
        .map(|c| interleaved.iter().skip(c).step_by(n).copied().collect())
        .collect();
    Ok((
        WavAudio {
            sample_rate_hz: format.sample_rate_hz,
            channels,
        },
        ChannelMode::Separate(format.roles),
    ))
}
