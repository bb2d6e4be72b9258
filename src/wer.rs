//! Accuracy measures for tests, benchmarks and the comparison harness: word error rate for
//! languages written with spaces, character error rate for Chinese.
//!
//! Written here rather than taken from a crate: it is one edit-distance loop over tokens, and
//! the normalisation (case, punctuation, full-width forms) is the part that matters and is ours.

/// Lower-cases, maps punctuation to spaces, and splits into words.
pub fn normalise_words(text: &str) -> Vec<String> {
    text.chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' {
                c.to_lowercase().next().unwrap_or(c)
            } else {
                ' '
            }
        })
        .collect::<String>()
        .split_whitespace()
        .map(|w| w.trim_matches('\'').to_owned())
        .filter(|w| !w.is_empty())
        .collect()
}

/// Every non-space, non-punctuation character, lower-cased.
pub fn normalise_chars(text: &str) -> Vec<char> {
    text.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Levenshtein distance between two token sequences.
pub fn edit_distance<T: PartialEq>(reference: &[T], hypothesis: &[T]) -> usize {
    let mut prev: Vec<usize> = (0..=hypothesis.len()).collect();
    let mut cur = vec![0; hypothesis.len() + 1];
    for (i, r) in reference.iter().enumerate() {
        cur[0] = i + 1;
        for (j, h) in hypothesis.iter().enumerate() {
            let sub = prev[j] + usize::from(r != h);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[hypothesis.len()]
}

/// Word error rate of `hypothesis` against `reference` (0 = perfect; can exceed 1).
pub fn word_error_rate(reference: &str, hypothesis: &str) -> f64 {
    let r = normalise_words(reference);
    let h = normalise_words(hypothesis);
    if r.is_empty() {
        return if h.is_empty() { 0.0 } else { 1.0 };
    }
    edit_distance(&r, &h) as f64 / r.len() as f64
}

/// Character error rate (for Chinese, where words are not delimited).
pub fn char_error_rate(reference: &str, hypothesis: &str) -> f64 {
    let r = normalise_chars(reference);
    let h = normalise_chars(hypothesis);
    if r.is_empty() {
        return if h.is_empty() { 0.0 } else { 1.0 };
    }
    edit_distance(&r, &h) as f64 / r.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wer_ignores_case_and_punctuation_but_counts_edits() {
        assert_eq!(word_error_rate("Hello, world!", "hello world"), 0.0);
        assert_eq!(word_error_rate("a b c d", "a x c"), 0.5); // one substitution, one deletion
        assert_eq!(word_error_rate("", ""), 0.0);
        assert_eq!(word_error_rate("", "noise"), 1.0);
    }

    #[test]
    fn cer_counts_chinese_characters_without_punctuation() {
        assert_eq!(char_error_rate("您好，请问。", "您好请问"), 0.0);
        assert!((char_error_rate("我想退货", "我想退款") - 0.25).abs() < 1e-12);
    }
}
