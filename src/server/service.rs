//! The `callscribe.v1.Transcription` service: admission, first-message validation, and the
//! hand-off of each call to its own task ([`super::call`]).

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

    /// An admission slot, or RESOURCE_EXHAUSTED: a call beyond capacity is refused rather than
    /// slowing every call below real time.
    fn admit(&self) -> Result<OwnedSemaphorePermit, Status> {
        if self.shared.shutdown.is_cancelled() {
            return Err(Status::unavailable("the server is shutting down"));
        }
        self.shared.admission.clone().try_acquire_owned().map_err(|_| {
            self.shared.metrics.refused_streams.inc();
            let s = Status::resource_exhausted(format!(
                "at capacity: {} concurrent calls (server.max_streams); retry later or on another server",
                self.shared.settings.max_streams
            ));
            self.shared.metrics.error(&s);
            s
        })
    }

    fn fail<T>(&self, s: Status) -> Result<T, Status> {
        self.shared.metrics.error(&s);
        Err(s)
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
        let loaded = self.loaded()?;
        let mut inbound = request.into_inner();
        let first = match inbound.message().await {
            Ok(Some(m)) => m,
            Ok(None) => {
                return self.fail(Status::invalid_argument(
                    "the stream ended before its first message: send a config first",
                ))
            }
            Err(s) => return self.fail(s),
        };
        let cfg = match first.request {
            Some(pb::streaming_transcribe_request::Request::Config(c)) => c,
            Some(pb::streaming_transcribe_request::Request::Audio(_)) => {
                return self.fail(Status::invalid_argument(
                    "audio before config: the first message must carry config",
                ))
            }
            None => {
                return self.fail(Status::invalid_argument(
                    "empty first message: it must carry config",
                ))
            }
        };
        let setup = match call::setup(&self.shared, loaded, cfg) {
            Ok(s) => s,
            Err(s) => return self.fail(s),
        };
        let permit = self.admit()?;
        let (tx, responses) = call::responses(RESPONSE_BUFFER);
        tokio::spawn(call::run(self.shared.clone(), setup, inbound, tx, permit));
        Ok(Response::new(Box::pin(responses)))
    }

    async fn transcribe(
        &self,
        request: Request<pb::TranscribeRequest>,
    ) -> Result<Response<pb::TranscribeResponse>, Status> {
        let loaded = self.loaded()?;
        let req = request.into_inner();
        let cfg = req.config.unwrap_or_default();
        let (audio, roles) = match recording(&req.wav, &req.audio, &cfg) {
            Ok(a) => a,
            Err(s) => return self.fail(s),
        };
        // A bad model, language or adapter is the client's mistake: say so before any work.
        let request = call_request(&cfg, false);
        let plan = match CallPlan::resolve(
            &request,
            &self.shared.settings.decode,
            Some(self.shared.dialects()),
            loaded.pool.models(),
        ) {
            Ok(p) => p,
            Err(e) => return self.fail(invalid(e)),
        };
        let permit = self.admit()?;
        let _permit = permit;
        let call_id = if cfg.call_id.is_empty() {
            "recording".to_owned()
        } else {
            cfg.call_id.clone()
        };
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
                let status = match e {
                    PipelineError::Engine { .. } => Status::internal(e.to_string()),
                    _ => Status::invalid_argument(e.to_string()),
                };
                return self.fail(status);
            }
            Err(_) => return self.fail(Status::internal("the recording's pipeline failed")),
        };
        self.shared.metrics.audio_seconds.inc_by(audio_secs);
        self.shared
            .metrics
            .inference_seconds
            .inc_by(started.elapsed().as_secs_f64());
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
        Ok(Response::new(pb::TranscribeResponse {
            call_id,
            results,
            duration_ms: transcript.duration_ms,
            language: transcript.language,
            model: transcript.model,
            dialect,
        }))
    }

    async fn list_models(
        &self,
        _request: Request<pb::ListModelsRequest>,
    ) -> Result<Response<pb::ListModelsResponse>, Status> {
        let loaded = self.loaded()?;
        let models = loaded
            .pool
            .models()
            .iter()
            .enumerate()
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
        _request: Request<pb::ListDialectsRequest>,
    ) -> Result<Response<pb::ListDialectsResponse>, Status> {
        Ok(Response::new(self.list_dialects_now()))
    }
}

impl TranscriptionService {
    fn list_dialects_now(&self) -> pb::ListDialectsResponse {
        let d = self.shared.dialects();
        pb::ListDialectsResponse {
            dialects: d
                .list()
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
                .map(|(key, adapter)| pb::Route {
                    key: key.to_owned(),
                    adapter: adapter.to_owned(),
                })
                .collect(),
        }
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
