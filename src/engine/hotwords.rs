//! Biasing whisper's decoder toward listed terms (product and plan names) by token-prefix
//! boosting in whisper.cpp's logits-filter callback.
//!
//! A term is tokenised the ways it can appear (after a space and not); at every decoding
//! step, if the text tokens decoded so far end with the first k tokens of a term, the logit
//! of its token k+1 is raised by the term's weight, so a term once begun is likely to be
//! finished as written. Starting a term gets only a fraction of the weight
//! ([`START_FRACTION`]): a strong push on every first token would make whisper say the term
//! where it was not spoken. The prompt carries the terms too (`decode.hotword_prompt`), and
//! on our fixtures that is what makes whisper begin them at all; because a prompt also
//! changes the rest of the text, the prompted decode is kept only where it finds a term
//! (`Worker::transcribe`). BENCHMARKS.md has the figures, including weights that hurt.

use serde::{Deserialize, Serialize};
use std::os::raw::{c_int, c_void};

/// A term to favour and how strongly (added to the logit; 1–3 is a useful range).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hotword {
    pub term: String,
    #[serde(default = "default_weight")]
    pub weight: f32,
}

fn default_weight() -> f32 {
    2.0
}

impl std::str::FromStr for Hotword {
    type Err = String;
    /// `term` or `term:weight` (command-line form).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (term, weight) = match s.rsplit_once(':') {
            Some((t, w)) => (
                t,
                w.trim()
                    .parse::<f32>()
                    .map_err(|_| format!("hotword '{s}': weight '{w}' is not a number"))?,
            ),
            None => (s, default_weight()),
        };
        if term.trim().is_empty() {
            return Err(format!("hotword '{s}' has no term"));
        }
        if !(weight.is_finite() && weight > 0.0 && weight <= 10.0) {
            return Err(format!("hotword '{s}': weight must be in (0, 10]"));
        }
        Ok(Hotword {
            term: term.trim().to_owned(),
            weight,
        })
    }
}

/// Share of a term's weight given to its first token (see the module comment).
pub const START_FRACTION: f32 = 0.25;

/// A term as text is searched for it: trimmed and lower-case; `None` for a blank term.
pub(crate) fn match_key(h: &Hotword) -> Option<String> {
    let t = h.term.trim().to_lowercase();
    (!t.is_empty()).then_some(t)
}

/// How many of the terms occur in `text` (case-insensitive).
pub fn found(text: &str, hotwords: &[Hotword]) -> usize {
    let text = text.to_lowercase();
    hotwords
        .iter()
        .filter(|h| match_key(h).is_some_and(|t| text.contains(&t)))
        .count()
}

/// Whether the prompted decode's text replaces the first one: it has more of the terms, and
/// none of its sentences is the term list echoed. On a Mandarin test call the prompted decode
/// wrote "话费、退款、套餐。话费、退款、套餐。" for "我上周买的耳机还没有收到", and the bare
/// count (3 terms against 0) kept it. A sentence of two or more terms and nothing else is
/// taken for the prompt, not speech; a one-word answer that is a term ("退款。") still counts.
pub fn prefer_prompted(first: &str, second: &str, hotwords: &[Hotword]) -> bool {
    let echoed = second
        .split(['。', '？', '！', '.', '?', '!', '\n'])
        .any(|sentence| is_term_list(sentence, hotwords));
    !echoed && found(second, hotwords) > found(first, hotwords)
}

/// Two or more term occurrences and nothing else but punctuation and spaces.
fn is_term_list(sentence: &str, hotwords: &[Hotword]) -> bool {
    let mut rest = sentence.to_lowercase();
    let mut count = 0;
    for t in hotwords.iter().filter_map(match_key) {
        count += rest.matches(t.as_str()).count();
        rest = rest.replace(t.as_str(), " ");
    }
    count >= 2 && !rest.chars().any(char::is_alphanumeric)
}

/// The decoder prompt with the terms appended: whisper copies spellings it has seen in its
/// context, which is what makes it begin an unknown word the listed way.
pub fn prompt_with_terms(prompt: Option<&str>, hotwords: &[Hotword]) -> Option<String> {
    let prompt = prompt.map(str::trim).filter(|p| !p.is_empty());
    if hotwords.is_empty() {
        return prompt.map(str::to_owned);
    }
    let mut terms: Vec<&str> = Vec::new();
    for h in hotwords {
        let t = h.term.trim();
        if !t.is_empty() && !terms.contains(&t) {
            terms.push(t);
        }
    }
    let cjk = terms.iter().any(|t| t.chars().any(|c| c as u32 >= 0x2E80));
    let list = terms.join(if cjk { "、" } else { ", " });
    Some(match prompt {
        Some(p) => format!("{p} {list}{}", if cjk { "。" } else { "." }),
        None => format!("{list}{}", if cjk { "。" } else { "." }),
    })
}

/// Hotwords as token sequences for one model's vocabulary.
#[derive(Debug, Default)]
pub struct Bias {
    sequences: Vec<(Vec<i32>, f32)>,
    /// First special token: ids at or above it are not text.
    eot: i32,
    n_vocab: usize,
}

impl Bias {
    /// `tokenize` maps text to the model's token ids.
    pub fn new(
        hotwords: &[Hotword],
        eot: i32,
        n_vocab: usize,
        tokenize: &dyn Fn(&str) -> Option<Vec<i32>>,
    ) -> Self {
        let mut sequences: Vec<(Vec<i32>, f32)> = Vec::new();
        for h in hotwords {
            let term = h.term.trim();
            for form in [format!(" {term}"), term.to_owned()] {
                if let Some(toks) = tokenize(&form).filter(|t| !t.is_empty()) {
                    if !sequences.iter().any(|(s, _)| *s == toks) {
                        sequences.push((toks, h.weight));
                    }
                }
            }
        }
        Self {
            sequences,
            eot,
            n_vocab,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.sequences.is_empty()
    }

    /// Adds the boosts for the next token given the text tokens decoded so far.
    pub fn apply(&self, decoded: &[i32], logits: &mut [f32]) {
        for (seq, weight) in &self.sequences {
            // Longest prefix of the term that the decoded text ends with.
            let longest = (1..seq.len())
                .rev()
                .find(|&k| decoded.len() >= k && decoded[decoded.len() - k..] == seq[..k]);
            let (next, boost) = match longest {
                Some(k) => (seq[k], *weight),
                None => (seq[0], weight * START_FRACTION),
            };
            if let Some(l) = usize::try_from(next).ok().and_then(|i| logits.get_mut(i)) {
                if l.is_finite() {
                    *l += boost;
                }
            }
        }
    }

    /// whisper.cpp's logits-filter callback; `user_data` points at a live `Bias`.
    ///
    /// # Safety
    /// whisper.cpp passes `n_tokens` valid token records and `n_vocab` logits; `user_data`
    /// is the `Bias` set with the callback and outlives the `whisper_full` call.
    pub unsafe extern "C" fn callback(
        _ctx: *mut whisper_rs::WhisperSysContext,
        _state: *mut whisper_rs::WhisperSysState,
        tokens: *const whisper_rs::WhisperTokenData,
        n_tokens: c_int,
        logits: *mut f32,
        user_data: *mut c_void,
    ) {
        if user_data.is_null() || logits.is_null() {
            return;
        }
        let bias = &*(user_data as *const Bias);
        let tokens = if tokens.is_null() || n_tokens <= 0 {
            &[][..]
        } else {
            std::slice::from_raw_parts(tokens, n_tokens as usize)
        };
        let decoded: Vec<i32> = tokens
            .iter()
            .map(|t| t.id)
            .filter(|&id| id < bias.eot)
            .collect();
        let logits = std::slice::from_raw_parts_mut(logits, bias.n_vocab);
        // A panic must not unwind into C.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            bias.apply(&decoded, logits)
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bias() -> Bias {
        // A toy vocabulary: " Zen"=1, "trix"=2, "Zen"=3, " plan"=4.
        let tok = |s: &str| match s {
            " Zentrix" => Some(vec![1, 2]),
            "Zentrix" => Some(vec![3, 2]),
            _ => None,
        };
        Bias::new(
            &[Hotword {
                term: "Zentrix".into(),
                weight: 2.0,
            }],
            100,
            8,
            &tok,
        )
    }

    #[test]
    fn a_begun_term_is_pushed_to_completion() {
        let b = bias();
        let mut logits = vec![0.0; 8];
        b.apply(&[7, 1], &mut logits);
        assert_eq!(logits[2], 2.0, "after ' Zen' comes 'trix' at full weight");
        assert_eq!(
            logits[3], 0.5,
            "the other form may still start, at a quarter"
        );
    }

    #[test]
    fn starting_a_term_gets_a_fraction_only() {
        let b = bias();
        let mut logits = vec![0.0; 8];
        b.apply(&[], &mut logits);
        assert_eq!((logits[1], logits[3], logits[2]), (0.5, 0.5, 0.0));
    }

    #[test]
    fn terms_are_found_case_insensitively_and_prompts_list_them_once() {
        let h = |t: &str| Hotword {
            term: t.into(),
            weight: 2.0,
        };
        let hw = [h("Zentrix"), h("畅享套餐"), h("Zentrix")];
        assert_eq!(found("the zentrix plan", &hw), 2, "each listed term counts");
        assert_eq!(found("办理畅享套餐", &hw[1..2]), 1);
        assert_eq!(
            prompt_with_terms(Some("Hello."), &hw[..1]).as_deref(),
            Some("Hello. Zentrix.")
        );
        assert_eq!(
            prompt_with_terms(None, &hw).as_deref(),
            Some("Zentrix、畅享套餐。")
        );
        assert_eq!(prompt_with_terms(Some(" "), &[]), None);
    }

    #[test]
    fn a_prompted_decode_is_kept_for_more_terms_but_not_for_the_term_list_echoed() {
        let terms: Vec<Hotword> = ["话费", "退款", "套餐"]
            .iter()
            .map(|t| Hotword {
                term: (*t).into(),
                weight: 1.0,
            })
            .collect();
        // 划费 heard, 话费 written: kept.
        assert!(prefer_prompted(
            "我这个月的划费被扣了两次",
            "我这个月的话费被扣了两次",
            &terms,
        ));
        // The term list echoed in place of a sentence.
        assert!(!prefer_prompted(
            "我上周买的二key，我没有收到。",
            "话费、退款、套餐。话费、退款、套餐。",
            &terms,
        ));
        // One term as the whole answer is speech, not an echo.
        assert!(prefer_prompted("腿宽。", "退款。", &terms));
        // No more terms than before: the first text stays.
        assert!(!prefer_prompted("退款", "退款", &terms));
    }

    #[test]
    fn suppressed_tokens_stay_suppressed() {
        let b = bias();
        let mut logits = vec![f32::NEG_INFINITY; 8];
        b.apply(&[1], &mut logits);
        assert!(logits.iter().all(|l| *l == f32::NEG_INFINITY));
    }
}
