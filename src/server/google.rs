//! `google.cloud.speech.v1.Speech` and `google.longrunning.Operations` on the same listener
//! as `callscribe.v1`: a front door for clients written for Google Cloud Speech-to-Text.
//!
//! Each RPC is converted at the edge (`proto::google`) into the native domain request and
//! goes through the same [`Edge`]: the same keys, tenants, quotas, capacity and audit line,
//! the same call task ([`call::run`]) with a [`GoogleWire`] turning the call's reports into
//! Google's responses, the same forwarding of every final to the knowledge sinks.
//! LongRunningRecognize runs the recording on a task of its own and keeps the result in
//! [`Operations`] (bounded, oldest first out) for GetOperation.

use super::audit::{self, CallRecord};
use super::auth::Caller;
use super::call::{self, CallLimit};
use super::service::{caller_of, speech_recording, Edge, Recording};
use crate::proto::gen_google::cloud::speech::v1 as gs;
use crate::proto::gen_google::cloud::speech::v1::speech_server::{Speech, SpeechServer};
use crate::proto::gen_google::longrunning as lr;
use crate::proto::gen_google::longrunning::operations_server::OperationsServer;
use crate::proto::google::{self, ResultShape, StreamReplies};
use crate::proto::speech::call_metadata;
use crate::stream::CallReport;
use crate::transcript::Transcript;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tonic::{Request, Response, Status, Streaming};

pub fn speech_server(edge: Edge, operations: Arc<Operations>) -> SpeechServer<GoogleSpeech> {
    SpeechServer::new(GoogleSpeech { edge, operations })
}

pub fn operations_server(operations: Arc<Operations>) -> OperationsServer<GoogleOperations> {
    OperationsServer::new(GoogleOperations { operations })
}

pub struct GoogleSpeech {
    edge: Edge,
    operations: Arc<Operations>,
}

/// StreamingRecognize on the wire: nothing before the audio, Google's results after.
struct GoogleWire {
    replies: StreamReplies,
}

impl call::Wire for GoogleWire {
    type Request = gs::StreamingRecognizeRequest;
    type Response = gs::StreamingRecognizeResponse;

    fn audio(&self, request: Self::Request) -> Result<Vec<u8>, Status> {
        google::audio_content(request)
    }

    fn report(&mut self, _call_id: &str, report: CallReport) -> Vec<Self::Response> {
        self.replies.report(report)
    }

    fn ends_input(&self, report: &CallReport) -> bool {
        self.replies.ends_input(report)
    }
}

type ResponseStream =
    Pin<Box<dyn futures::Stream<Item = Result<gs::StreamingRecognizeResponse, Status>> + Send>>;

impl GoogleSpeech {
    fn limits(&self) -> &super::SpeechApisConfig {
        &self.edge.shared.settings.server.speech_apis
    }

    /// A recognition request's recording, ready for the pipeline, and how to shape its results.
    fn recording(
        &self,
        metadata: &tonic::metadata::MetadataMap,
        config: Option<gs::RecognitionConfig>,
        audio: Option<gs::RecognitionAudio>,
        limit: CallLimit,
    ) -> Result<(Recording, ResultShape), Status> {
        use gs::recognition_audio::AudioSource;
        let meta = call_metadata(metadata)?;
        let cfg = config.ok_or_else(|| Status::invalid_argument("config is required"))?;
        let content = match audio.and_then(|a| a.audio_source) {
            Some(AudioSource::Content(c)) => c,
            Some(AudioSource::Uri(uri)) => {
                return Err(Status::invalid_argument(format!(
                    "audio.uri {uri:?}: callscribe reads no cloud storage; send the audio as audio.content"
                )))
            }
            None => return Err(Status::invalid_argument("audio.content is required")),
        };
        let r = google::recognition(&cfg, Some(&content), &meta, &self.edge.classify())?;
        let (audio, channels) = speech_recording(r.audio, content, r.shape.separate_channels)?;
        Ok((
            Recording {
                call_id: meta.call_id,
                audio,
                channels,
                request: r.choices,
                limit: Some(limit),
            },
            r.shape,
        ))
    }

    async fn open_stream(
        &self,
        caller: &Caller,
        record: &mut CallRecord,
        metadata: &tonic::metadata::MetadataMap,
        inbound: &mut Streaming<gs::StreamingRecognizeRequest>,
    ) -> Result<(call::Admitted, ResultShape), Status> {
        self.edge.loaded()?;
        let meta = call_metadata(metadata)?;
        let cfg = google::first_config(inbound.message().await?)?;
        let fit = self.edge.shared.settings.server.fit_window;
        let (request, shape) = google::live_request(&cfg, &meta, &self.edge.classify(), fit)?;
        let limit = CallLimit {
            max_secs: self.limits().google_stream_max_secs,
            setting: "server.speech_apis.google_stream_max_secs",
        };
        let (setup, admission) = self.edge.open_live(caller, record, request, limit)?;
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
}

#[tonic::async_trait]
impl Speech for GoogleSpeech {
    type StreamingRecognizeStream = ResponseStream;

    async fn recognize(
        &self,
        request: Request<gs::RecognizeRequest>,
    ) -> Result<Response<gs::RecognizeResponse>, Status> {
        let caller = caller_of(&request);
        let mut record = CallRecord {
            rpc: "google.Recognize",
            ..CallRecord::default()
        };
        let limit = CallLimit {
            max_secs: self.limits().google_recognize_max_secs,
            setting: "server.speech_apis.google_recognize_max_secs; longer audio goes to LongRunningRecognize",
        };
        let metadata = request.metadata().clone();
        let req = request.into_inner();
        let done = async {
            let (rec, shape) = self.recording(&metadata, req.config, req.audio, limit)?;
            let (t, _, secs) = self.edge.transcribe(&caller, &mut record, rec).await?;
            Ok::<_, Status>((google::recognize_response(&t, &shape), secs))
        }
        .await;
        match done {
            Ok((response, secs)) => {
                audit::call(&self.edge.shared.metrics, &caller, &record, "OK", secs);
                Ok(Response::new(response))
            }
            Err(s) => self.edge.refuse(&caller, &record, s),
        }
    }

    async fn long_running_recognize(
        &self,
        request: Request<gs::LongRunningRecognizeRequest>,
    ) -> Result<Response<lr::Operation>, Status> {
        let caller = caller_of(&request);
        let mut record = CallRecord {
            rpc: "google.LongRunningRecognize",
            ..CallRecord::default()
        };
        let limit = CallLimit {
            max_secs: self.limits().google_long_running_max_secs,
            setting: "server.speech_apis.google_long_running_max_secs",
        };
        let metadata = request.metadata().clone();
        let req = request.into_inner();
        if req
            .output_config
            .as_ref()
            .is_some_and(|o| o.output_type.is_some())
        {
            let s = Status::invalid_argument(
                "output_config: callscribe writes to no cloud storage; the operation's response carries the results",
            );
            return self.edge.refuse(&caller, &record, s);
        }
        let (rec, shape) = match self.recording(&metadata, req.config, req.audio, limit) {
            Ok(r) => r,
            Err(s) => return self.edge.refuse(&caller, &record, s),
        };
        self.edge.loaded()?;
        let name = format!("callscribe-{:016x}", call::rand_id());
        let operation = self
            .operations
            .start(&name, caller.tenant_id(), google::unix_ms_now());
        let (edge, operations) = (self.edge.clone(), self.operations.clone());
        tokio::spawn(async move {
            let result = edge.transcribe(&caller, &mut record, rec).await;
            match &result {
                Ok((_, _, secs)) => {
                    audit::call(&edge.shared.metrics, &caller, &record, "OK", *secs)
                }
                Err(s) => {
                    let _ = edge.refuse::<()>(&caller, &record, s.clone());
                }
            }
            operations.finish(&name, result.map(|(t, _, _)| (t, shape)));
        });
        Ok(Response::new(operation))
    }

    async fn streaming_recognize(
        &self,
        request: Request<Streaming<gs::StreamingRecognizeRequest>>,
    ) -> Result<Response<Self::StreamingRecognizeStream>, Status> {
        let caller = caller_of(&request);
        let mut record = CallRecord {
            rpc: "google.StreamingRecognize",
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
        let wire = GoogleWire {
            replies: StreamReplies::new(shape),
        };
        Ok(Response::new(Box::pin(
            self.edge.start_call(admitted, inbound, wire),
        )))
    }
}

/// Long-running recognitions by name: running, or done with their result, for GetOperation.
/// Bounded: past `kept`, the oldest finished one is dropped (a client that polls finds its
/// result long before). An operation is visible only to its own tenant.
pub struct Operations {
    kept: usize,
    entries: Mutex<VecDeque<Entry>>,
}

struct Entry {
    name: String,
    tenant: String,
    started_unix_ms: i64,
    result: Option<Result<(Transcript, ResultShape), Status>>,
}

impl Operations {
    pub fn new(kept: usize) -> Self {
        Self {
            kept: kept.max(1),
            entries: Mutex::new(VecDeque::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Entry>> {
        // A panic while holding the lock leaves plain data behind: still usable.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a new running operation; returns it as the client first sees it.
    fn start(&self, name: &str, tenant: &str, started_unix_ms: i64) -> lr::Operation {
        let mut entries = self.lock();
        while entries.len() >= self.kept {
            match entries.iter().position(|e| e.result.is_some()) {
                Some(i) => drop(entries.remove(i)),
                None => break,
            }
        }
        entries.push_back(Entry {
            name: name.to_owned(),
            tenant: tenant.to_owned(),
            started_unix_ms,
            result: None,
        });
        google::operation(name, started_unix_ms, None)
    }

    fn finish(&self, name: &str, result: Result<(Transcript, ResultShape), Status>) {
        if let Some(e) = self.lock().iter_mut().find(|e| e.name == name) {
            e.result = Some(result);
        }
    }

    fn get(&self, name: &str, tenant: &str) -> Result<lr::Operation, Status> {
        let entries = self.lock();
        let e = entries
            .iter()
            .find(|e| e.name == name && e.tenant == tenant)
            .ok_or_else(|| Status::not_found(format!("no operation named {name:?}")))?;
        let result = e
            .result
            .as_ref()
            .map(|r| r.as_ref().map(|(t, shape)| (t, shape)));
        Ok(google::operation(&e.name, e.started_unix_ms, result))
    }

    fn delete(&self, name: &str, tenant: &str) -> Result<(), Status> {
        let mut entries = self.lock();
        let i = entries
            .iter()
            .position(|e| e.name == name && e.tenant == tenant)
            .ok_or_else(|| Status::not_found(format!("no operation named {name:?}")))?;
        entries.remove(i);
        Ok(())
    }
}

pub struct GoogleOperations {
    operations: Arc<Operations>,
}

#[tonic::async_trait]
impl lr::operations_server::Operations for GoogleOperations {
    async fn list_operations(
        &self,
        _request: Request<lr::ListOperationsRequest>,
    ) -> Result<Response<lr::ListOperationsResponse>, Status> {
        Err(Status::unimplemented(
            "ListOperations is not served: keep the name LongRunningRecognize returned and call GetOperation",
        ))
    }

    async fn get_operation(
        &self,
        request: Request<lr::GetOperationRequest>,
    ) -> Result<Response<lr::Operation>, Status> {
        let caller = caller_of(&request);
        let name = request.into_inner().name;
        Ok(Response::new(
            self.operations.get(&name, caller.tenant_id())?,
        ))
    }

    async fn delete_operation(
        &self,
        request: Request<lr::DeleteOperationRequest>,
    ) -> Result<Response<()>, Status> {
        let caller = caller_of(&request);
        let name = request.into_inner().name;
        self.operations.delete(&name, caller.tenant_id())?;
        Ok(Response::new(()))
    }

    async fn cancel_operation(
        &self,
        _request: Request<lr::CancelOperationRequest>,
    ) -> Result<Response<()>, Status> {
        Err(Status::unimplemented(
            "CancelOperation is not served: a recognition runs to its end",
        ))
    }

    async fn wait_operation(
        &self,
        _request: Request<lr::WaitOperationRequest>,
    ) -> Result<Response<lr::Operation>, Status> {
        Err(Status::unimplemented(
            "WaitOperation is not served: poll GetOperation",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_kept_per_tenant_and_bounded() {
        let ops = Operations::new(2);
        ops.start("a", "acme", 0);
        assert!(!ops.get("a", "acme").unwrap().done);
        assert_eq!(
            ops.get("a", "globex").unwrap_err().code(),
            tonic::Code::NotFound,
            "another tenant's operation does not exist for it"
        );
        ops.finish("a", Err(Status::invalid_argument("bad audio")));
        assert!(ops.get("a", "acme").unwrap().done);
        ops.start("b", "acme", 0);
        ops.start("c", "acme", 0);
        assert!(
            ops.get("a", "acme").is_err(),
            "the oldest finished one made room"
        );
        assert!(ops.get("b", "acme").is_ok() && ops.get("c", "acme").is_ok());
    }
}
