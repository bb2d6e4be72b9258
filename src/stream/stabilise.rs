//! Interim stability by local agreement: the prefix on which two consecutive decodes of the
//! growing utterance agree is committed, and a committed prefix is never taken back, not even
//! by the utterance's final: [`keep_committed`] splices the final decode's text after the
//! committed prefix, as LocalAgreement streaming systems output what they committed and let
//! the last decode supply only what follows.
//!
//! Text is compared in units: a whitespace-separated word, or a single CJK character (Chinese
//! has no spaces, and whisper's Chinese output changes character by character). Units keep
//! their leading whitespace so that joining them gives back the original text.

use crate::engine::Word;

/// What an interim result shows for the utterance so far.
#[derive(Debug, Clone, PartialEq)]
pub struct Interim {
    /// The whole hypothesis: `stable_text` followed by the unstable rest.
    pub text: String,
    /// Committed prefix; every later interim of the same utterance starts with it.
    pub stable_text: String,
    /// Share of `text` (characters) that is stable, 0–1.
    pub stability: f32,
}

/// Per-utterance LocalAgreement-2 state for one channel.
#[derive(Debug, Default)]
pub struct Stabiliser {
    committed: Vec<String>,
    previous: Vec<String>,
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF      // kana
        | 0x3400..=0x4DBF    // CJK extension A
        | 0x4E00..=0x9FFF    // CJK unified ideographs
        | 0xF900..=0xFAFF    // compatibility ideographs
        | 0x3000..=0x303F    // CJK punctuation
        | 0xFF00..=0xFFEF    // full-width forms
        | 0x20000..=0x2FA1F) // extensions B–F
}

/// Splits text into comparison units, each carrying its leading whitespace.
pub fn units(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut pending_space = String::new();
    for c in text.chars() {
        if c.is_whitespace() {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            pending_space.push(c);
        } else if is_cjk(c) {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            let mut unit = std::mem::take(&mut pending_space);
            unit.push(c);
            out.push(unit);
        } else {
            if current.is_empty() {
                current = std::mem::take(&mut pending_space);
            }
            current.push(c);
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn same(a: &str, b: &str) -> bool {
    a.trim() == b.trim()
}

impl Stabiliser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets the utterance: the next update starts a new one.
    pub fn reset(&mut self) {
        self.committed.clear();
        self.previous.clear();
    }

    /// The committed prefix: the `stable_text` of the last interim this utterance showed.
    pub fn stable_text(&self) -> String {
        self.committed.concat()
    }

    /// Takes the newest decode of the utterance so far and returns what to show.
    pub fn update(&mut self, hypothesis: &str) -> Interim {
        let current = units(hypothesis.trim());
        let agreed = self
            .previous
            .iter()
            .zip(&current)
            .take_while(|(a, b)| same(a, b))
            .count();
        // Commit what two decodes agree on, but only by extending the committed prefix:
        // what was committed once is never rewritten.
        let extends = agreed > self.committed.len()
            && self.committed.iter().zip(&current).all(|(a, b)| same(a, b));
        if extends {
            self.committed = current[..agreed].to_vec();
        }
        self.previous = current.clone();
        let stable_text: String = self.committed.concat();
        let rest: String = current
            .get(self.committed.len()..)
            .map(|r| r.concat())
            .unwrap_or_default();
        let text = format!("{stable_text}{rest}");
        let total = text.chars().count();
        Interim {
            stability: if total == 0 {
                0.0
            } else {
                stable_text.chars().count() as f32 / total as f32
            },
            stable_text,
            text,
        }
    }
}

/// What a unit or word is compared by: its letters and digits, lower-cased, so that case and
/// punctuation ("Thank you." against "Thank you,") are no disagreement; a unit of punctuation
/// alone is compared as written.
fn key(unit: &str) -> String {
    let k: String = unit
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect();
    if k.is_empty() {
        unit.trim().to_owned()
    } else {
        k
    }
}

/// Lines the final decode's units up with the committed ones by edit distance on [`key`]s:
/// how many leading decoded units the committed prefix stands for, and for each committed
/// unit the decoded unit it was aligned with (`None`: the final has no counterpart).
///
/// The committed prefix ends where it aligns best with a prefix of the decode; between equally
/// good ends the one nearest the committed length wins, so a rewrite ("I am" → "I'm") costs the
/// words it rewrote and no more.
fn align(committed: &[String], decoded: &[String]) -> (usize, Vec<Option<usize>>) {
    let (n, m) = (committed.len(), decoded.len());
    let c: Vec<String> = committed.iter().map(|u| key(u)).collect();
    let d: Vec<String> = decoded.iter().map(|u| key(u)).collect();
    // cost[i][j]: committed[..i] against decoded[..j].
    let mut cost = vec![vec![0usize; m + 1]; n + 1];
    for (i, row) in cost.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, c) in cost[0].iter_mut().enumerate() {
        *c = j;
    }
    for i in 1..=n {
        for j in 1..=m {
            let sub = cost[i - 1][j - 1] + usize::from(c[i - 1] != d[j - 1]);
            cost[i][j] = sub.min(cost[i - 1][j] + 1).min(cost[i][j - 1] + 1);
        }
    }
    let end = (0..=m)
        .min_by_key(|&j| (cost[n][j], j.abs_diff(n), j))
        .expect("0..=m is never empty");
    let mut matched = vec![None; n];
    let (mut i, mut j) = (n, end);
    // Back from the end: a match first, then a committed unit with no counterpart, then a
    // substitution, so that "I am" against "I'm" pairs "I" with "I'm" and leaves "am" over.
    while i > 0 {
        let diagonal =
            j > 0 && cost[i][j] == cost[i - 1][j - 1] + usize::from(c[i - 1] != d[j - 1]);
        if diagonal && c[i - 1] == d[j - 1] {
            matched[i - 1] = Some(j - 1);
            (i, j) = (i - 1, j - 1);
        } else if cost[i][j] == cost[i - 1][j] + 1 {
            i -= 1;
        } else if diagonal {
            matched[i - 1] = Some(j - 1);
            (i, j) = (i - 1, j - 1);
        } else {
            j -= 1;
        }
    }
    (end, matched)
}

/// The final's text with the committed prefix kept: `committed` (the last `stable_text` the
/// utterance's interims showed), then what `decoded` (the final decode, normalised like the
/// interims were) has after the units it aligns with the committed ones. Both must be in the
/// same written form (the adapter's), since what the client saw is what is kept.
pub fn keep_committed(committed: &str, decoded: &str) -> String {
    let committed = committed.trim();
    if committed.is_empty() {
        return decoded.trim().to_owned();
    }
    let decoded_units = units(decoded.trim());
    let (end, _) = align(&units(committed), &decoded_units);
    let tail: String = decoded_units[end..].concat();
    if tail.is_empty() {
        committed.to_owned()
    } else if tail.starts_with(char::is_whitespace) {
        // The decode's own spacing ("订单 status" keeps its space).
        format!("{committed}{tail}")
    } else {
        crate::engine::join_text(committed, &tail)
    }
}

/// The final's words to go with [`keep_committed`]'s text: one per committed unit, timed by
/// the final word it aligns with (a committed unit the final has no word for, as "am" against
/// "I'm", takes the zero-length moment where the previous one ends), then the final's words
/// after those. `words` are the final decode's; with none (word times off) there are none.
pub fn keep_committed_words(committed: &str, words: &[Word]) -> Vec<Word> {
    let committed = units(committed.trim());
    if committed.is_empty() || words.is_empty() {
        return words.to_vec();
    }
    let texts: Vec<String> = words.iter().map(|w| w.text.clone()).collect();
    let (end, matched) = align(&committed, &texts);
    let mut out: Vec<Word> = Vec::with_capacity(committed.len() + words.len() - end);
    for (unit, m) in committed.iter().zip(&matched) {
        let text = unit.trim().to_owned();
        match m {
            Some(j) => out.push(Word {
                text,
                ..words[*j].clone()
            }),
            None => {
                let at = out
                    .last()
                    .map(|w| w.end_ms)
                    .or_else(|| matched.iter().flatten().next().map(|&j| words[j].start_ms))
                    .unwrap_or(words[0].start_ms);
                out.push(Word {
                    text,
                    start_ms: at,
                    end_ms: at,
                    probability: 0.0,
                });
            }
        }
    }
    out.extend_from_slice(&words[end..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_cjk_characters_are_units_that_join_back() {
        assert_eq!(units("Hello world, ok"), vec!["Hello", " world,", " ok"]);
        assert_eq!(
            units("我想查询 order 12"),
            vec!["我", "想", "查", "询", " order", " 12"]
        );
        let text = "请问 my 订单 status？";
        assert_eq!(units(text).concat(), text);
    }

    #[test]
    fn agreement_between_two_decodes_is_committed() {
        let mut s = Stabiliser::new();
        let first = s.update("I would like");
        assert_eq!(
            first.stable_text, "",
            "one decode alone agrees with nothing"
        );
        assert_eq!(first.text, "I would like");
        let second = s.update("I would like to check");
        assert_eq!(second.stable_text, "I would like");
        assert_eq!(second.text, "I would like to check");
        assert!(second.stability > 0.5 && second.stability < 1.0);
    }

    #[test]
    fn the_committed_prefix_never_changes_even_when_a_decode_disagrees() {
        let mut s = Stabiliser::new();
        s.update("my order number is");
        let a = s.update("my order number is four");
        assert_eq!(a.stable_text, "my order number is");
        // A later decode rewrites an early word: the committed prefix stays, the rest follows.
        let b = s.update("my older number is four five");
        assert_eq!(b.stable_text, "my order number is");
        assert!(b.text.starts_with("my order number is"), "{b:?}");
        let c = s.update("my older number is four five six");
        assert_eq!(
            c.stable_text, "my order number is",
            "no extension off a rewritten base"
        );
        let mut history = vec![a, b, c];
        for d in [
            "my order number is four five six seven",
            "my order number is four five six seven",
        ] {
            history.push(s.update(d));
        }
        for pair in history.windows(2) {
            assert!(
                pair[1].stable_text.starts_with(&pair[0].stable_text),
                "{:?} then {:?}",
                pair[0],
                pair[1]
            );
        }
        assert_eq!(
            history.last().unwrap().stable_text,
            "my order number is four five six seven"
        );
    }

    #[test]
    fn chinese_commits_character_by_character() {
        let mut s = Stabiliser::new();
        s.update("我想查询订");
        let i = s.update("我想查询订单状态");
        assert_eq!(i.stable_text, "我想查询订");
        s.reset();
        assert_eq!(s.update("你好").stable_text, "");
    }

    fn word(text: &str, start_ms: u64, end_ms: u64) -> Word {
        Word {
            text: text.into(),
            start_ms,
            end_ms,
            probability: 0.9,
        }
    }

    #[test]
    fn a_final_that_rewrites_the_committed_prefix_keeps_it_and_supplies_the_rest() {
        // The two rewrites issue #23 saw on en_call_8k.
        assert_eq!(
            keep_committed("I am sorry to", "I'm sorry to fear that."),
            "I am sorry to fear that."
        );
        assert_eq!(
            keep_committed("Thank you. The", "Thank you, the particle is delayed."),
            "Thank you. The particle is delayed."
        );
        // Agreement changes nothing; nothing committed changes nothing.
        assert_eq!(
            keep_committed("my order", "my order number is four"),
            "my order number is four"
        );
        assert_eq!(keep_committed("", " Hello there. "), "Hello there.");
        // A final shorter than the commitment, or empty, still says what was committed.
        assert_eq!(keep_committed("one two three", "one two"), "one two three");
        assert_eq!(keep_committed("one two", ""), "one two");
        // Repeated words are not swallowed.
        assert_eq!(
            keep_committed("yes yes", "yes yes yes please"),
            "yes yes yes please"
        );
    }

    #[test]
    fn chinese_keeps_its_committed_characters_without_spaces() {
        assert_eq!(
            keep_committed("我想查询订", "我想查讯订单状态"),
            "我想查询订单状态"
        );
        assert_eq!(
            keep_committed("请问我的订单", "请问我的订单 status 呢"),
            "请问我的订单 status 呢"
        );
    }

    #[test]
    fn committed_words_take_the_times_of_the_final_words_they_align_with() {
        let words = [
            word("I'm", 0, 300),
            word("sorry", 300, 700),
            word("to", 700, 800),
            word("fear", 800, 1100),
            word("that.", 1100, 1400),
        ];
        let kept = keep_committed_words("I am sorry to", &words);
        let texts: Vec<_> = kept.iter().map(|w| w.text.as_str()).collect();
        assert_eq!(texts, ["I", "am", "sorry", "to", "fear", "that."]);
        assert_eq!((kept[0].start_ms, kept[0].end_ms), (0, 300));
        assert_eq!((kept[1].start_ms, kept[1].end_ms), (300, 300));
        assert_eq!((kept[2].start_ms, kept[2].end_ms), (300, 700));
        assert_eq!(kept[4], words[3]);
        for pair in kept.windows(2) {
            assert!(pair[0].start_ms <= pair[1].start_ms, "{kept:?}");
        }
        assert!(keep_committed_words("I am", &[]).is_empty());
        assert_eq!(keep_committed_words("", &words), words.to_vec());
    }
}
