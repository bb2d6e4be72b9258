#![no_main]

libfuzzer_sys::fuzz_target!(
    init: {
        // symphonia's panics are caught in `audio::decode` (runtime::contain) and become errors: let them
        // unwind to that catch. Any other panic, or one that escapes it, still aborts.
        let abort = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !info.location().is_some_and(|l| l.file().contains("/symphonia")) {
                abort(info);
            }
        }));
    },
    |data: &[u8]| {
        let _ = callscribe_fuzz::wav(data);
    }
);
