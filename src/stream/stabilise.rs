//! Interim stability by local agreement: the prefix on which two consecutive decodes of the
//! growing utterance agree is committed, and a committed prefix is never taken back.
//!
//! Text is compared in units: a whitespace-separated word, or a single CJK character (Chinese
//! has no spaces, and whisper's Chinese output changes character by character). Units keep
//! their leading whitespace so that joining them gives back the original text.

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
}
