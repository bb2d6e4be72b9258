//! The gRPC client side of a live call, shared by `stream` (a recording) and `capture
//! --server` (a sound card): sends the request and the audio, and hands what comes back to
//! the printer as the same reports a local call makes. The client's protobuf edge: messages
//! are built and read through `proto::convert` and go no further. [`Connection`] is how the
//! server is reached: plaintext, TLS, mutual TLS, with or without an API key.

use super::flags::ConnectFlags;
use super::printer::Printer;
use crate::proto::convert::{report_from_proto, streaming_config};
use crate::proto::v1 as pb;
use crate::proto::v1::transcription_client::TranscriptionClient;
use crate::stream::LiveRequest;
use anyhow::Context;
use futures::{Stream, StreamExt};

/// A server's address and how to speak to it.
#[derive(Clone)]
pub struct Connection {
    pub url: String,
    tls: Option<tonic::transport::ClientTlsConfig>,
    /// `Bearer <key>`, ready to send.
    authorization: Option<tonic::metadata::AsciiMetadataValue>,
}

/// Shows whether a key is set, never the key.
impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("url", &self.url)
            .field("tls", &self.tls.is_some())
            .field(
                "api_key",
                &self.authorization.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl Connection {
    /// `server` is `host:port` or a URL. Without a scheme it is http://, or https:// when a
    /// TLS flag is given; https:// verifies the server against `--tls-ca`, else the public
    /// web CAs.
    pub fn new(server: &str, flags: &ConnectFlags) -> anyhow::Result<Self> {
        let wants_tls = flags.tls_given();
        let url = if server.contains("://") {
            server.to_owned()
        } else if wants_tls {
            format!("https://{server}")
        } else {
            format!("http://{server}")
        };
        if wants_tls && !url.starts_with("https://") {
            anyhow::bail!("{url}: --tls-ca/--tls-cert need an https:// server (or none given)");
        }
        let read = |path: &std::path::PathBuf| {
            std::fs::read(path).with_context(|| format!("reading {}", path.display()))
        };
        let tls = if url.starts_with("https://") {
            let mut tls = tonic::transport::ClientTlsConfig::new();
            tls = match &flags.tls_ca {
                Some(ca) => tls.ca_certificate(tonic::transport::Certificate::from_pem(read(ca)?)),
                None => tls.with_webpki_roots(),
            };
            if let (Some(cert), Some(key)) = (&flags.tls_cert, &flags.tls_key) {
                tls = tls.identity(tonic::transport::Identity::from_pem(
                    read(cert)?,
                    read(key)?,
                ));
            }
            Some(tls)
        } else {
            None
        };
        let authorization = match &flags.api_key {
            Some(key) => Some(format!("Bearer {}", key.trim()).parse().map_err(|_| {
                anyhow::anyhow!("the API key has characters a header cannot carry")
            })?),
            None => None,
        };
        Ok(Self {
            url,
            tls,
            authorization,
        })
    }

    async fn client(
        &self,
    ) -> anyhow::Result<
        TranscriptionClient<
            tonic::service::interceptor::InterceptedService<
                tonic::transport::Channel,
                impl tonic::service::Interceptor,
            >,
        >,
    > {
        let mut endpoint = tonic::transport::Endpoint::from_shared(self.url.clone())
            .with_context(|| format!("server address {}", self.url))?;
        if let Some(tls) = &self.tls {
            endpoint = endpoint
                .tls_config(tls.clone())
                .with_context(|| format!("TLS for {}", self.url))?;
        }
        let channel = endpoint
            .connect()
            .await
            .with_context(|| format!("connecting to {}", self.url))?;
        let authorization = self.authorization.clone();
        let with_key = move |mut req: tonic::Request<()>| -> Result<_, tonic::Status> {
            if let Some(a) = &authorization {
                req.metadata_mut().insert("authorization", a.clone());
            }
            Ok(req)
        };
        Ok(TranscriptionClient::with_interceptor(channel, with_key)
            .max_decoding_message_size(64 << 20))
    }

    /// A refusal as one line. A plaintext client talking to a TLS server gets only a
    /// transport failure from HTTP/2 ("Unknown: transport error" or "Internal: h2 protocol
    /// error", as the bytes fall): the server's TLS alert is not HTTP/2. Such a status was
    /// made here from a transport error (it has a source), never sent by a server, so that
    /// case also says what is probably wrong.
    fn describe(&self, s: &tonic::Status) -> String {
        let line = format!("{:?}: {}", s.code(), s.message());
        if self.tls.is_none() && std::error::Error::source(s).is_some() {
            format!(
                "{line} (from {}: if the server serves TLS, give an https:// address and \
                 --tls-ca CA.pem)",
                self.url
            )
        } else {
            line
        }
    }
}

/// Streams one call: `request` first, then each audio chunk as a message, then half-close
/// when `audio` ends; prints every response until the server closes the call.
pub async fn stream_call(
    server: &Connection,
    request: &LiveRequest,
    audio: impl Stream<Item = Vec<u8>> + Send + 'static,
    out: &mut Printer,
) -> anyhow::Result<()> {
    use pb::streaming_transcribe_request::Request;
    let mut client = server.client().await?;
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
        .map_err(|s| anyhow::anyhow!("{}", server.describe(&s)))?
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_flags_make_an_address_https_and_refuse_an_explicit_http_one() {
        let plain = Connection::new("127.0.0.1:50051", &ConnectFlags::default()).unwrap();
        assert_eq!(plain.url, "http://127.0.0.1:50051");
        assert!(plain.tls.is_none() && plain.authorization.is_none());
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\n").unwrap();
        let flags = ConnectFlags {
            tls_ca: Some(ca),
            api_key: Some("cs_k".into()),
            ..ConnectFlags::default()
        };
        let tls = Connection::new("asr.example:443", &flags).unwrap();
        assert_eq!(tls.url, "https://asr.example:443");
        assert!(tls.tls.is_some());
        assert_eq!(tls.authorization.unwrap().to_str().unwrap(), "Bearer cs_k");
        let e = Connection::new("http://asr.example", &flags).unwrap_err();
        assert!(e.to_string().contains("https://"), "{e}");
        // https:// alone verifies against the public CAs.
        let public = Connection::new("https://asr.example", &ConnectFlags::default()).unwrap();
        assert!(public.tls.is_some());
    }
}
