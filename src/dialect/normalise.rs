//! Raw whisper text → standard written Chinese: dialect lexicon, script, punctuation width.
//!
//! The order matters: the lexicon runs first, on the characters whisper wrote, because
//! dialect words are usually written in traditional characters (係, 嘅) whose simplified
//! forms are ordinary Mandarin words with other meanings (系 "department"); converting the
//! script first would make them ambiguous. Script conversion uses zhconv (MediaWiki +
//! OpenCC rule sets). Punctuation width is a dozen code points, so it is written here
//! rather than pulled in through full Unicode normalisation (NFKC would also rewrite
//! characters standard Chinese keeps full-width, such as 。and 、).

use super::profile::{LexiconEntry, NormaliseSpec, Punctuation, Script};
use aho_corasick::{AhoCorasick, MatchKind};

/// A compiled normalisation chain for one adapter.
#[derive(Debug, Clone)]
pub struct Normaliser {
    lexicon: Option<(AhoCorasick, Vec<String>)>,
    script: Script,
    punctuation: Punctuation,
}

impl Normaliser {
    pub fn new(spec: &NormaliseSpec) -> Result<Self, String> {
        let lexicon = if spec.lexicon.is_empty() {
            None
        } else {
            let froms: Vec<&str> = spec.lexicon.iter().map(|e| e.from.as_str()).collect();
            let ac = AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(&froms)
                .map_err(|e| format!("lexicon cannot be compiled: {e}"))?;
            let tos = spec
                .lexicon
                .iter()
                .map(|e: &LexiconEntry| e.to.clone())
                .collect();
            Some((ac, tos))
        };
        Ok(Self {
            lexicon,
            script: spec.script,
            punctuation: spec.punctuation,
        })
    }

    /// The normalised form of `raw`.
    pub fn apply(&self, raw: &str) -> String {
        let mut text = match &self.lexicon {
            Some((ac, tos)) => ac.replace_all(raw, tos),
            None => raw.to_owned(),
        };
        text = match self.script {
            Script::Simplified => zhconv::zhconv(&text, zhconv::Variant::ZhHans),
            Script::Traditional => zhconv::zhconv(&text, zhconv::Variant::ZhHant),
            Script::Keep => text,
        };
        match self.punctuation {
            Punctuation::Fullwidth => to_fullwidth_punctuation(&text),
            Punctuation::Halfwidth => to_halfwidth(&text),
            Punctuation::Keep => text,
        }
    }
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3400..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FFFF | 0x3040..=0x30FF)
}

/// Chinese text takes full-width marks; letters and digits stay (or become) half-width, as
/// the national standard GB/T 15834 writes them. ASCII marks next to Latin text are left
/// alone, so "3.5 GB" and "e.g." survive.
fn to_fullwidth_punctuation(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let prev = out.chars().last();
        let next = chars[i + 1..].iter().copied().find(|c| *c != ' ');
        let cjk_before = prev.is_some_and(is_cjk);
        let cjk_around = cjk_before || next.is_some_and(is_cjk);
        let full = match c {
            ',' if cjk_around => Some('，'),
            '?' if cjk_around => Some('？'),
            '!' if cjk_around => Some('！'),
            ':' if cjk_around => Some('：'),
            ';' if cjk_around => Some('；'),
            '.' if cjk_before => Some('。'),
            // Full-width letters and digits → ASCII.
            '\u{FF10}'..='\u{FF19}' | '\u{FF21}'..='\u{FF3A}' | '\u{FF41}'..='\u{FF5A}' => {
                char::from_u32(c as u32 - 0xFEE0)
            }
            _ => None,
        };
        match full {
            Some(f) => {
                out.push(f);
                if f as u32 > 0x3000 {
                    // A full-width mark carries its own spacing.
                    while chars.get(i + 1) == Some(&' ') {
                        i += 1;
                    }
                }
            }
            None => {
                // Whisper sometimes spaces Chinese clauses: no spaces between CJK characters.
                if c == ' '
                    && prev.is_some_and(|p| is_cjk(p) || is_fullwidth_mark(p))
                    && next.is_some_and(is_cjk)
                {
                    i += 1;
                    continue;
                }
                out.push(c);
            }
        }
        i += 1;
    }
    out
}

fn is_fullwidth_mark(c: char) -> bool {
    matches!(c, '，' | '。' | '？' | '！' | '：' | '；' | '、')
}

/// Every full-width form to its ASCII counterpart (English adapters, downstreams that want
/// ASCII only).
fn to_halfwidth(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\u{FF01}'..='\u{FF5E}' => {
                out.push(char::from_u32(c as u32 - 0xFEE0).unwrap_or(c));
                if matches!(c, '，' | '？' | '！' | '：' | '；') {
                    out.push(' ');
                }
            }
            '。' => out.push_str(". "),
            '、' => out.push_str(", "),
            '\u{3000}' => out.push(' '),
            _ => out.push(c),
        }
    }
    let trimmed = out.trim_end().len();
    out.truncate(trimmed);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cantonese() -> Normaliser {
        let entry = |from: &str, to: &str| LexiconEntry {
            from: from.into(),
            to: to.into(),
            source: "test".into(),
        };
        Normaliser::new(&NormaliseSpec {
            script: Script::Simplified,
            punctuation: Punctuation::Fullwidth,
            lexicon: vec![
                entry("嘅", "的"),
                entry("唔", "不"),
                entry("係", "是"),
                entry("佢", "他"),
                entry("佢哋", "他们"),
                entry("唔得", "不行"),
            ],
        })
        .unwrap()
    }

    #[test]
    fn lexicon_then_script_then_punctuation() {
        let n = cantonese();
        assert_eq!(
            n.apply("我想退貨, 佢哋話唔得."),
            "我想退货，他们话不行。",
            "longest lexicon match (佢哋 before 佢, 唔得 before 唔), t2s, full-width marks"
        );
        assert_eq!(n.apply("呢部電話係我嘅"), "呢部电话是我的");
    }

    #[test]
    fn the_lexicon_runs_before_script_conversion() {
        // 係 → 是 by the lexicon; had t2s run first it would have become 系 and stayed.
        assert_eq!(cantonese().apply("佢係經理"), "他是经理");
    }

    #[test]
    fn latin_punctuation_and_numbers_survive_fullwidth_mode() {
        let n = cantonese();
        assert_eq!(n.apply("套餐 3.5 GB, ok?"), "套餐 3.5 GB, ok?");
        assert_eq!(n.apply("ＡＢＣ１２３元"), "ABC123元");
    }

    #[test]
    fn halfwidth_mode_for_ascii_downstreams() {
        let n = Normaliser::new(&NormaliseSpec {
            script: Script::Keep,
            punctuation: Punctuation::Halfwidth,
            lexicon: vec![],
        })
        .unwrap();
        assert_eq!(n.apply("好的，谢谢！"), "好的, 谢谢!");
        assert_eq!(n.apply("Hello, world."), "Hello, world.");
    }

    #[test]
    fn traditional_target() {
        let n = Normaliser::new(&NormaliseSpec {
            script: Script::Traditional,
            punctuation: Punctuation::Keep,
            lexicon: vec![],
        })
        .unwrap();
        assert_eq!(n.apply("这部电话"), "這部電話");
    }
}
