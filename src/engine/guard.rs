//! The last check before text leaves the recogniser: whisper output that the audio does not
//! support is dropped.
//!
//! Whisper writes fluent text for audio that holds none: on music, tones or line noise it
//! repeats its prompt (the putonghua adapter's "客服", "电话录音"), lists the hotwords it was
//! given, or produces the captions it learned from subtitled video ("Thank you for watching",
//! "字幕由 Amara.org 社群提供"). The voice-activity detector keeps most non-speech away;
//! this guard catches what still gets through, in the one place every front door's decode
//! passes ([`super::Worker::transcribe`]), so batch, live finals and interims agree.
//!
//! A piece is dropped when
//! - whisper itself judges the window silent: no-speech probability at or above the
//!   threshold and a mean token probability below [`NO_SPEECH_MAX_CONFIDENCE`] (whisper's
//!   own rule, `no_speech_prob > 0.6 and avg_logprob < -1`, with mean token probability for
//!   the log-probability, as our confidence is);
//! - its text is made of the decode prompt or the hotword list (a substring of the prompt, or
//!   nothing but listed terms), or is a known caption hallucination — unless the decode is
//!   [`well_supported`]: an agent does say "您好，这里是客服中心", and whisper hears real
//!   speech with high token probabilities and a low no-speech probability, which it does not
//!   give music or hum.
//!
//! Text that compresses more than [`MAX_COMPRESSION_RATIO`] to one is a decoding loop
//! ("nip-nip-nip-…" for a sentence of echo_18db, 70 times over) and is dropped: OpenAI's
//! whisper and faster-whisper retry such a decode at a higher temperature by the same test,
//! whisper.cpp's entropy test let this one through.
//!
//! A sentence written twice in a row is written once ([`collapse_repeats`]): whisper's
//! decoding loop, which on a packed window of the overlap fixture gave "I placed the order on
//! Monday morning. I placed the order on Monday morning." for one saying.

use super::hotwords::{match_key, Hotword};
use super::Decoded;

/// Below this mean token probability a window whisper calls silent is dropped.
pub const NO_SPEECH_MAX_CONFIDENCE: f32 = 0.45;
/// Prompt echoes and known hallucinations are kept only at or above this mean token
/// probability…
pub const SUPPORTED_CONFIDENCE: f32 = 0.7;
/// …and at or below this no-speech probability.
pub const SUPPORTED_NO_SPEECH: f32 = 0.3;

/// Text whose zlib compression ratio exceeds this is a loop, not speech: whisper's own
/// `compression_ratio_threshold` (2.4 in OpenAI's whisper and faster-whisper).
pub const MAX_COMPRESSION_RATIO: f32 = 2.4;

/// Bytes of text over bytes of its zlib stream, as OpenAI's whisper computes it.
pub fn compression_ratio(text: &str) -> f32 {
    use std::io::Write;
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let compressed = z
        .write_all(text.as_bytes())
        .and_then(|()| z.finish())
        .map_or(1, |c| c.len().max(1));
    text.len() as f32 / compressed as f32
}

/// Captions whisper learned from subtitled video and writes over silence, music and noise;
/// matched after [`key`] (lower case, letters and digits only). None of them is something a
/// caller or an agent says on a support line.
const HALLUCINATIONS: &[&str] = &[
    "thanksforwatching",
    "thankyouforwatching",
    "thanksforlistening",
    "pleasesubscribe",
    "subscribetomychannel",
    "likeandsubscribe",
    "seeyouinthenextvideo",
    "subtitlesbytheamaraorgcommunity",
    "字幕由amaraorg社群提供",
    "字幕由amaraorg社区提供",
    "请不吝点赞订阅转发打赏",
    "請不吝點贊訂閱轉發打賞",
    "支持明镜与点点栏目",
    "明镜与点点栏目",
    "优优独播剧场",
    "yoyotelevisionseriesexclusive",
    "谢谢观看",
    "謝謝觀看",
    "感谢观看",
    "感謝觀看",
    "字幕志愿者",
    "中文字幕",
    "小编字幕",
];

/// Why a decoded piece was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// Whisper's no-speech probability is high and its tokens are unsure.
    NoSpeech,
    /// The text is part of the decode prompt.
    PromptEcho,
    /// The text is nothing but hotwords.
    TermList,
    /// A caption whisper writes over non-speech.
    KnownHallucination,
    /// A decoding loop: the text repeats itself ([`MAX_COMPRESSION_RATIO`]).
    Repetition,
}

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Dropped::NoSpeech => "no speech",
            Dropped::PromptEcho => "prompt echo",
            Dropped::TermList => "hotword list",
            Dropped::KnownHallucination => "known hallucination",
            Dropped::Repetition => "repetition loop",
        })
    }
}

/// What the decode was given, against which its output is checked.
pub struct Guard {
    prompt_key: String,
    terms: Vec<String>,
    no_speech_threshold: f32,
}

/// Lower case, letters and digits only: how texts are compared here, so that punctuation,
/// spacing and full-width forms do not hide a match.
fn key(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Whether whisper's own scores say it heard speech: high token probabilities and a low
/// no-speech probability.
pub fn well_supported(d: &Decoded) -> bool {
    d.confidence >= SUPPORTED_CONFIDENCE && d.no_speech_prob <= SUPPORTED_NO_SPEECH
}

impl Guard {
    pub fn new(prompt: Option<&str>, hotwords: &[Hotword], no_speech_threshold: f32) -> Self {
        let mut terms: Vec<String> = hotwords
            .iter()
            .filter_map(match_key)
            .map(|t| key(&t))
            .filter(|t| !t.is_empty())
            .collect();
        // Longest first, so a term that contains another is taken whole.
        terms.sort_by_key(|t| std::cmp::Reverse(t.chars().count()));
        Self {
            prompt_key: prompt.map(key).unwrap_or_default(),
            terms,
            no_speech_threshold,
        }
    }

    /// `Some(reason)` when `d` should not be kept.
    pub fn check(&self, d: &Decoded) -> Option<Dropped> {
        let text = key(&d.text);
        if text.is_empty() {
            return None;
        }
        if d.no_speech_prob >= self.no_speech_threshold && d.confidence < NO_SPEECH_MAX_CONFIDENCE {
            return Some(Dropped::NoSpeech);
        }
        if compression_ratio(&d.text) > MAX_COMPRESSION_RATIO {
            return Some(Dropped::Repetition);
        }
        if well_supported(d) {
            return None;
        }
        if HALLUCINATIONS.iter().any(|h| text.contains(h)) {
            return Some(Dropped::KnownHallucination);
        }
        // One letter or character of the prompt is no evidence of an echo.
        if text.chars().count() >= 2 && self.prompt_key.contains(&text) {
            return Some(Dropped::PromptEcho);
        }
        if self.only_terms(&text) {
            return Some(Dropped::TermList);
        }
        None
    }

    /// Whether `text` (a [`key`]) is made entirely of listed terms.
    fn only_terms(&self, text: &str) -> bool {
        if self.terms.is_empty() {
            return false;
        }
        let mut rest = text;
        'outer: while !rest.is_empty() {
            for t in &self.terms {
                if let Some(r) = rest.strip_prefix(t.as_str()) {
                    rest = r;
                    continue 'outer;
                }
            }
            return false;
        }
        true
    }

    /// Removes the pieces that should not be kept, logging why, and the sentences whisper
    /// repeated in those that stay.
    pub fn apply(&self, pieces: &mut Vec<Decoded>) {
        for d in pieces.iter_mut() {
            if collapse_repeats(d) {
                tracing::debug!(text = %d.text, "a sentence whisper repeated is kept once");
            }
        }
        pieces.retain(|d| match self.check(d) {
            None => true,
            Some(reason) => {
                tracing::debug!(text = %d.text, %reason, confidence = d.confidence, no_speech = d.no_speech_prob, "dropped decoded text the audio does not support");
                false
            }
        });
    }
}

const SENTENCE_ENDS: [char; 6] = ['.', '?', '!', '。', '？', '！'];

/// Byte ranges of `text`'s sentences: each runs to its closing punctuation (or the end) and
/// takes the whitespace after it.
fn sentences(text: &str) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let next_is_end = chars
            .peek()
            .is_some_and(|&(_, n)| SENTENCE_ENDS.contains(&n));
        if SENTENCE_ENDS.contains(&c) && !next_is_end {
            let mut end = i + c.len_utf8();
            while let Some(&(j, w)) = chars.peek() {
                if !w.is_whitespace() {
                    break;
                }
                end = j + w.len_utf8();
                chars.next();
            }
            out.push(start..end);
            start = end;
        }
    }
    if start < text.len() {
        out.push(start..text.len());
    }
    out
}

/// A sentence long enough that saying it twice in a row is not how people talk: three
/// words, or five Chinese characters. "No. No." and "好的。好的。" stay.
fn substantial(sentence: &str) -> bool {
    let k = key(sentence);
    let cjk = k.chars().filter(|&c| c as u32 >= 0x2E80).count();
    sentence.split_whitespace().count() >= 3 || cjk >= 5
}

/// Writes a sentence that whisper repeated back to back once, in the text and in the words;
/// returns whether anything changed. Words are grouped into sentences by the same closing
/// punctuation; where the groups do not line up with the text's sentences the piece is left
/// as it is, rather than text and word times disagreeing.
pub fn collapse_repeats(d: &mut Decoded) -> bool {
    let ranges = sentences(&d.text);
    let keys: Vec<String> = ranges.iter().map(|r| key(&d.text[r.clone()])).collect();
    let keep: Vec<bool> = (0..ranges.len())
        .map(|i| i == 0 || keys[i] != keys[i - 1] || !substantial(&d.text[ranges[i].clone()]))
        .collect();
    if keep.iter().all(|&k| k) {
        return false;
    }
    if !d.words.is_empty() {
        let mut groups: Vec<Vec<super::Word>> = vec![Vec::new()];
        for w in d.words.drain(..) {
            let ends = w.text.ends_with(SENTENCE_ENDS);
            groups.last_mut().expect("one group at least").push(w);
            if ends {
                groups.push(Vec::new());
            }
        }
        if groups.last().is_some_and(Vec::is_empty) {
            groups.pop();
        }
        if groups.len() != ranges.len() {
            d.words = groups.into_iter().flatten().collect();
            return false;
        }
        d.words = groups
            .into_iter()
            .zip(&keep)
            .filter(|(_, &k)| k)
            .flat_map(|(g, _)| g)
            .collect();
    }
    let text: String = ranges
        .iter()
        .zip(&keep)
        .filter(|(_, &k)| k)
        .map(|(r, _)| &d.text[r.clone()])
        .collect();
    d.text = text.trim_end().to_owned();
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(text: &str, confidence: f32, no_speech_prob: f32) -> Decoded {
        Decoded {
            text: text.into(),
            start_ms: 0,
            end_ms: 1000,
            confidence,
            no_speech_prob,
            words: Vec::new(),
        }
    }

    fn terms(list: &[&str]) -> Vec<Hotword> {
        list.iter()
            .map(|t| Hotword {
                term: (*t).into(),
                weight: 1.0,
            })
            .collect()
    }

    #[test]
    fn prompt_words_and_term_lists_are_dropped_unless_whisper_is_sure_of_them() {
        let hot = terms(&["话费", "退款", "套餐"]);
        let g = Guard::new(Some("以下是普通话的客服电话录音。"), &hot, 0.6);
        // What the putonghua adapter wrote over hold music.
        assert_eq!(g.check(&piece("客服", 0.5, 0.2)), Some(Dropped::PromptEcho));
        assert_eq!(
            g.check(&piece("电话录音。", 0.6, 0.4)),
            Some(Dropped::PromptEcho)
        );
        assert_eq!(
            g.check(&piece("话费、退款、套餐。", 0.55, 0.1)),
            Some(Dropped::TermList)
        );
        // A customer who says only "退款" clearly is heard.
        assert_eq!(g.check(&piece("退款。", 0.9, 0.05)), None);
        // Real speech that merely contains a term or a prompt word is never touched.
        assert_eq!(g.check(&piece("我要申请退款", 0.4, 0.5)), None);
        assert_eq!(g.check(&piece("客服你好，我的快递没到", 0.5, 0.3)), None);
        // One character of the prompt is no echo.
        assert_eq!(g.check(&piece("是", 0.3, 0.5)), None);
    }

    #[test]
    fn caption_hallucinations_are_dropped_whatever_their_spelling() {
        let g = Guard::new(None, &[], 0.6);
        for text in [
            "Thank you for watching!",
            "Thanks for watching.",
            "字幕由 Amara.org 社群提供",
            "请不吝点赞 订阅 转发 打赏支持明镜与点点栏目",
        ] {
            assert_eq!(
                g.check(&piece(text, 0.65, 0.35)),
                Some(Dropped::KnownHallucination),
                "{text}"
            );
        }
        assert_eq!(g.check(&piece("Thank you for calling.", 0.5, 0.3)), None);
    }

    #[test]
    fn decoding_loops_are_dropped_and_ordinary_sentences_kept() {
        let g = Guard::new(None, &[], 0.6);
        let looped = vec!["nip"; 70].join("-");
        assert_eq!(
            g.check(&piece(&looped, 0.9, 0.05)),
            Some(Dropped::Repetition)
        );
        for text in [
            "Thank you for calling customer service. How can I help you today?",
            "No, no, no. I said the tenth, not the eleventh.",
            "您好，欢迎致电客服中心，请问有什么可以帮您？",
            "Yes.",
        ] {
            assert!(compression_ratio(text) < MAX_COMPRESSION_RATIO, "{text}");
            assert_eq!(g.check(&piece(text, 0.9, 0.05)), None, "{text}");
        }
    }

    #[test]
    fn a_silent_window_with_unsure_tokens_is_dropped_and_a_sure_one_kept() {
        let g = Guard::new(None, &[], 0.6);
        assert_eq!(g.check(&piece("Hmm.", 0.3, 0.8)), Some(Dropped::NoSpeech));
        assert_eq!(g.check(&piece("Yes.", 0.8, 0.7)), None);
        assert_eq!(g.check(&piece("Yes.", 0.3, 0.5)), None);
    }

    #[test]
    fn a_sentence_repeated_back_to_back_is_kept_once_in_text_and_words() {
        let word = |text: &str, at: u64| super::super::Word {
            text: text.into(),
            start_ms: at,
            end_ms: at + 100,
            probability: 0.9,
        };
        let mut d = piece(
            "I placed the order on Monday. I placed the order on Monday. Thanks.",
            0.8,
            0.1,
        );
        let said = ["I", "placed", "the", "order", "on", "Monday."];
        d.words = said
            .iter()
            .chain(&said)
            .chain(&["Thanks."])
            .enumerate()
            .map(|(i, w)| word(w, i as u64 * 100))
            .collect();
        assert!(collapse_repeats(&mut d));
        assert_eq!(d.text, "I placed the order on Monday. Thanks.");
        let words: Vec<&str> = d.words.iter().map(|w| w.text.as_str()).collect();
        assert_eq!(
            words,
            ["I", "placed", "the", "order", "on", "Monday.", "Thanks."]
        );
        assert_eq!(d.words[6].start_ms, 1200, "the words kept keep their times");
        // People do say short things twice; Chinese the same.
        for text in ["No. No.", "Thank you. Thank you.", "好的。好的。"] {
            let mut d = piece(text, 0.8, 0.1);
            assert!(!collapse_repeats(&mut d), "{text}");
        }
        let mut d = piece("我马上为您办理退款。我马上为您办理退款。", 0.8, 0.1);
        assert!(collapse_repeats(&mut d));
        assert_eq!(d.text, "我马上为您办理退款。");
    }

    #[test]
    fn apply_keeps_the_order_of_what_stays() {
        let hot = terms(&["refund"]);
        let g = Guard::new(Some("Customer service call."), &hot, 0.6);
        let mut pieces = vec![
            piece("I want my money back.", 0.8, 0.1),
            piece("Customer service call.", 0.5, 0.5),
            piece("Refund.", 0.4, 0.2),
            piece("Today, please.", 0.7, 0.1),
        ];
        g.apply(&mut pieces);
        let texts: Vec<&str> = pieces.iter().map(|d| d.text.as_str()).collect();
        assert_eq!(texts, ["I want my money back.", "Today, please."]);
    }
}
