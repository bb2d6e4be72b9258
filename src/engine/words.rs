//! Tokens → words. Whisper's byte-level tokens split multi-byte characters and glue the
//! leading space to a word, so words are rebuilt from bytes: a new word starts at a token that
//! begins with a space, and every CJK character (written without spaces) is a word of its own.

use serde::{Deserialize, Serialize};

/// A word with its time in the utterance (ms from the utterance's first sample until the
/// pipeline moves it onto the call timeline).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Word {
    pub text: String,
    pub start_ms: u64,
    pub end_ms: u64,
    pub probability: f32,
}

/// Joins two pieces of text: with a space, except between Chinese/Japanese characters.
pub fn join_text(a: &str, b: &str) -> String {
    let cjk = |c: Option<char>| c.is_some_and(|c| c as u32 >= 0x2E80);
    if cjk(a.chars().last()) || cjk(b.chars().next()) {
        format!("{a}{b}")
    } else {
        format!("{a} {b}")
    }
}

#[derive(Debug, Clone)]
pub(crate) struct TokenPiece {
    pub bytes: Vec<u8>,
    pub start_ms: u64,
    pub end_ms: u64,
    pub probability: f32,
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F | 0x3040..=0x30FF)
}

struct Pending {
    bytes: Vec<u8>,
    start_ms: u64,
    end_ms: u64,
    probs: Vec<f32>,
}

impl Pending {
    fn finish(self, out: &mut Vec<Word>) {
        let text = String::from_utf8_lossy(&self.bytes).trim().to_owned();
        if text.is_empty() {
            return;
        }
        // Punctuation alone sticks to the previous word.
        if !text.chars().any(char::is_alphanumeric) {
            if let Some(last) = out.last_mut() {
                last.text.push_str(&text);
                last.end_ms = last.end_ms.max(self.end_ms);
                return;
            }
        }
        let probability = self.probs.iter().sum::<f32>() / self.probs.len().max(1) as f32;
        out.push(Word {
            text,
            start_ms: self.start_ms,
            end_ms: self.end_ms.max(self.start_ms),
            probability,
        });
    }
}

pub(crate) fn group(tokens: &[TokenPiece]) -> Vec<Word> {
    let mut out = Vec::new();
    let mut cur: Option<Pending> = None;
    for t in tokens {
        let starts_word = t.bytes.first().is_some_and(|b| *b == b' ');
        let prev_complete_cjk = cur.as_ref().is_some_and(|p| {
            std::str::from_utf8(&p.bytes).is_ok_and(|s| s.chars().last().is_some_and(is_cjk))
        });
        let this_cjk = std::str::from_utf8(&t.bytes)
            .map(|s| s.chars().next().is_some_and(is_cjk))
            .unwrap_or(false);
        if starts_word || prev_complete_cjk || (this_cjk && cur.is_some()) {
            if let Some(p) = cur.take() {
                p.finish(&mut out);
            }
        }
        match cur.as_mut() {
            Some(p) => {
                p.bytes.extend_from_slice(&t.bytes);
                p.end_ms = t.end_ms;
                p.probs.push(t.probability);
            }
            None => {
                cur = Some(Pending {
                    bytes: t.bytes.clone(),
                    start_ms: t.start_ms,
                    end_ms: t.end_ms,
                    probs: vec![t.probability],
                })
            }
        }
    }
    if let Some(p) = cur {
        p.finish(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(s: &[u8], t0: u64, t1: u64) -> TokenPiece {
        TokenPiece {
            bytes: s.to_vec(),
            start_ms: t0,
            end_ms: t1,
            probability: 0.9,
        }
    }

    #[test]
    fn english_words_join_subword_tokens_and_keep_times() {
        let words = group(&[
            tok(b" Hel", 0, 100),
            tok(b"lo", 100, 200),
            tok(b",", 200, 210),
            tok(b" world", 300, 600),
        ]);
        let texts: Vec<_> = words.iter().map(|w| w.text.as_str()).collect();
        assert_eq!(texts, ["Hello,", "world"]);
        assert_eq!((words[0].start_ms, words[0].end_ms), (0, 210));
        assert_eq!((words[1].start_ms, words[1].end_ms), (300, 600));
    }

    #[test]
    fn chinese_characters_split_across_tokens_are_rebuilt_one_word_each() {
        // 您 = E6 82 A8 split over two tokens, then 好 whole.
        let words = group(&[
            tok(&[0xE6, 0x82], 0, 50),
            tok(&[0xA8], 50, 100),
            tok("好".as_bytes(), 100, 200),
        ]);
        let texts: Vec<_> = words.iter().map(|w| w.text.as_str()).collect();
        assert_eq!(texts, ["您", "好"]);
        assert_eq!(words[0].end_ms, 100);
    }
}
