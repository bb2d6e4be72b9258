//! The `callscribe.v1.Transcription` service, and the [`Edge`] every API's service passes a
//! call through: admission, the hand-off of each live call to its own task
//! ([`super::call`]), and whole recordings through the pipeline.
//!
//! Every RPC arrives authenticated: [`super::auth::interceptor`] has put its [`Caller`] in
//! the request. Here each call's plan is checked against the caller's tenant
//! (PERMISSION_DENIED), then admitted by the tenant's quota and the server's capacity
//! (RESOURCE_EXHAUSTED); every call that got this far is audited once, however it ends.
//! The Google and Riva services (`super::google`, `super::riva`) convert their requests into
//! the same domain requests and go through the same [`Edge`] methods.

use super::audit::{self, CallRecord};
use super::auth::{Caller, TenantSlot};
use super::call;
use super::{Loaded, Shared};
use crate::audio::codec;
use crate::audio::decode::decode_bytes;
use crate::audio::wav::WavAudio;
use crate::audio::{ChannelMode, Role};
use crate::dialect::SelectionReport;
use crate::kb::Suggestion;
use crate::pipeline::{transcribe_audio, PipelineError, RecordingOptions};
use crate::plan::{CallPlan, CallRequest};
use crate::proto::convert::{
    self, call_format, call_request, dialect_selected, final_result, invalid,
};
use crate::proto::speech::{self, AudioSpec, Named};
use crate::proto::v1 as pb;
use crate::proto::v1::transcription_server::Transcription;
use crate::stream::{CallFormat, CallReport, FinalReport, LiveRequest};
use crate::transcript::Transcript;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::OwnedSemaphorePermit;
use tonic::{Request, Response, Status, Streaming};

pub struct TranscriptionService {
    edge: Edge,
}

/// What every API's service shares: the server's state, and the steps a call takes through
/// the edge whichever API it came by.
#[derive(Clone)]
pub struct Edge {
    pub(super) shared: Arc<Shared>,
}

/// A whole recording as the pipeline takes it, whichever API it came by.
pub struct Recording {
    /// `None`: "recording".
    pub call_id: Option<String>,
    pub audio: WavAudio,
    pub channels: ChannelMode,
    pub request: CallRequest,
    /// The longest recording this API accepts: seconds, and the setting that says so.
    pub limit: Option<call::CallLimit>,
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
pub fn caller_of<T>(request: &Request<T>) -> Caller {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .unwrap_or_default()
}

impl TranscriptionService {
    pub(super) fn new(edge: Edge) -> Self {
        Self { edge }
    }
}

impl Edge {
    pub fn loaded(&self) -> Result<&Loaded, Status> {
        self.shared
            .loaded
            .get()
            .ok_or_else(|| Status::unavailable("models are still loading; retry shortly"))
    }

    /// A slot in the caller's tenant quota and one in the server's capacity, or
    /// RESOURCE_EXHAUSTED naming the one that is full: a call beyond capacity is refused
    /// rather than slowing every call below real time, and a tenant at its quota is refused
    /// without taking capacity from the others.
    pub fn admit(&self, caller: &Caller) -> Result<Admission, Status> {
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
    pub fn refuse<T>(&self, caller: &Caller, record: &CallRecord, s: Status) -> Result<T, Status> {
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

    /// A live call's request (its first message, converted by its API), checked and
    /// admitted: the call, ready to run.
    pub fn open_live(
        &self,
        caller: &Caller,
        record: &mut CallRecord,
        request: LiveRequest,
        limit: call::CallLimit,
    ) -> Result<(call::CallSetup, Admission), Status> {
        let loaded = self.loaded()?;
        record.call_id = request.call_id.clone().unwrap_or_default();
        let setup = call::setup(&self.shared, loaded, request, limit)?;
        record.call_id = setup.call_id.clone();
        record.model = setup.plan.model.name.clone();
        record.adapter = setup.plan.adapter_id().to_owned();
        caller.authorise(&setup.plan)?;
        let admission = self.admit(caller)?;
        Ok((setup, admission))
    }

    /// Starts an admitted call's task; its responses, for tonic to send.
    pub fn start_call<W: call::Wire>(
        &self,
        admitted: call::Admitted,
        inbound: Streaming<W::Request>,
        wire: W,
    ) -> call::Responses<W::Response> {
        let (tx, responses) = call::responses(RESPONSE_BUFFER);
        tokio::spawn(call::run(self.shared.clone(), admitted, inbound, tx, wire));
        responses
    }

    /// The longest live call of the native API.
    pub fn native_limit(&self) -> call::CallLimit {
        call::CallLimit {
            max_secs: self.shared.settings.server.max_call_secs,
            setting: "server.max_call_secs",
        }
    }
}

impl TranscriptionService {
    /// A live call's first message read, checked and admitted: the call, ready to run, and
    /// its config as the server applies it (echoed to the client).
    async fn open_stream(
        &self,
        caller: &Caller,
        record: &mut CallRecord,
        inbound: &mut Streaming<pb::StreamingTranscribeRequest>,
    ) -> Result<(call::CallSetup, Admission, pb::StreamingConfig), Status> {
        self.edge.loaded()?;
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
        let request = convert::live_request(&cfg, self.edge.shared.settings.server.fit_window)?;
        let (setup, admission) =
            self.edge
                .open_live(caller, record, request, self.edge.native_limit())?;
        let accepted = convert::accepted_config(
            cfg,
            &setup.call_id,
            &setup.plan,
            setup.endpoint_silence_ms,
            &setup.format,
        );
        Ok((setup, admission, accepted))
    }

    /// A whole recording, checked, admitted and transcribed; with its seconds of audio.
    async fn transcribe_recording(
        &self,
        caller: &Caller,
        record: &mut CallRecord,
        req: pb::TranscribeRequest,
    ) -> Result<(pb::TranscribeResponse, f64), Status> {
        self.edge.loaded()?;
        let cfg = req.config.unwrap_or_default();
        record.call_id = cfg.call_id.clone();
        let (audio, channels) = recording(&req.wav, &req.audio, &cfg)?;
        let rec = Recording {
            call_id: Some(cfg.call_id.trim().to_owned()).filter(|s| !s.is_empty()),
            audio,
            channels,
            request: call_request(&cfg, false),
            limit: None,
        };
        let (transcript, call_id, audio_secs) = self.edge.transcribe(caller, record, rec).await?;
        let adapter_id = transcript
            .dialect
            .as_ref()
            .map(|d| d.id.clone())
            .unwrap_or_default();
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
}

impl Edge {
    /// A whole recording, checked, admitted and transcribed: its transcript, call id and
    /// seconds of audio (channels summed). The caller's API converts the transcript.
    pub async fn transcribe(
        &self,
        caller: &Caller,
        record: &mut CallRecord,
        rec: Recording,
    ) -> Result<(Transcript, String, f64), Status> {
        let loaded = self.loaded()?;
        let Recording {
            call_id,
            audio,
            channels: roles,
            request,
            limit,
        } = rec;
        if let Some(limit) = limit {
            let secs = audio.duration_secs();
            if secs > limit.max_secs as f64 {
                return Err(Status::invalid_argument(format!(
                    "the recording is {secs:.1} s long; this RPC takes at most {} s ({})",
                    limit.max_secs, limit.setting
                )));
            }
        }
        // A bad model, language or adapter is the client's mistake: say so before any work.
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
        let call_id = call_id.unwrap_or_else(|| "recording".to_owned());
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
        if let Some(d) = &transcript.dialect {
            record.adapter = d.id.clone();
        }
        Ok((transcript, call_id, audio_secs))
    }
}

impl TranscriptionService {
    /// The adapters and routes, as far as the caller's tenant may use them.
    fn list_dialects_now(&self, caller: &Caller) -> pb::ListDialectsResponse {
        let d = self.edge.shared.dialects();
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
        let (setup, admission, accepted) =
            match self.open_stream(&caller, &mut record, &mut inbound).await {
                Ok(opened) => opened,
                Err(s) => return self.edge.refuse(&caller, &record, s),
            };
        let admitted = call::Admitted {
            setup,
            caller,
            record,
            admission,
        };
        let wire = NativeWire {
            accepted: Some(accepted),
        };
        let responses = self.edge.start_call(admitted, inbound, wire);
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
                audit::call(
                    &self.edge.shared.metrics,
                    &caller,
                    &record,
                    "OK",
                    audio_secs,
                );
                Ok(Response::new(response))
            }
            Err(s) => self.edge.refuse(&caller, &record, s),
        }
    }

    async fn list_models(
        &self,
        request: Request<pb::ListModelsRequest>,
    ) -> Result<Response<pb::ListModelsResponse>, Status> {
        let caller = caller_of(&request);
        let loaded = self.edge.loaded()?;
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
    Ok((
        raw_audio(&format, raw)?,
        ChannelMode::Separate(format.roles),
    ))
}

/// `callscribe.v1` StreamingTranscribe on the wire: the config as applied first, then every
/// report as the response that carries it.
struct NativeWire {
    /// Sent once, as the call's first response.
    accepted: Option<pb::StreamingConfig>,
}

impl call::Wire for NativeWire {
    type Request = pb::StreamingTranscribeRequest;
    type Response = pb::StreamingTranscribeResponse;

    fn audio(&self, request: Self::Request) -> Result<Vec<u8>, Status> {
        convert::audio_message(request)
    }

    fn opening(&mut self, call_id: &str) -> Vec<Self::Response> {
        // The config as the server applies it, echoed whole (the report has only what
        // clients show).
        self.accepted
            .take()
            .map(|cfg| convert::accepted_response(call_id, cfg))
            .into_iter()
            .collect()
    }

    fn report(&mut self, call_id: &str, report: CallReport) -> Vec<Self::Response> {
        vec![convert::report_to_proto(call_id, report)]
    }

    fn suggestion(&self, call_id: &str) -> Option<call::SuggestionMap<Self::Response>> {
        let id = call_id.to_owned();
        Some(Box::new(move |s: &Suggestion| {
            convert::report_to_proto(&id, CallReport::Suggestion(s.clone()))
        }))
    }
}

/// Raw interleaved audio in `format` as planar channels; INVALID_ARGUMENT for a partial frame.
pub fn raw_audio(format: &CallFormat, raw: &[u8]) -> Result<WavAudio, Status> {
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
    Ok(WavAudio {
        sample_rate_hz: format.sample_rate_hz,
        channels,
    })
}

impl Edge {
    /// Which of ours a Google or Riva request's `model` names: a loaded model, or an adapter.
    pub fn classify(&self) -> impl Fn(&str) -> Named + '_ {
        let dialects = self.shared.dialects();
        move |name: &str| {
            let loaded = self
                .shared
                .loaded
                .get()
                .is_some_and(|l| l.pool.models().iter().any(|m| m.name == name));
            if loaded {
                Named::Model
            } else if dialects.list().any(|a| a.id() == name) {
                Named::Adapter
            } else {
                Named::Neither
            }
        }
    }
}

/// A Google or Riva recognition request's audio as planar channels and roles: raw samples
/// in their declared format, or a recording container decoded as a file would be. Without
/// separate recognition only the first channel is kept (what those APIs recognise then).
pub fn speech_recording(
    spec: AudioSpec,
    content: Vec<u8>,
    separate: bool,
) -> Result<(WavAudio, ChannelMode), Status> {
    let (mut audio, mut roles) = match spec {
        AudioSpec::Raw(format) => (raw_audio(&format, &content)?, format.roles),
        AudioSpec::Container(roles) => {
            let audio = decode_bytes("audio content", content)
                .map_err(|e| Status::invalid_argument(e.to_string()))?;
            let n = audio.channels.len();
            let roles = match roles {
                Some(r) if separate && r.len() != n => {
                    return Err(Status::invalid_argument(format!(
                        "metadata {} names {} role(s); the audio has {n} channel(s)",
                        speech::CHANNEL_ROLES_KEY,
                        r.len()
                    )))
                }
                Some(r) => r,
                None if n == 1 || !separate => vec![Role::Mixed],
                None => vec![Role::Agent, Role::Customer],
            };
            (audio, roles)
        }
    };
    if !separate {
        audio.channels.truncate(1);
        roles.truncate(1);
    }
    if audio.channels.len() > crate::stream::MAX_CHANNELS {
        return Err(Status::invalid_argument(format!(
            "the audio has {} channels: at most {} (a call's two sides)",
            audio.channels.len(),
            crate::stream::MAX_CHANNELS
        )));
    }
    if audio.channels.len() != roles.len() {
        roles.resize(audio.channels.len(), Role::Mixed);
    }
    Ok((audio, ChannelMode::Separate(roles)))
}
