//! Output formats for transcripts: plain text, JSON, SubRip and WebVTT.

use super::Transcript;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `[mm:ss.mmm → mm:ss.mmm] role: text`, one segment per line.
    #[default]
    Txt,
    /// The full transcript: segments, words, confidence, model, language.
    Json,
    /// SubRip subtitles.
    Srt,
    /// WebVTT, one voice per role.
    Vtt,
}

impl Format {
    pub fn extension(self) -> &'static str {
        match self {
            Format::Txt => "txt",
            Format::Json => "json",
            Format::Srt => "srt",
            Format::Vtt => "vtt",
        }
    }
}

fn clock(ms: u64, sep: char, always_hours: bool) -> String {
    let (h, m, s, milli) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    if always_hours || h > 0 {
        format!("{h:02}:{m:02}:{s:02}{sep}{milli:03}")
    } else {
        format!("{m:02}:{s:02}{sep}{milli:03}")
    }
}

pub fn render(t: &Transcript, format: Format) -> String {
    let mut out = String::new();
    match format {
        Format::Txt => {
            for s in &t.segments {
                let _ = writeln!(
                    out,
                    "[{} → {}] {}: {}",
                    clock(s.start_ms, '.', false),
                    clock(s.end_ms, '.', false),
                    s.role,
                    s.text
                );
            }
        }
        Format::Json => {
            out = serde_json::to_string_pretty(t).expect("a transcript always serialises");
            out.push('\n');
        }
        Format::Srt => {
            for (i, s) in t.segments.iter().enumerate() {
                let _ = write!(
                    out,
                    "{}\n{} --> {}\n{}: {}\n\n",
                    i + 1,
                    clock(s.start_ms, ',', true),
                    clock(s.end_ms, ',', true),
                    s.role,
                    s.text
                );
            }
        }
        Format::Vtt => {
            out.push_str("WEBVTT\n\n");
            if let Some(d) = &t.dialect {
                let _ = write!(
                    out,
                    "NOTE dialect adapter {} {} ({})\n\n",
                    d.id, d.version, d.reason
                );
            }
            for s in &t.segments {
                let _ = write!(
                    out,
                    "{} --> {}\n<v {}>{}\n\n",
                    clock(s.start_ms, '.', true),
                    clock(s.end_ms, '.', true),
                    s.role,
                    s.text.replace('<', "&lt;").replace('>', "&gt;")
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::Role;
    use crate::transcript::{ChannelInfo, LanguageSource, Segment};

    fn sample() -> Transcript {
        Transcript {
            source: "call.wav".into(),
            duration_ms: 3_725_000,
            model: "base".into(),
            language: "en".into(),
            language_source: LanguageSource::Configured,
            dialect: None,
            channels: vec![ChannelInfo {
                channel: 0,
                role: Role::Agent,
                language: None,
            }],
            notes: Vec::new(),
            suggestions: Vec::new(),
            segments: vec![
                Segment {
                    channel: 0,
                    role: Role::Agent,
                    start_ms: 1_234,
                    end_ms: 3_456,
                    text: "Hello.".into(),
                    raw_text: "Hello.".into(),
                    confidence: 0.9,
                    words: vec![],
                },
                Segment {
                    channel: 1,
                    role: Role::Customer,
                    start_ms: 3_723_000,
                    end_ms: 3_724_500,
                    text: "a <b> c".into(),
                    raw_text: "a <b> c".into(),
                    confidence: 0.8,
                    words: vec![],
                },
            ],
        }
    }

    #[test]
    fn srt_uses_comma_millis_and_hours() {
        let s = render(&sample(), Format::Srt);
        assert!(s.starts_with("1\n00:00:01,234 --> 00:00:03,456\nagent: Hello.\n\n2\n01:02:03,000 --> 01:02:04,500\n"), "{s}");
    }

    #[test]
    fn vtt_has_header_voices_and_escapes_markup() {
        let s = render(&sample(), Format::Vtt);
        assert!(
            s.starts_with("WEBVTT\n\n00:00:01.234 --> 00:00:03.456\n<v agent>Hello.\n"),
            "{s}"
        );
        assert!(s.contains("<v customer>a &lt;b&gt; c"), "{s}");
    }

    #[test]
    fn txt_lines_carry_times_and_roles() {
        let s = render(&sample(), Format::Txt);
        assert_eq!(
            s.lines().next().unwrap(),
            "[00:01.234 → 00:03.456] agent: Hello."
        );
        assert!(s
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("[01:02:03.000 → 01:02:04.500] customer:"));
    }

    #[test]
    fn json_round_trips() {
        let t = sample();
        let back: Transcript = serde_json::from_str(&render(&t, Format::Json)).unwrap();
        assert_eq!(back, t);
    }
}
