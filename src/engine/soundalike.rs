//! Whether a first decode heard something that sounds like a hotword it did not write.
//!
//! A call with hotwords is decoded a second time with the terms in the prompt, and that text
//! is kept only where it finds a term the first one lacks (`Worker::transcribe`). The second
//! decode can only help where whisper heard the term and wrote it another way ("Zen tricks"
//! for Zentrix, 花费 for 话费): where nothing in the first text sounds like a missing term, it
//! would cost a whole decode to change nothing. Every Mandarin adapter lists everyday terms
//! (话费, 退款, 套餐), so without this check every Mandarin call paid two decodes.
//!
//! "Sounds like" is deliberately loose: a false alarm costs one decode, a miss costs the term.
//! - Latin terms: one to three consecutive words of the text, joined, within an edit distance
//!   of 40 % of the term's length, after folding spellings of one sound together (c/k, z/s,
//!   ks/x, y/i, double letters), so that "Zen tricks" is near Zentrix.
//! - Chinese terms: a run of as many Han characters whose toneless pinyin matches the term's
//!   syllable by syllable (any reading of a polyphonic character), up to one syllable in three
//!   wrong, with the initials and finals that southern accents and telephone audio merge
//!   (zh/z, ch/c, sh/s, n/l, f/h, -ng/-n) counted as the same.
//! - Terms mixing scripts are always worth the second decode.

use super::hotwords::{match_key, Hotword};
use pinyin::ToPinyinMulti;

/// One unit of sound: a Latin word (lower-case letters and digits) or a Han character (its
/// readings, folded).
#[derive(Debug, Clone, PartialEq)]
enum Unit {
    Word(String),
    Han(Vec<String>),
}

/// Words per candidate when matching a Latin term: "Orbi sync", "or bee sink".
const MAX_WORDS: usize = 3;

/// The terms missing from `text` that something in it sounds like.
pub fn near_misses<'a>(text: &str, hotwords: &'a [Hotword]) -> Vec<&'a Hotword> {
    let lower = text.to_lowercase();
    let heard = units(text);
    hotwords
        .iter()
        .filter(|h| {
            match_key(h)
                .is_some_and(|term| !lower.contains(&term) && sounds_present(&units(&term), &heard))
        })
        .collect()
}

fn sounds_present(term: &[Unit], text: &[Unit]) -> bool {
    let han = term.iter().filter(|u| matches!(u, Unit::Han(_))).count();
    if term.is_empty() || (han > 0 && han < term.len()) {
        return true;
    }
    if han > 0 {
        han_near(term, text)
    } else {
        latin_near(term, text)
    }
}

fn han_near(term: &[Unit], text: &[Unit]) -> bool {
    let allowed = term.len() / 3;
    text.windows(term.len()).any(|w| {
        let mut wrong = 0;
        for (t, u) in term.iter().zip(w) {
            match (t, u) {
                (Unit::Han(a), Unit::Han(b)) if a.iter().any(|r| b.contains(r)) => {}
                (Unit::Han(_), Unit::Han(_)) => wrong += 1,
                _ => return false,
            }
        }
        wrong <= allowed
    })
}

fn latin_near(term: &[Unit], text: &[Unit]) -> bool {
    let letters = fold_latin(
        &term
            .iter()
            .filter_map(|u| match u {
                Unit::Word(w) => Some(w.as_str()),
                Unit::Han(_) => None,
            })
            .collect::<String>(),
    );
    let n = letters.chars().count();
    let allowed = (n * 2 / 5).max(1);
    for start in 0..text.len() {
        let mut candidate = String::new();
        for u in text[start..].iter().take(MAX_WORDS) {
            let Unit::Word(w) = u else { break };
            candidate.push_str(w);
            let folded = fold_latin(&candidate);
            let len = folded.chars().count();
            if len > n + allowed {
                break;
            }
            if len + allowed >= n && strsim::levenshtein(&folded, &letters) <= allowed {
                return true;
            }
        }
    }
    false
}

fn units(text: &str) -> Vec<Unit> {
    let mut out = Vec::new();
    let mut word = String::new();
    for (c, readings) in text.chars().zip(text.to_pinyin_multi()) {
        if let Some(multi) = readings {
            if !word.is_empty() {
                out.push(Unit::Word(std::mem::take(&mut word)));
            }
            let mut r: Vec<String> = multi.into_iter().map(|p| fold(p.plain())).collect();
            r.dedup();
            out.push(Unit::Han(r));
        } else if c.is_alphanumeric() {
            word.extend(c.to_lowercase());
        } else if !word.is_empty() {
            out.push(Unit::Word(std::mem::take(&mut word)));
        }
    }
    if !word.is_empty() {
        out.push(Unit::Word(word));
    }
    out
}

/// Latin letters with spellings of one sound folded together, English-style.
fn fold_latin(word: &str) -> String {
    let mut s = word.to_owned();
    for (from, to) in [
        ("cks", "x"),
        ("ks", "x"),
        ("cs", "x"),
        ("ck", "k"),
        ("ph", "f"),
        ("qu", "kw"),
        ("c", "k"),
        ("z", "s"),
        ("y", "i"),
    ] {
        s = s.replace(from, to);
    }
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if !out.ends_with(c) {
            out.push(c);
        }
    }
    out
}

/// A toneless syllable with the sounds that accents merge folded together.
fn fold(syllable: &str) -> String {
    let s = syllable
        .strip_prefix("zh")
        .map(|r| format!("z{r}"))
        .or_else(|| syllable.strip_prefix("ch").map(|r| format!("c{r}")))
        .or_else(|| syllable.strip_prefix("sh").map(|r| format!("s{r}")))
        .or_else(|| {
            // n/l, but not the syllable "ng" (嗯), which has no initial.
            syllable
                .strip_prefix('n')
                .filter(|r| !r.starts_with('g'))
                .map(|r| format!("l{r}"))
        })
        .or_else(|| syllable.strip_prefix('f').map(|r| format!("h{r}")))
        .unwrap_or_else(|| syllable.to_owned());
    match s.strip_suffix("ng") {
        Some(r) if !r.is_empty() => format!("{r}n"),
        _ => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(t: &[&str]) -> Vec<Hotword> {
        t.iter()
            .map(|t| Hotword {
                term: (*t).to_owned(),
                weight: 1.0,
            })
            .collect()
    }

    fn misses(text: &str, t: &[&str]) -> Vec<String> {
        near_misses(text, &terms(t))
            .into_iter()
            .map(|h| h.term.clone())
            .collect()
    }

    #[test]
    fn latin_terms_heard_as_other_words_are_near_misses() {
        let t = ["Zentrix", "Orbisync", "Kestrava", "Quibly"];
        assert_eq!(
            misses("I'd like the Zen tricks unlimited plan.", &t),
            ["Zentrix"]
        );
        assert_eq!(
            misses("charged twice for Orbi sink cloud storage", &t),
            ["Orbisync"]
        );
        assert_eq!(misses("your Castrava points stay", &t), ["Kestrava"]);
        // Written as listed: nothing to gain from a second decode.
        assert!(misses("the Zentrix plan and Quibly", &t).is_empty());
        // A call about something else entirely.
        assert!(misses("my parcel has not arrived yet, can you check?", &t).is_empty());
    }

    #[test]
    fn chinese_terms_match_by_toneless_pinyin_with_accent_merges() {
        let t = ["话费", "退款", "套餐"];
        // 花费 huafei for 话费 huafei: same syllables, other tones and characters.
        assert_eq!(misses("我这个月的花费被扣了两次", &t), ["话费"]);
        // 腿宽 tuikuan: a mishearing with the same sound.
        assert_eq!(misses("我马上为您办理腿宽", &t), ["退款"]);
        // Already written right, or nothing like the terms.
        assert!(misses("我这个月的话费被扣了两次，请退款。", &t).is_empty());
        assert!(misses("您好，欢迎致电客服中心，请问有什么可以帮您？", &t).is_empty());
        // zh/z and -ng/-n: 张 zhang heard as 赞 zan.
        assert_eq!(misses("赞三", &["张三"]), ["张三"]);
        assert_eq!(fold("zhang"), "zan");
        assert_eq!(fold("ning"), "lin");
        assert_eq!(fold("ng"), "ng");
        assert_eq!(fold_latin("zentricks"), fold_latin("zentrix"));
    }

    #[test]
    fn mixed_script_terms_are_always_tried() {
        assert_eq!(misses("nothing alike", &["5G套餐"]), ["5G套餐"]);
    }
}
