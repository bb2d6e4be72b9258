//! Whisper's language tokens, in token order: language `i` is token `<|startoftranscript|> + 1 + i`.
//! The original models know the first 99; large-v3 and its descendants (turbo, most recent
//! fine-tunes) added `yue` as the 100th, which is why their vocabulary has one more token.
//! whisper.cpp fixes the same table (`g_lang`) and derives the count from `n_vocab`.

/// Codes in token order (OpenAI's `whisper/tokenizer.py` `LANGUAGES`).
pub const LANGUAGES: [&str; 100] = [
    "en", "zh", "de", "es", "ru", "ko", "fr", "ja", "pt", "tr", "pl", "ca", "nl", "ar", "sv", "it",
    "id", "hi", "fi", "vi", "he", "uk", "el", "ms", "cs", "ro", "da", "hu", "ta", "no", "th", "ur",
    "hr", "bg", "lt", "la", "mi", "ml", "cy", "sk", "te", "fa", "lv", "bn", "sr", "az", "sl", "kn",
    "et", "mk", "br", "eu", "is", "hy", "ne", "mn", "bs", "kk", "sq", "sw", "gl", "mr", "pa", "si",
    "km", "sn", "yo", "so", "af", "oc", "ka", "be", "tg", "sd", "gu", "am", "yi", "lo", "uz", "fo",
    "ht", "ps", "tk", "nn", "mt", "sa", "lb", "my", "bo", "tl", "mg", "as", "tt", "haw", "ln",
    "ha", "ba", "jw", "su", "yue",
];

/// The language codes a model with `n_vocab` tokens has tokens for: none for an English-only
/// model (it is told nothing; `en` is implied), 99 for the original multilingual vocabulary,
/// 100 (with `yue`) for large-v3's.
pub fn languages_of(n_vocab: i32) -> &'static [&'static str] {
    if n_vocab < 51865 {
        return &[];
    }
    let n = (n_vocab - 51765 - 1).clamp(0, LANGUAGES.len() as i32) as usize;
    &LANGUAGES[..n]
}

/// Whether a model with `n_vocab` tokens can be told to decode `language` (`en` for an
/// English-only model, `auto` for any multilingual one).
pub fn model_knows_language(n_vocab: i32, language: &str) -> bool {
    let langs = languages_of(n_vocab);
    if langs.is_empty() {
        return language == "en";
    }
    language == "auto" || langs.contains(&language)
}

/// The vocabulary size of model `name`: read from its file when installed, else what the
/// catalogue says it will be once pulled (`None`: neither).
pub fn model_n_vocab(
    store: &crate::ModelStore,
    catalogue: &crate::Catalogue,
    name: &str,
) -> Option<i32> {
    if let Some(installed) = store.installed(name) {
        return crate::ggml::inspect(&installed.path)
            .ok()
            .map(|i| i.hparams.n_vocab);
    }
    let entry = catalogue.get(name).ok()?;
    Some(if entry.multilingual { 51865 } else { 51864 })
}

/// Why a model with `n_vocab` tokens cannot decode `language`, or `None` if it can.
pub fn language_problem(n_vocab: i32, language: &str) -> Option<String> {
    if model_knows_language(n_vocab, language) {
        return None;
    }
    let langs = languages_of(n_vocab);
    Some(match langs.len() {
        0 => "the model is English-only".to_owned(),
        n if LANGUAGES[n..].contains(&language) => format!(
            "the model knows {n} languages, not '{language}', which only large-v3-family \
             vocabularies (100 languages) have"
        ),
        n => format!("the model's {n} languages do not include '{language}'"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_v3_has_yue_and_base_does_not() {
        assert_eq!(languages_of(51864), &[] as &[&str]);
        assert_eq!(languages_of(51865).len(), 99);
        assert_eq!(languages_of(51866).len(), 100);
        assert!(model_knows_language(51866, "yue"));
        assert!(!model_knows_language(51865, "yue"));
        assert!(model_knows_language(51865, "zh"));
        assert!(model_knows_language(51864, "en"));
        assert!(!model_knows_language(51864, "zh"));
        assert!(model_knows_language(51865, "auto"));
        assert!(language_problem(51865, "yue").unwrap().contains("large-v3"));
        assert!(language_problem(51864, "zh")
            .unwrap()
            .contains("English-only"));
        assert_eq!(language_problem(51866, "yue"), None);
    }
}
