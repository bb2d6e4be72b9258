#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = callscribe_fuzz::spool_record(data);
});
