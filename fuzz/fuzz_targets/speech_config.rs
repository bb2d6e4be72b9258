#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = callscribe_fuzz::speech_config(data);
});
