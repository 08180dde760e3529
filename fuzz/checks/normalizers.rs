//! Every vendor normalizer on any payload and profile: an error or a document, never a panic;
//! and a document that comes out validates against Document v1's JSON Schema or says why not.
//!
//! One check, run by the cargo-fuzz target of the same name (`make fuzz`) and by
//! `tests/fuzz_replay.rs` on every committed input (`make test`).

use ocrbridge::job::Profile;
use ocrbridge::vendors::{azure, mindee, normalize, textract};

pub fn check(data: &[u8]) {
    for profile in ["receipt", "invoice", "generic"] {
        let profile = Profile::new(profile).expect("a profile");
        for normalized in [
            normalize::normalize_sim(data, "doc-f", "v", &profile),
            textract::normalize::normalize(data, "doc-f", "v", &profile),
            azure::normalize::normalize(data, "doc-f", "v", &profile),
            mindee::normalize::normalize(data, "doc-f", "v", &profile),
        ]
        .into_iter()
        .flatten()
        {
            let _ = normalized.document.to_validated_json();
        }
    }
}
