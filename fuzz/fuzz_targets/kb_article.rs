#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = callscribe_fuzz::kb_article(data);
});
