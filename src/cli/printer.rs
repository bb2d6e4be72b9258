//! Prints a live call's reports, for people (text: finals and suggestions on stdout, the
//! interim line rewritten in place on a terminal, notices on stderr) or programs (one JSON
//! object per report). The same lines whether the call ran here (`capture`) or on a server
//! (`stream`, `capture --server`): both hand it the same [`CallReport`]s.

use crate::stream::CallReport;
use std::io::{IsTerminal, Write};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StreamFormat {
    /// Human-readable lines (the interim line is rewritten in place on a terminal).
    Text,
    /// One JSON object per response (NDJSON).
    Json,
}

fn clock(ms: u64) -> String {
    format!("{:02}:{:04.1}", ms / 60_000, (ms % 60_000) as f64 / 1000.0)
}

pub struct Printer {
    /// Transcript lines (stdout); notices go to stderr.
    out: Box<dyn Write + Send>,
    format: StreamFormat,
    terminal: bool,
    interim_shown: bool,
}

impl Printer {
    pub fn new(format: StreamFormat) -> Self {
        let terminal = std::io::stdout().is_terminal();
        Self::to(Box::new(std::io::stdout()), format, terminal)
    }

    /// A printer writing its transcript lines to `out`; `terminal` rewrites the interim line
    /// in place.
    fn to(out: Box<dyn Write + Send>, format: StreamFormat, terminal: bool) -> Self {
        Self {
            out,
            format,
            terminal,
            interim_shown: false,
        }
    }

    pub fn clear_interim(&mut self) -> std::io::Result<()> {
        if self.interim_shown {
            write!(self.out, "\r\x1b[2K")?;
            self.out.flush()?;
            self.interim_shown = false;
        }
        Ok(())
    }

    /// Prints one report of call `call_id`.
    pub fn print(&mut self, call_id: &str, report: &CallReport) -> std::io::Result<()> {
        if self.format == StreamFormat::Json {
            let mut v = json(call_id, report);
            v["call_id"] = serde_json::json!(call_id);
            writeln!(self.out, "{v}")?;
            self.out.flush()?;
            return Ok(());
        }
        match report {
            CallReport::Interim(i) => {
                let line = format!(
                    "~ [{}–{}] {}: {}",
                    clock(i.start.as_ms()),
                    clock(i.end.as_ms()),
                    i.role,
                    i.shown.text
                );
                if self.terminal {
                    write!(self.out, "\r\x1b[2K{line}")?;
                    self.interim_shown = true;
                } else {
                    writeln!(self.out, "{line}")?;
                }
                self.out.flush()?;
            }
            CallReport::Final(f) => {
                self.clear_interim()?;
                let s = &f.segment;
                writeln!(
                    self.out,
                    "[{}–{}] {}: {}",
                    clock(s.start_ms),
                    clock(s.end_ms),
                    s.role,
                    s.text
                )?;
                self.out.flush()?;
            }
            CallReport::Dialect(d) => {
                self.clear_interim()?;
                eprintln!(
                    "dialect adapter {} {} ({}), language {}",
                    d.adapter, d.version, d.detail, d.language
                );
            }
            CallReport::Summary(s) => {
                self.clear_interim()?;
                eprintln!(
                    "call {call_id}: {:.1} s of audio, {} final result(s), real-time factor {:.3}",
                    s.audio_ms as f64 / 1000.0,
                    s.final_count,
                    s.real_time_factor
                );
            }
            CallReport::Accepted(c) => {
                tracing::info!(call_id = %c.call_id, model = %c.model, language = %c.language, "call accepted");
            }
            CallReport::Suggestion(s) => {
                if let Some(h) = s.hits.first() {
                    self.clear_interim()?;
                    writeln!(
                        self.out,
                        "  ↳ kb {}: {} — {}",
                        h.article_id, h.title, h.snippet
                    )?;
                    self.out.flush()?;
                }
            }
            CallReport::SpeechStart { .. } | CallReport::SpeechEnd { .. } => {}
        }
        Ok(())
    }
}

/// A report as the JSON object a program reads (without the `call_id` every line carries).
fn json(call_id: &str, report: &CallReport) -> serde_json::Value {
    use serde_json::json;
    let speech = |kind: &str, channel: u32, at: crate::audio::CallTime| json!({"speech_event": {"kind": kind, "channel": channel, "at_ms": at.as_ms()}});
    match report {
        CallReport::Accepted(c) => json!({"accepted_config": {
            "call_id": c.call_id, "sample_rate_hz": c.sample_rate_hz,
            "channel_count": c.channel_count, "language": c.language, "model": c.model,
            "dialect": c.dialect, "region": c.region}}),
        CallReport::Interim(i) => json!({"interim": {
            "channel": i.channel, "role": i.role.as_str(), "text": i.shown.text,
            "stable_text": i.shown.stable_text, "stability": i.shown.stability,
            "start_ms": i.start.as_ms(), "end_ms": i.end.as_ms()}}),
        CallReport::Final(f) => {
            let s = &f.segment;
            json!({"final": {
                "segment_id": f.segment_id, "channel": s.channel, "role": s.role.as_str(),
                "text": s.text, "start_ms": s.start_ms, "end_ms": s.end_ms,
                "confidence": s.confidence, "sequence": f.sequence,
                "words": s.words.iter().map(|w| json!({"text": w.text,
                    "start_ms": w.start_ms, "end_ms": w.end_ms, "probability": w.probability}))
                    .collect::<Vec<_>>()}})
        }
        CallReport::SpeechStart { channel, at } => speech("SPEECH_START", *channel, *at),
        CallReport::SpeechEnd { channel, at } => speech("SPEECH_END", *channel, *at),
        CallReport::Dialect(d) => json!({"dialect": {
            "adapter": d.adapter, "version": d.version, "reason": d.reason,
            "detail": d.detail, "language": d.language}}),
        CallReport::Summary(s) => json!({"summary": {
            "call_id": call_id, "audio_ms": s.audio_ms,
            "final_results": s.final_count, "real_time_factor": s.real_time_factor}}),
        CallReport::Suggestion(s) => json!({"suggestion": {
            "segment_id": s.segment_id,
            "hits": s.hits.iter().map(|h| json!({"article_id": h.article_id,
                "title": h.title, "snippet": h.snippet, "score": h.score, "source": h.source}))
                .collect::<Vec<_>>()}}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::convert::report_from_proto;
    use crate::proto::v1 as pb;
    use std::sync::{Arc, Mutex};

    /// What a printer wrote, readable after the printer is gone.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    /// One of every response a call can send, in a call's order: what `stream` receives, and
    /// (by `proto::convert`'s round trip) what local `capture` prints.
    fn responses() -> Vec<pb::StreamingTranscribeResponse> {
        use pb::streaming_transcribe_response::Response as R;
        let hit = |id: &str| pb::KnowledgeHit {
            article_id: id.into(),
            title: format!("{id} title"),
            snippet: "what to do".into(),
            score: 7.25,
            source: "kb".into(),
        };
        [
            R::AcceptedConfig(pb::StreamingConfig {
                call_id: "c1".into(),
                encoding: pb::AudioEncoding::Linear16 as i32,
                sample_rate_hz: 8000,
                channel_count: 2,
                channel_roles: vec![pb::Role::Agent as i32, pb::Role::Customer as i32],
                language: "en".into(),
                model: "base".into(),
                dialect: "english".into(),
                region: "london".into(),
                interim_results: true,
                ..Default::default()
            }),
            R::Dialect(pb::DialectSelected {
                adapter: "english".into(),
                version: "1".into(),
                reason: "explicit".into(),
                detail: "named by the request".into(),
                language: "en".into(),
                identified_language: String::new(),
                language_probability: 0.0,
            }),
            R::SpeechEvent(pb::SpeechEvent {
                kind: pb::speech_event::Kind::SpeechStart as i32,
                channel: 1,
                at_ms: 1250,
            }),
            R::Interim(pb::InterimResult {
                channel: 1,
                role: pb::Role::Customer as i32,
                text: "my parcel has".into(),
                stable_text: "my parcel".into(),
                stability: 0.75,
                start_ms: 1250,
                end_ms: 2250,
            }),
            R::SpeechEvent(pb::SpeechEvent {
                kind: pb::speech_event::Kind::SpeechEnd as i32,
                channel: 1,
                at_ms: 3500,
            }),
            R::Final(pb::FinalResult {
                segment_id: "c1/1/0".into(),
                channel: 1,
                role: pb::Role::Customer as i32,
                text: "My parcel has not arrived.".into(),
                start_ms: 1250,
                end_ms: 3500,
                confidence: 0.875,
                words: vec![pb::Word {
                    text: "My".into(),
                    start_ms: 1250,
                    end_ms: 1500,
                    probability: 0.5,
                }],
                sequence: 0,
                raw_text: "my parcel has not arrived".into(),
                dialect: "english".into(),
            }),
            R::Suggestion(pb::Suggestion {
                segment_id: "c1/1/0".into(),
                hits: vec![hit("delivery-status-en"), hit("refund-en")],
            }),
            R::Suggestion(pb::Suggestion {
                segment_id: "c1/1/0".into(),
                hits: vec![],
            }),
            R::Final(pb::FinalResult {
                segment_id: "c1/0/0".into(),
                channel: 0,
                role: pb::Role::Agent as i32,
                text: "我来查一下。".into(),
                start_ms: 61_000,
                end_ms: 62_500,
                confidence: 0.5,
                words: vec![],
                sequence: 0,
                raw_text: "我来查一下".into(),
                dialect: String::new(),
            }),
            R::Summary(pb::CallSummary {
                call_id: "c1".into(),
                audio_ms: 62_500,
                final_results: 2,
                real_time_factor: 0.125,
            }),
        ]
        .into_iter()
        .map(|r| pb::StreamingTranscribeResponse {
            call_id: "c1".into(),
            response: Some(r),
        })
        .collect()
    }

    fn printed(format: StreamFormat, terminal: bool) -> String {
        let out = Captured::default();
        let mut printer = Printer::to(Box::new(out.clone()), format, terminal);
        for r in responses() {
            let report = report_from_proto(&r.call_id, r.response.unwrap()).unwrap();
            printer.print(&r.call_id, &report).unwrap();
        }
        printer.clear_interim().unwrap();
        out.text()
    }

    #[test]
    fn json_lines_name_every_field_a_client_reads() {
        let expected = [
            r#"{"accepted_config":{"call_id":"c1","channel_count":2,"dialect":"english","language":"en","model":"base","region":"london","sample_rate_hz":8000},"call_id":"c1"}"#,
            r#"{"call_id":"c1","dialect":{"adapter":"english","detail":"named by the request","language":"en","reason":"explicit","version":"1"}}"#,
            r#"{"call_id":"c1","speech_event":{"at_ms":1250,"channel":1,"kind":"SPEECH_START"}}"#,
            r#"{"call_id":"c1","interim":{"channel":1,"end_ms":2250,"role":"customer","stability":0.75,"stable_text":"my parcel","start_ms":1250,"text":"my parcel has"}}"#,
            r#"{"call_id":"c1","speech_event":{"at_ms":3500,"channel":1,"kind":"SPEECH_END"}}"#,
            r#"{"call_id":"c1","final":{"channel":1,"confidence":0.875,"end_ms":3500,"role":"customer","segment_id":"c1/1/0","sequence":0,"start_ms":1250,"text":"My parcel has not arrived.","words":[{"end_ms":1500,"probability":0.5,"start_ms":1250,"text":"My"}]}}"#,
            r#"{"call_id":"c1","suggestion":{"hits":[{"article_id":"delivery-status-en","score":7.25,"snippet":"what to do","source":"kb","title":"delivery-status-en title"},{"article_id":"refund-en","score":7.25,"snippet":"what to do","source":"kb","title":"refund-en title"}],"segment_id":"c1/1/0"}}"#,
            r#"{"call_id":"c1","suggestion":{"hits":[],"segment_id":"c1/1/0"}}"#,
            r#"{"call_id":"c1","final":{"channel":0,"confidence":0.5,"end_ms":62500,"role":"agent","segment_id":"c1/0/0","sequence":0,"start_ms":61000,"text":"我来查一下。","words":[]}}"#,
            r#"{"call_id":"c1","summary":{"audio_ms":62500,"call_id":"c1","final_results":2,"real_time_factor":0.125}}"#,
        ];
        assert_eq!(
            printed(StreamFormat::Json, false),
            expected.map(|l| format!("{l}\n")).concat()
        );
    }

    #[test]
    fn text_prints_interims_finals_and_suggestions_on_stdout() {
        let expected = "~ [00:01.2–00:02.2] customer: my parcel has\n\
                        [00:01.2–00:03.5] customer: My parcel has not arrived.\n  \
                        ↳ kb delivery-status-en: delivery-status-en title — what to do\n\
                        [01:01.0–01:02.5] agent: 我来查一下。\n";
        assert_eq!(printed(StreamFormat::Text, false), expected);
    }

    #[test]
    fn a_terminal_rewrites_the_interim_line_in_place() {
        let expected = "\r\x1b[2K~ [00:01.2–00:02.2] customer: my parcel has\
                        \r\x1b[2K[00:01.2–00:03.5] customer: My parcel has not arrived.\n  \
                        ↳ kb delivery-status-en: delivery-status-en title — what to do\n\
                        [01:01.0–01:02.5] agent: 我来查一下。\n";
        assert_eq!(printed(StreamFormat::Text, true), expected);
    }
}
