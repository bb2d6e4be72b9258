//! The gRPC client side of a live call, shared by `stream` (a recording) and `capture
//! --server` (a sound card): sends the request and the audio, and hands what comes back to
//! the printer as the same reports a local call makes. The client's protobuf edge: messages
//! are built and read through `proto::convert` and go no further.

use super::printer::Printer;
use crate::proto::convert::{report_from_proto, streaming_config};
use crate::proto::v1 as pb;
use crate::proto::v1::transcription_client::TranscriptionClient;
use crate::stream::LiveRequest;
use anyhow::Context;
use futures::{Stream, StreamExt};

/// `host:port` or a URL; http:// is assumed when the scheme is missing.
pub fn server_url(server: &str) -> String {
    if server.contains("://") {
        server.to_owned()
    } else {
        format!("http://{server}")
    }
}

/// Streams one call: `request` first, then each audio chunk as a message, then half-close
/// when `audio` ends; prints every response until the server closes the call.
pub async fn stream_call(
    server: &str,
    request: &LiveRequest,
    audio: impl Stream<Item = Vec<u8>> + Send + 'static,
    out: &mut Printer,
) -> anyhow::Result<()> {
    use pb::streaming_transcribe_request::Request;
    let mut client = TranscriptionClient::connect(server.to_owned())
        .await
        .with_context(|| format!("connecting to {server}"))?
        .max_decoding_message_size(64 << 20);
    let config = streaming_config(request);
    let first = futures::stream::once(async move {
        pb::StreamingTranscribeRequest {
            request: Some(Request::Config(config)),
        }
    });
    let requests = first.chain(audio.map(|data| pb::StreamingTranscribeRequest {
        request: Some(Request::Audio(data)),
    }));
    let mut responses = client
        .streaming_transcribe(requests)
        .await
        .map_err(|s| anyhow::anyhow!("{:?}: {}", s.code(), s.message()))?
        .into_inner();
    loop {
        match responses.message().await {
            Ok(Some(pb::StreamingTranscribeResponse {
                call_id,
                response: Some(response),
            })) => match report_from_proto(&call_id, response) {
                Ok(report) => out.print(&call_id, &report)?,
                Err(e) => {
                    out.clear_interim()?;
                    return Err(e.into());
                }
            },
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(s) => {
                out.clear_interim()?;
                anyhow::bail!("server ended the call: {:?}: {}", s.code(), s.message());
            }
        }
    }
    out.clear_interim()?;
    Ok(())
}
