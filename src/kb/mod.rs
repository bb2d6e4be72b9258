//! The embedded knowledge base: articles from a folder, indexed with tantivy (BM25), queried
//! with each final segment so the agent sees suggestions with no other service running.
//!
//! Queries take well under a millisecond on a few hundred articles, but they are still CPU
//! work and tantivy's reader is synchronous: async callers run them on `spawn_blocking`.
//! An index built by `callscribe kb index DIR` is kept in `DIR/.index` and reused while the
//! articles are unchanged (a fingerprint of their names, sizes and times); otherwise the
//! articles are indexed in memory at start, which for a folder of articles takes milliseconds.

pub mod analyzer;
pub mod article;
mod sample;

pub use article::{Article, ArticleError};

use std::path::{Path, PathBuf};
use tantivy::query::{BooleanQuery, BoostQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value, STORED,
};
use tantivy::{Index, IndexReader, TantivyDocument, Term};

/// Folder inside a knowledge-base folder that holds its persistent index.
pub const INDEX_DIR: &str = ".index";
const FINGERPRINT_FILE: &str = "callscribe-fingerprint";
/// Heap for tantivy's writer: its minimum, ample for thousands of articles.
const WRITER_HEAP_BYTES: usize = 15_000_000;

/// One article found for a query.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Hit {
    pub article_id: String,
    pub title: String,
    pub snippet: String,
    /// BM25 score with field boosts; comparable within one knowledge base only.
    pub score: f32,
    pub source: String,
}

/// Articles for one final segment, from a sink that answers lookups (the embedded knowledge
/// base, or a downstream `KnowledgeLookup` service).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Suggestion {
    pub call_id: String,
    pub segment_id: String,
    /// The sink that answered (`kb`, or a gRPC sink's name).
    pub sink: String,
    pub hits: Vec<Hit>,
}

#[derive(Debug, thiserror::Error)]
pub enum KbError {
    #[error(transparent)]
    Article(#[from] ArticleError),
    #[error("knowledge base {dir}: {source}")]
    Index {
        dir: PathBuf,
        source: tantivy::TantivyError,
    },
    #[error("knowledge base {dir}: {source}")]
    Io {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("knowledge base {dir} has no articles (*.md with +++ front matter, or *.jsonl)")]
    Empty { dir: PathBuf },
}

struct Fields {
    id: Field,
    title: Field,
    questions: Field,
    tags: Field,
    text: Field,
    /// The whole article as JSON, so a hit needs no second lookup.
    stored: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let text = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(analyzer::ANALYZER)
            .set_index_option(IndexRecordOption::WithFreqs),
    );
    let fields = Fields {
        id: b.add_text_field("id", tantivy::schema::STRING | STORED),
        title: b.add_text_field("title", text.clone()),
        questions: b.add_text_field("questions", text.clone()),
        tags: b.add_text_field("tags", text.clone()),
        text: b.add_text_field("text", text),
        stored: b.add_text_field("article", STORED),
    };
    (b.build(), fields)
}

impl Fields {
    /// Where the query's words count most: a match in the title or in a question customers
    /// ask is worth more than one in the body.
    fn boosted(&self) -> [(Field, f32); 4] {
        [
            (self.title, 2.0),
            (self.questions, 2.0),
            (self.tags, 1.5),
            (self.text, 1.0),
        ]
    }
}

/// An open knowledge base, cheap to share (`Arc`) between threads.
pub struct KnowledgeBase {
    reader: IndexReader,
    fields: Fields,
    articles: usize,
    /// Where the articles came from, for messages.
    pub origin: String,
}

impl KnowledgeBase {
    /// The sample knowledge base compiled into the binary (`kb/sample/`): the default, so
    /// suggestions work out of the box.
    pub fn sample() -> Result<Self, KbError> {
        let mut articles = Vec::new();
        for (name, text) in sample::FILES {
            article::parse_file(Path::new(name), name, text, &mut articles)?;
        }
        Self::in_memory(articles, "the bundled sample knowledge base".into())
    }

    /// Opens `dir`: its persistent index when it is up to date, else its articles indexed in
    /// memory.
    pub fn open(dir: &Path) -> Result<Self, KbError> {
        let index_dir = dir.join(INDEX_DIR);
        if let Ok(saved) = std::fs::read_to_string(index_dir.join(FINGERPRINT_FILE)) {
            if saved == fingerprint(dir)? {
                let index = Index::open_in_dir(&index_dir).map_err(|source| KbError::Index {
                    dir: dir.to_owned(),
                    source,
                })?;
                return Self::from_index(index, dir.display().to_string(), dir);
            }
            tracing::info!(dir = %dir.display(), "articles changed since `kb index`; indexing in memory");
        }
        let articles = article::load_dir(dir)?;
        Self::in_memory(articles, dir.display().to_string())
    }

    /// Builds `DIR/.index` from the articles in `dir`, replacing any older index.
    pub fn build_index(dir: &Path) -> Result<usize, KbError> {
        let articles = article::load_dir(dir)?;
        if articles.is_empty() {
            return Err(KbError::Empty {
                dir: dir.to_owned(),
            });
        }
        let index_dir = dir.join(INDEX_DIR);
        let io = |source| KbError::Io {
            dir: dir.to_owned(),
            source,
        };
        if index_dir.exists() {
            std::fs::remove_dir_all(&index_dir).map_err(io)?;
        }
        std::fs::create_dir_all(&index_dir).map_err(io)?;
        let (schema, fields) = schema();
        let index = Index::create_in_dir(&index_dir, schema).map_err(|source| KbError::Index {
            dir: dir.to_owned(),
            source,
        })?;
        write_articles(&index, &fields, &articles).map_err(|source| KbError::Index {
            dir: dir.to_owned(),
            source,
        })?;
        std::fs::write(index_dir.join(FINGERPRINT_FILE), fingerprint(dir)?).map_err(io)?;
        Ok(articles.len())
    }

    fn in_memory(articles: Vec<Article>, origin: String) -> Result<Self, KbError> {
        let dir = PathBuf::from(&origin);
        if articles.is_empty() {
            return Err(KbError::Empty { dir });
        }
        let (schema, fields) = schema();
        let index = Index::create_in_ram(schema);
        write_articles(&index, &fields, &articles).map_err(|source| KbError::Index {
            dir: dir.clone(),
            source,
        })?;
        Self::from_index(index, origin, &dir)
    }

    fn from_index(index: Index, origin: String, dir: &Path) -> Result<Self, KbError> {
        index
            .tokenizers()
            .register(analyzer::ANALYZER, analyzer::analyzer());
        let reader = index.reader().map_err(|source| KbError::Index {
            dir: dir.to_owned(),
            source,
        })?;
        let articles = reader.searcher().num_docs() as usize;
        let (_, fields) = schema();
        Ok(Self {
            reader,
            fields,
            articles,
            origin,
        })
    }

    pub fn len(&self) -> usize {
        self.articles
    }

    pub fn is_empty(&self) -> bool {
        self.articles == 0
    }

    /// The best `limit` articles for `text` scoring at least `min_score`, best first.
    pub fn query(&self, text: &str, limit: usize, min_score: f32) -> Result<Vec<Hit>, KbError> {
        let mut terms = analyzer::terms(text);
        terms.sort();
        terms.dedup();
        if terms.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for t in &terms {
            for (field, boost) in self.fields.boosted() {
                let q = TermQuery::new(
                    Term::from_field_text(field, t),
                    IndexRecordOption::WithFreqs,
                );
                clauses.push((Occur::Should, Box::new(BoostQuery::new(Box::new(q), boost))));
            }
        }
        let query = BooleanQuery::new(clauses);
        let searcher = self.reader.searcher();
        let err = |source| KbError::Index {
            dir: PathBuf::from(&self.origin),
            source,
        };
        let top = searcher
            .search(&query, &tantivy::collector::TopDocs::with_limit(limit))
            .map_err(err)?;
        let mut hits = Vec::new();
        for (score, address) in top {
            if score < min_score {
                continue;
            }
            let doc: TantivyDocument = searcher.doc(address).map_err(err)?;
            let Some(a) = doc
                .get_first(self.fields.stored)
                .and_then(|v| v.as_str())
                .and_then(|s| serde_json::from_str::<Article>(s).ok())
            else {
                continue;
            };
            hits.push(Hit {
                article_id: a.id,
                title: a.title,
                snippet: a.answer,
                score,
                source: a.source,
            });
        }
        Ok(hits)
    }
}

fn write_articles(
    index: &Index,
    fields: &Fields,
    articles: &[Article],
) -> Result<(), tantivy::TantivyError> {
    index
        .tokenizers()
        .register(analyzer::ANALYZER, analyzer::analyzer());
    // One indexing thread: the articles are few, and the cores belong to whisper.
    let mut writer = index.writer_with_num_threads::<TantivyDocument>(1, WRITER_HEAP_BYTES)?;
    for a in articles {
        let mut doc = TantivyDocument::default();
        doc.add_text(fields.id, &a.id);
        doc.add_text(fields.title, &a.title);
        for q in &a.questions {
            doc.add_text(fields.questions, q);
        }
        for t in &a.tags {
            doc.add_text(fields.tags, t);
        }
        doc.add_text(fields.text, format!("{}\n{}", a.answer, a.body));
        doc.add_text(
            fields.stored,
            serde_json::to_string(a).expect("an article always serialises"),
        );
        writer.add_document(doc)?;
    }
    writer.commit()?;
    Ok(())
}

/// Names, sizes and modification times of the article files: changes when any article does.
fn fingerprint(dir: &Path) -> Result<String, KbError> {
    let mut lines: Vec<String> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .filter(|e| {
            matches!(
                e.path().extension().and_then(|x| x.to_str()),
                Some("md" | "jsonl")
            )
        })
        .map(|e| {
            let meta = e.metadata().ok();
            let mtime = meta
                .as_ref()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            format!(
                "{} {} {mtime}",
                e.path().display(),
                meta.map_or(0, |m| m.len())
            )
        })
        .collect();
    lines.sort();
    Ok(lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_answers_delivery_and_billing_questions_in_both_languages() {
        let kb = KnowledgeBase::sample().unwrap();
        let top = |q: &str| kb.query(q, 3, 0.0).unwrap()[0].article_id.clone();
        assert_eq!(top("where is my parcel, it is late"), "delivery-status-en");
        assert_eq!(top("我的话费被扣了两次"), "double-charge-zh");
        assert_eq!(top("我想退货"), "returns-zh");
        assert_eq!(top("I want to change my plan"), "plan-change-en");
    }

    #[test]
    fn nothing_relevant_means_no_hits() {
        let kb = KnowledgeBase::sample().unwrap();
        assert!(kb.query("，。！", 3, 0.0).unwrap().is_empty());
        assert!(kb.query("zebra xylophone", 3, 0.0).unwrap().is_empty());
    }

    #[test]
    fn a_saved_index_is_reused_until_an_article_changes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.jsonl"),
            "{\"id\":\"a\",\"question\":\"reset my password\",\"answer\":\"Use the link.\"}\n",
        )
        .unwrap();
        assert_eq!(KnowledgeBase::build_index(dir.path()).unwrap(), 1);
        let kb = KnowledgeBase::open(dir.path()).unwrap();
        assert_eq!(kb.query("password", 1, 0.0).unwrap()[0].article_id, "a");
        // A new article invalidates the saved index: it must be found at once.
        std::fs::write(
            dir.path().join("b.jsonl"),
            "{\"id\":\"b\",\"question\":\"close my account\",\"answer\":\"Ask billing.\"}\n",
        )
        .unwrap();
        let kb = KnowledgeBase::open(dir.path()).unwrap();
        assert_eq!(kb.len(), 2);
        assert_eq!(
            kb.query("close account", 1, 0.0).unwrap()[0].article_id,
            "b"
        );
    }
}
