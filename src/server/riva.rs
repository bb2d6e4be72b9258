//! `nvidia.riva.asr.RivaSpeechRecognition` on the same listener as `callscribe.v1`: a front
//! door for clients written for NVIDIA Riva (`riva.client.ASRService`).
//!
//! Converted at the edge (`proto::riva`) into the native domain request; the same [`Edge`]
//! (keys, tenants, quotas, capacity, audit), the same call task with a [`RivaWire`], the same
//! forwarding of finals.

use super::audit::{self, CallRecord};
use super::auth::Caller;
use super::call::{self, CallLimit};
use super::service::{caller_of, speech_recording, Edge, Recording};
use crate::proto::gen_riva::asr as ra;
use crate::proto::gen_riva::asr::riva_speech_recognition_server::{
    RivaSpeechRecognition, RivaSpeechRecognitionServer,
};
use crate::proto::riva::{self, Offered, ResultShape};
use crate::proto::speech::call_metadata;
use crate::stream::CallReport;
use std::pin::Pin;
use tonic::{Request, Response, Status, Streaming};

pub fn server(edge: Edge) -> RivaSpeechRecognitionServer<RivaAsr> {
    RivaSpeechRecognitionServer::new(RivaAsr { edge })
}

pub struct RivaAsr {
    edge: Edge,
}

/// Riva's StreamingRecognize on the wire: interims and finals as Riva results.
struct RivaWire {
    shape: ResultShape,
}

impl call::Wire for RivaWire {
    type Request = ra::StreamingRecognizeRequest;
    type Response = ra::StreamingRecognizeResponse;

    fn audio(&self, request: Self::Request) -> Result<Vec<u8>, Status> {
        riva::audio_content(request)
    }

    fn report(&mut self, _call_id: &str, report: CallReport) -> Vec<Self::Response> {
        riva::stream_report(report, &self.shape)
            .into_iter()
            .collect()
    }
}

type ResponseStream =
    Pin<Box<dyn futures::Stream<Item = Result<ra::StreamingRecognizeResponse, Status>> + Send>>;

impl RivaAsr {
    async fn open_stream(
        &self,
        caller: &Caller,
        record: &mut CallRecord,
        metadata: &tonic::metadata::MetadataMap,
        inbound: &mut Streaming<ra::StreamingRecognizeRequest>,
    ) -> Result<(call::Admitted, ResultShape), Status> {
        self.edge.loaded()?;
        let meta = call_metadata(metadata)?;
        let (cfg, id) = riva::first_config(inbound.message().await?)?;
        let fit = self.edge.shared.settings.server.fit_window;
        let (request, shape) =
            riva::live_request(&cfg, id.as_ref(), &meta, &self.edge.classify(), fit)?;
        let (setup, admission) =
            self.edge
                .open_live(caller, record, request, self.edge.native_limit())?;
        Ok((
            call::Admitted {
                setup,
                caller: caller.clone(),
                record: record.clone(),
                admission,
            },
            shape,
        ))
    }

    async fn recognize_now(
        &self,
        caller: &Caller,
        record: &mut CallRecord,
        metadata: &tonic::metadata::MetadataMap,
        req: ra::RecognizeRequest,
    ) -> Result<(ra::RecognizeResponse, f64), Status> {
        let meta = call_metadata(metadata)?;
        let cfg = req
            .config
            .ok_or_else(|| Status::invalid_argument("config is required"))?;
        if req.audio.is_empty() {
            return Err(Status::invalid_argument("audio is required"));
        }
        let r = riva::recognition(
            &cfg,
            Some(&req.audio),
            req.id.as_ref(),
            &meta,
            &self.edge.classify(),
        )?;
        let (audio, channels) = speech_recording(r.audio, req.audio, r.shape.separate_channels)?;
        let rec = Recording {
            call_id: meta
                .call_id
                .or_else(|| r.shape.id.as_ref().map(|i| i.value.clone())),
            audio,
            channels,
            request: r.choices,
            limit: Some(CallLimit {
                max_secs: self.edge.shared.settings.server.max_call_secs,
                setting: "server.max_call_secs",
            }),
        };
        let (t, _, secs) = self.edge.transcribe(caller, record, rec).await?;
        Ok((riva::recognize_response(&t, &r.shape), secs))
    }
}

#[tonic::async_trait]
impl RivaSpeechRecognition for RivaAsr {
    type StreamingRecognizeStream = ResponseStream;

    async fn recognize(
        &self,
        request: Request<ra::RecognizeRequest>,
    ) -> Result<Response<ra::RecognizeResponse>, Status> {
        let caller = caller_of(&request);
        let mut record = CallRecord {
            rpc: "riva.Recognize",
            ..CallRecord::default()
        };
        let metadata = request.metadata().clone();
        match self
            .recognize_now(&caller, &mut record, &metadata, request.into_inner())
            .await
        {
            Ok((response, secs)) => {
                audit::call(&self.edge.shared.metrics, &caller, &record, "OK", secs);
                Ok(Response::new(response))
            }
            Err(s) => self.edge.refuse(&caller, &record, s),
        }
    }

    async fn streaming_recognize(
        &self,
        request: Request<Streaming<ra::StreamingRecognizeRequest>>,
    ) -> Result<Response<Self::StreamingRecognizeStream>, Status> {
        let caller = caller_of(&request);
        let mut record = CallRecord {
            rpc: "riva.StreamingRecognize",
            ..CallRecord::default()
        };
        let metadata = request.metadata().clone();
        let mut inbound = request.into_inner();
        let (admitted, shape) = match self
            .open_stream(&caller, &mut record, &metadata, &mut inbound)
            .await
        {
            Ok(opened) => opened,
            Err(s) => return self.edge.refuse(&caller, &record, s),
        };
        Ok(Response::new(Box::pin(self.edge.start_call(
            admitted,
            inbound,
            RivaWire { shape },
        ))))
    }

    async fn get_riva_speech_recognition_config(
        &self,
        request: Request<ra::RivaSpeechRecognitionConfigRequest>,
    ) -> Result<Response<ra::RivaSpeechRecognitionConfigResponse>, Status> {
        let caller = caller_of(&request);
        let wanted = request.into_inner().model_name;
        let loaded = self.edge.loaded()?;
        let allowed_model = |m: &str| caller.tenant.as_ref().is_none_or(|t| t.allows_model(m));
        let allowed_adapter = |a: &str| caller.tenant.as_ref().is_none_or(|t| t.allows_adapter(a));
        let mut offered: Vec<Offered> = loaded
            .pool
            .models()
            .iter()
            .filter(|m| allowed_model(&m.name))
            .map(|m| Offered {
                name: m.name.clone(),
                language_code: if m.multilingual { "multi" } else { "en-US" }.to_owned(),
                model: None,
            })
            .collect();
        let dialects = self.edge.shared.dialects();
        offered.extend(
            dialects
                .list()
                .filter(|a| allowed_adapter(a.id()))
                .map(|a| Offered {
                    name: a.id().to_owned(),
                    language_code: a.profile.model.language.clone(),
                    model: Some(a.profile.model.name.clone()),
                }),
        );
        if !wanted.trim().is_empty() {
            offered.retain(|o| o.name == wanted.trim());
        }
        Ok(Response::new(riva::config_response(offered)))
    }
}
