//! The sample knowledge base (`kb/sample/`), compiled in so `callscribe` shows suggestions
//! out of the box, wherever it is installed.

pub const FILES: &[(&str, &str)] = &[
    (
        "bill-explained.en.md",
        include_str!("../../kb/sample/bill-explained.en.md"),
    ),
    (
        "delivery-status.en.md",
        include_str!("../../kb/sample/delivery-status.en.md"),
    ),
    (
        "delivery-status.zh.md",
        include_str!("../../kb/sample/delivery-status.zh.md"),
    ),
    (
        "double-charge.en.md",
        include_str!("../../kb/sample/double-charge.en.md"),
    ),
    (
        "double-charge.zh.md",
        include_str!("../../kb/sample/double-charge.zh.md"),
    ),
    ("faq.jsonl", include_str!("../../kb/sample/faq.jsonl")),
    (
        "plan-change.en.md",
        include_str!("../../kb/sample/plan-change.en.md"),
    ),
    (
        "plan-change.zh.md",
        include_str!("../../kb/sample/plan-change.zh.md"),
    ),
    (
        "returns.en.md",
        include_str!("../../kb/sample/returns.en.md"),
    ),
    (
        "returns.zh.md",
        include_str!("../../kb/sample/returns.zh.md"),
    ),
];

#[cfg(test)]
mod tests {
    #[test]
    fn every_file_in_the_sample_folder_is_compiled_in() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("kb/sample");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".md") || n.ends_with(".jsonl"))
            .collect();
        on_disk.sort();
        let compiled: Vec<String> = super::FILES.iter().map(|(n, _)| (*n).to_owned()).collect();
        assert_eq!(compiled, on_disk);
    }
}
