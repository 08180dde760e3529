//! Real OCR with Tesseract on real scanned receipts (../shared/corpus/sroie-dev) and on PDFs.

mod support;

use serde_json::Value;
use support::*;
use vendor_sim::engine::EngineKind;

fn normalize(word: &str) -> String {
    word.chars()
        .filter(|c| c.is_alphanumeric() || *c == '.')
        .collect::<String>()
        .to_uppercase()
}

/// The ground-truth row holding the total: `NNN.lines.csv` has one text segment per row
/// (`x1,y1,…,x4,y4,text`), and a label ("TOTAL :") and its amount are separate segments, so the
/// row is every segment vertically level with a segment holding the total amount — preferring a
/// row that says TOTAL.
fn total_line(dir: &std::path::Path, name: &str) -> (String, Vec<String>) {
    let key: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join(format!("{name}.key.json"))).unwrap(),
    )
    .unwrap();
    let total = key["total"].as_str().unwrap().to_owned();
    let segments: Vec<(f64, f64, String)> =
        std::fs::read_to_string(dir.join(format!("{name}.lines.csv")))
            .unwrap()
            .lines()
            .filter_map(|l| {
                let cols: Vec<&str> = l.splitn(9, ',').collect();
                let ys: Vec<f64> = [1, 3, 5, 7]
                    .iter()
                    .filter_map(|&i| cols.get(i)?.parse().ok())
                    .collect();
                let text = cols.get(8)?.to_string();
                Some((
                    ys.iter().cloned().fold(f64::MAX, f64::min),
                    ys.iter().cloned().fold(0.0, f64::max),
                    text,
                ))
            })
            .collect();
    let rows: Vec<Vec<&String>> = segments
        .iter()
        .filter(|(_, _, text)| {
            text.split_whitespace()
                .any(|w| w.trim_start_matches("RM") == total)
        })
        .map(|(top, bottom, _)| {
            segments
                .iter()
                .filter(|(t, b, _)| (t + b) / 2.0 >= *top - 2.0 && (t + b) / 2.0 <= *bottom + 2.0)
                .map(|(_, _, text)| text)
                .collect()
        })
        .collect();
    let row = rows
        .iter()
        .find(|row| row.iter().any(|t| t.to_uppercase().contains("TOTAL")))
        .or(rows.first())
        .unwrap_or_else(|| panic!("{name}: no row holds the total {total}"));
    let words = row
        .iter()
        .flat_map(|t| t.split_whitespace())
        .map(normalize)
        .filter(|w| !w.is_empty())
        .collect();
    (total, words)
}

#[tokio::test]
async fn recognizes_real_receipts_with_tesseract() {
    let dir = shared_dir().join("corpus/sroie-dev");
    let sim = sim(|c| c.engine = EngineKind::Tesseract).await;
    let names = ["000", "004", "008", "030"];
    let mut ids = Vec::new();
    for name in names {
        let bytes = std::fs::read(dir.join(format!("{name}.jpg"))).unwrap();
        let response = upload(&sim, bytes, "receipt", Some(name)).await;
        assert_eq!(response.status(), 202);
        ids.push(
            response.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let mut totals_extracted = 0;
    for (name, id) in names.iter().zip(&ids) {
        let done = wait_final(&sim, id).await;
        assert_eq!(done["status"], "succeeded", "{name}: {done}");
        let (_, result) = get_json(&sim, &format!("/v1/documents/{id}/result")).await;
        assert_eq!(result["engine"], "tesseract");
        let page = &result["pages"][0];
        assert_eq!(page["path"], "image");
        assert!(page["width"].as_u64().unwrap() > 100);
        let words: Vec<String> = page["lines"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|l| l["words"].as_array().unwrap().iter())
            .map(|w| normalize(w["text"].as_str().unwrap()))
            .collect();
        let (total, expected) = total_line(&dir, name);
        let found = expected.iter().filter(|w| words.contains(w)).count();
        assert!(
            found * 2 >= expected.len(),
            "{name}: only {found} of the total line's words {expected:?} were recognized"
        );
        for line in page["lines"].as_array().unwrap() {
            let c = line["confidence"].as_f64().unwrap();
            assert!((0.0..=100.0).contains(&c));
        }
        // Ground truth keeps the printed form ("$8.20"); the vendor returns the amount.
        let amount = |s: &str| {
            s.chars()
                .filter(|c| c.is_ascii_digit() || *c == '.')
                .collect::<String>()
        };
        if result["fields"]["total"]["value"].as_str().map(amount) == Some(amount(&total)) {
            totals_extracted += 1;
        }
    }
    // The vendor's heuristics are simple; they should still get most totals right.
    assert!(
        totals_extracted >= 2,
        "only {totals_extracted} totals extracted"
    );
    let s = stats(&sim).await;
    assert_eq!(s["billed_documents"], 4);
    assert_eq!(s["billed_pages"], 4);
    assert_eq!(s["pages_by_path"]["image"], 4);
}

#[tokio::test]
async fn pdfs_use_their_text_layer_or_are_rasterized() {
    let dir = shared_dir().join("fixtures/inputs");
    let sim = sim(|c| c.engine = EngineKind::Tesseract).await;

    let text = std::fs::read(dir.join("valid_exported.pdf")).unwrap();
    let id = upload(&sim, text, "generic", None)
        .await
        .json::<Value>()
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_final(&sim, &id).await;
    let (_, result) = get_json(&sim, &format!("/v1/documents/{id}/result")).await;
    assert_eq!(result["pages"][0]["path"], "pdf_text_layer");
    assert!(!result["pages"][0]["lines"].as_array().unwrap().is_empty());

    // A scanned receipt wrapped in a PDF with no text layer: rasterized, then OCRed.
    let receipt = std::fs::read(shared_dir().join("corpus/sroie-dev/000.jpg")).unwrap();
    let id = upload(&sim, jpeg_pdf(&receipt), "receipt", None)
        .await
        .json::<Value>()
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let done = wait_final(&sim, &id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let (_, result) = get_json(&sim, &format!("/v1/documents/{id}/result")).await;
    assert_eq!(result["pages"][0]["path"], "pdf_raster");
    let text: Vec<&str> = result["pages"][0]["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["text"].as_str())
        .collect();
    assert!(
        text.iter().any(|l| l.contains("SDN BHD")),
        "the rasterized page was OCRed: {text:?}"
    );

    // An image-only PDF of a photo (a cat): rasterized, and honestly empty.
    let cat = std::fs::read(dir.join("not_blank_image_only.pdf")).unwrap();
    let id = upload(&sim, cat, "generic", None)
        .await
        .json::<Value>()
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(wait_final(&sim, &id).await["status"], "succeeded");
    let (_, result) = get_json(&sim, &format!("/v1/documents/{id}/result")).await;
    assert_eq!(result["pages"][0]["path"], "pdf_raster");

    let multi = std::fs::read(dir.join("multipage.pdf")).unwrap();
    let id = upload(&sim, multi, "generic", None)
        .await
        .json::<Value>()
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(wait_final(&sim, &id).await["pages"], 12);
    assert_eq!(stats(&sim).await["billed_pages"], 15);
}

#[tokio::test]
async fn unreadable_documents_fail_with_a_reason() {
    let sim = sim(|c| c.engine = EngineKind::Tesseract).await;
    let id = upload(&sim, b"this is not an image".to_vec(), "receipt", None)
        .await
        .json::<Value>()
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let done = wait_final(&sim, &id).await;
    assert_eq!(done["status"], "failed");
    assert_eq!(done["error"]["code"], "unreadable_document");
    assert_eq!(stats(&sim).await["billed_pages"], 0);
}
