//! Knowledge-base articles as files: Markdown with TOML front matter (`+++` fences, as Hugo
//! writes them) or JSONL question/answer pairs, one per line.
//!
//! TOML rather than YAML front matter because `toml` is already how callscribe reads its
//! configuration; a second serialisation format would add a dependency for no gain.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One article, whatever file it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Article {
    pub id: String,
    pub title: String,
    /// Ways customers ask for this article; indexed with extra weight.
    pub questions: Vec<String>,
    pub tags: Vec<String>,
    /// The short answer an agent reads out.
    pub answer: String,
    pub body: String,
    /// File (relative to the knowledge-base folder) and, for JSONL, the line.
    pub source: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ArticleError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: front matter: {message}")]
    FrontMatter { path: PathBuf, message: String },
    #[error("{path}:{line}: {message}")]
    Jsonl {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{path}: article id '{id}' is also used by {other}")]
    DuplicateId {
        path: PathBuf,
        id: String,
        other: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FrontMatter {
    id: String,
    title: String,
    #[serde(default)]
    questions: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    answer: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    language: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QaLine {
    id: String,
    question: String,
    answer: String,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    #[allow(dead_code)]
    language: Option<String>,
}

/// Parses a Markdown article. Without an `answer` in the front matter, the first paragraph of
/// the body that is not a heading is the answer.
pub fn parse_markdown(path: &Path, source: &str, text: &str) -> Result<Article, ArticleError> {
    let err = |message: String| ArticleError::FrontMatter {
        path: path.to_owned(),
        message,
    };
    let rest = text
        .strip_prefix("+++")
        .ok_or_else(|| err("the file must start with a `+++` TOML front matter block".into()))?;
    let end = rest
        .find("\n+++")
        .ok_or_else(|| err("no closing `+++`".into()))?;
    let front: FrontMatter = toml::from_str(&rest[..end])
        .map_err(|e| err(e.to_string().trim_end().replace('\n', " ")))?;
    let body = rest[end + 4..].trim().to_owned();
    let answer = front.answer.unwrap_or_else(|| {
        body.split("\n\n")
            .map(str::trim)
            .find(|p| !p.is_empty() && !p.starts_with('#'))
            .unwrap_or_default()
            .replace('\n', " ")
    });
    Ok(Article {
        id: front.id,
        title: front.title,
        questions: front.questions,
        tags: front.tags,
        answer,
        body,
        source: source.to_owned(),
    })
}

/// Parses a JSONL file of question/answer pairs: each line is one article.
pub fn parse_jsonl(path: &Path, source: &str, text: &str) -> Result<Vec<Article>, ArticleError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let qa: QaLine = serde_json::from_str(line).map_err(|e| ArticleError::Jsonl {
            path: path.to_owned(),
            line: i + 1,
            message: e.to_string(),
        })?;
        out.push(Article {
            id: qa.id,
            title: qa.title.unwrap_or_else(|| qa.question.clone()),
            questions: vec![qa.question],
            tags: qa.tags,
            body: String::new(),
            answer: qa.answer,
            source: format!("{source}:{}", i + 1),
        });
    }
    Ok(out)
}

/// Every `*.md` and `*.jsonl` under `dir` (recursively, in path order so ids clash
/// deterministically), parsed. Hidden folders (the index itself) are skipped.
pub fn load_dir(dir: &Path) -> Result<Vec<Article>, ArticleError> {
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("md" | "jsonl")))
        .collect();
    files.sort();
    if files.is_empty() && !dir.is_dir() {
        return Err(ArticleError::Read {
            path: dir.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such folder"),
        });
    }
    let mut articles = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).map_err(|source| ArticleError::Read {
            path: path.clone(),
            source,
        })?;
        let rel = path
            .strip_prefix(dir)
            .unwrap_or(&path)
            .to_string_lossy()
            .into_owned();
        parse_file(&path, &rel, &text, &mut articles)?;
    }
    Ok(articles)
}

/// Parses one file's text into `out`, refusing an id seen before.
pub fn parse_file(
    path: &Path,
    source: &str,
    text: &str,
    out: &mut Vec<Article>,
) -> Result<(), ArticleError> {
    let new = if source.ends_with(".jsonl") {
        parse_jsonl(path, source, text)?
    } else {
        vec![parse_markdown(path, source, text)?]
    };
    for a in new {
        if let Some(other) = out.iter().find(|o| o.id == a.id) {
            return Err(ArticleError::DuplicateId {
                path: path.to_owned(),
                id: a.id,
                other: other.source.clone(),
            });
        }
        out.push(a);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_without_answer_takes_the_first_paragraph() {
        let a = parse_markdown(
            Path::new("a.md"),
            "a.md",
            "+++\nid = \"a\"\ntitle = \"T\"\n+++\n# Heading\n\nFirst\nparagraph.\n\nSecond.\n",
        )
        .unwrap();
        assert_eq!(a.answer, "First paragraph.");
        assert_eq!(a.id, "a");
    }

    #[test]
    fn a_missing_fence_names_the_file() {
        let e = parse_markdown(Path::new("kb/x.md"), "x.md", "# no front matter")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("kb/x.md: front matter"), "{e}");
    }

    #[test]
    fn a_bad_jsonl_line_names_its_line_number() {
        let e = parse_jsonl(
            Path::new("f.jsonl"),
            "f.jsonl",
            "{\"id\":\"a\",\"question\":\"q\",\"answer\":\"x\"}\n{oops}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("f.jsonl:2:"), "{e}");
    }
}
