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
