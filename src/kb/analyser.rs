//! The text analyser the knowledge base indexes and queries with: jieba word segmentation
//! for Chinese, then lower-casing, English stop words and English (Snowball) stemming.
//!
//! One analyser for both languages, because calls mix them ("我的 iPhone 还没到") and a
//! segment does not say which language each word is in. jieba passes runs of Latin letters
//! and digits through as single tokens, so English text comes out as words, and the stemmer
//! leaves Chinese words alone.

use jieba_rs::Jieba;
use std::sync::{Arc, LazyLock};
use tantivy::tokenizer::{
    Language, LowerCaser, Stemmer, StopWordFilter, TextAnalyzer, Token, TokenStream, Tokenizer,
};

/// Name under which the analyser is registered with tantivy.
pub const ANALYSER: &str = "callscribe_zh_en";

/// jieba's dictionary takes ~0.3 s to load: once per process.
static JIEBA: LazyLock<Arc<Jieba>> = LazyLock::new(|| Arc::new(Jieba::new()));

/// Common function words of customer-service Chinese that match every article.
const ZH_STOP_WORDS: &[&str] = &[
    "的", "了", "我", "你", "您", "他", "她", "它", "我们", "你们", "他们", "是", "在", "有", "和",
    "就", "都", "也", "还", "吗", "呢", "吧", "啊", "呀", "这", "那", "这个", "那个", "个", "一",
    "一下", "请问", "好", "好的", "谢谢", "可以", "什么", "怎么", "为", "被", "把", "给", "要",
];

/// English function words and the small talk of every call ("thank you", "how can I help"):
/// Lucene's list alone leaves pronouns and modal verbs, which then match every FAQ phrased as
/// a question.
const EN_STOP_WORDS: &[&str] = &[
    "a", "about", "also", "am", "an", "and", "any", "are", "as", "at", "be", "been", "but", "by",
    "can", "could", "did", "do", "does", "for", "from", "great", "had", "has", "have", "he",
    "hello", "help", "her", "hi", "his", "how", "i", "if", "in", "into", "is", "it", "its", "just",
    "me", "my", "no", "not", "of", "ok", "okay", "on", "or", "our", "please", "she", "so", "sorry",
    "such", "thank", "thanks", "that", "the", "their", "them", "then", "there", "these", "they",
    "this", "those", "to", "today", "us", "very", "was", "we", "were", "what", "when", "where",
    "which", "who", "why", "will", "with", "would", "yes", "you", "your",
];

/// jieba search-mode segmentation as a tantivy tokenizer; punctuation and spaces dropped.
#[derive(Clone)]
pub struct JiebaTokenizer {
    jieba: Arc<Jieba>,
}

impl Default for JiebaTokenizer {
    fn default() -> Self {
        Self {
            jieba: JIEBA.clone(),
        }
    }
}

pub struct JiebaTokenStream {
    tokens: Vec<Token>,
    next: usize,
}

impl Tokenizer for JiebaTokenizer {
    type TokenStream<'a> = JiebaTokenStream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> JiebaTokenStream {
        let tokens = self
            .jieba
            .tokenize(text, jieba_rs::TokenizeMode::Search, true)
            .into_iter()
            .filter(|t| t.word.chars().any(char::is_alphanumeric))
            .filter(|t| !ZH_STOP_WORDS.contains(&t.word))
            .enumerate()
            .map(|(position, t)| Token {
                offset_from: t.byte_start,
                offset_to: t.byte_end,
                position,
                text: t.word.to_owned(),
                position_length: 1,
            })
            .collect();
        JiebaTokenStream { tokens, next: 0 }
    }
}

impl TokenStream for JiebaTokenStream {
    fn advance(&mut self) -> bool {
        self.next += 1;
        self.next <= self.tokens.len()
    }
    fn token(&self) -> &Token {
        &self.tokens[self.next - 1]
    }
    fn token_mut(&mut self) -> &mut Token {
        &mut self.tokens[self.next - 1]
    }
}

/// The full analyser chain.
pub fn analyser() -> TextAnalyzer {
    TextAnalyzer::builder(JiebaTokenizer::default())
        .filter(LowerCaser)
        .filter(StopWordFilter::remove(
            EN_STOP_WORDS.iter().map(|w| (*w).to_owned()),
        ))
        .filter(Stemmer::new(Language::English))
        .build()
}

/// The terms `text` is indexed or queried as.
pub fn terms(text: &str) -> Vec<String> {
    let mut a = analyser();
    let mut stream = a.token_stream(text);
    let mut out = Vec::new();
    while stream.advance() {
        out.push(stream.token().text.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_is_segmented_into_words_and_function_words_dropped() {
        let t = terms("我这个月的话费被扣了两次");
        assert!(t.contains(&"话费".to_string()), "{t:?}");
        assert!(!t.contains(&"的".to_string()), "{t:?}");
    }

    #[test]
    fn english_is_lower_cased_stemmed_and_stop_words_dropped() {
        let t = terms("My parcels have NOT arrived");
        assert!(t.contains(&"parcel".to_string()), "{t:?}");
        assert!(t.contains(&"arriv".to_string()), "{t:?}");
        assert!(!t.iter().any(|w| w == "not" || w == "NOT"), "{t:?}");
    }
}
