//! The language, script and handwriting of a result's text: segments, so that quality can be
//! read apart for a German invoice or a handwritten form. A model that reads English print well
//! may read neither, and an average over all traffic hides it.
//!
//! - **Language:** the vendor's own word where it gives one (Azure's `languages`), else detected
//!   from the result's text with `whatlang` (trigram profiles compiled in: no data files, no
//!   calls). Detection runs on the words made of letters only — amounts, dates and codes say
//!   nothing about a language — and an unreliable guess is no language (`unknown`), not a wrong
//!   one.
//! - **Script:** whatlang's, from the same letters (`Latin`, `Cyrillic`, …).
//! - **Handwriting:** the share of words the vendor marked handwritten (Textract's `TextType:
//!   HANDWRITING`, Azure's `styles[].isHandwritten`): `none`, `some`, `mostly` (half or more), or
//!   `unknown` when the vendor says nothing either way (Mindee, the simulator) — a vendor that
//!   never reports handwriting cannot be counted as `none`.
//!
//! Metric dimensions come from [`TextSegments::dimensions`]: a bounded allowlist of languages plus
//! `other` and `unknown`, and the four handwriting values.

use serde::{Deserialize, Serialize};

use crate::document::{Document, Language, LanguageSource};

/// Languages that get their own metric dimension value; any other is `other`.
pub const LANGUAGES: &[&str] = &["en", "de", "fr", "es", "it", "nl", "pt"];

/// The fewest letters whatlang is asked to judge: below it, a receipt's few words guess noise.
const MIN_LETTERS: usize = 20;

/// At or above this share of handwritten words, the document is `mostly` handwritten.
const MOSTLY_HANDWRITTEN: f64 = 0.5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Handwriting {
    None,
    Some,
    Mostly,
    /// The vendor reported no word as printed or handwritten.
    Unknown,
}

impl Handwriting {
    pub fn as_str(self) -> &'static str {
        match self {
            Handwriting::None => "none",
            Handwriting::Some => "some",
            Handwriting::Mostly => "mostly",
            Handwriting::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Handwriting::None,
            Handwriting::Some,
            Handwriting::Mostly,
            Handwriting::Unknown,
        ]
        .into_iter()
        .find(|h| h.as_str() == s)
    }

    /// From the words the vendor marked one way or the other.
    pub fn of(document: &Document) -> Handwriting {
        let (marked, handwritten) = document
            .pages
            .iter()
            .flat_map(|p| &p.blocks)
            .flat_map(|b| &b.lines)
            .flat_map(|l| &l.words)
            .filter_map(|w| w.handwritten)
            .fold((0usize, 0usize), |(m, h), hw| (m + 1, h + usize::from(hw)));
        if marked == 0 {
            Handwriting::Unknown
        } else if handwritten == 0 {
            Handwriting::None
        } else if handwritten as f64 / marked as f64 >= MOSTLY_HANDWRITTEN {
            Handwriting::Mostly
        } else {
            Handwriting::Some
        }
    }
}

/// What a job records of its result's text (the `language`, `script` and `handwriting`
/// attributes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextSegments {
    /// ISO 639-1 where there is one (`de`), else ISO 639-3 (`tgl`); `None`: no reliable reading.
    pub language: Option<String>,
    pub script: Option<String>,
    pub handwriting: Handwriting,
}

impl TextSegments {
    /// The document's segments; its `language` is what [`identify`] put there.
    pub fn of(document: &Document) -> TextSegments {
        TextSegments {
            language: document.language.as_ref().map(|l| l.code.clone()),
            script: document.language.as_ref().and_then(|l| l.script.clone()),
            handwriting: Handwriting::of(document),
        }
    }

    /// `[Language, Handwriting]` metric dimension values, from bounded sets.
    pub fn dimensions(&self) -> [&'static str; 2] {
        [
            language_segment(self.language.as_deref()),
            self.handwriting.as_str(),
        ]
    }
}

/// A language code as a metric dimension value: one of [`LANGUAGES`], `other`, or `unknown`.
pub fn language_segment(code: Option<&str>) -> &'static str {
    match code {
        None => "unknown",
        Some(code) => LANGUAGES
            .iter()
            .find(|l| **l == code)
            .copied()
            .unwrap_or("other"),
    }
}

/// Fills in the document's language from its text where the vendor gave none. The vendor's
/// reading is kept as it is: it saw the page, not only our words.
pub fn identify(document: &mut Document) {
    if document.language.is_some() {
        return;
    }
    let text = letters_only(document.lines().map(|(_, line)| line.text.as_str()));
    document.language = detect(&text);
}

/// The text's language, when whatlang is sure enough to say.
pub fn detect(text: &str) -> Option<Language> {
    if text.chars().filter(|c| c.is_alphabetic()).count() < MIN_LETTERS {
        return None;
    }
    let info = whatlang::detect(text)?;
    info.is_reliable().then(|| Language {
        code: iso_639_1(info.lang().code()).to_owned(),
        script: Some(info.script().name().to_owned()),
        confidence: Some(info.confidence().clamp(0.0, 1.0)),
        source: LanguageSource::Detected,
    })
}

/// A vendor's locale (`en-US`, `zh-Hans`, `DE`) as a language code: its primary subtag, lower
/// case.
pub fn from_locale(locale: &str) -> Option<String> {
    let primary = locale.split(['-', '_']).next()?.trim().to_ascii_lowercase();
    (2..=3).contains(&primary.len()).then_some(primary)
}

/// At least this many words in mixed or lower case, and words in capitals are left out.
const MIXED_CASE_WORDS: usize = 5;

/// The words of `lines` made of letters only, lower-cased and space-separated. Words in
/// capitals (`USD`, `INV`, `GMBH`, a shouted company name) are codes and names more often than
/// language, and on a short invoice they tip the guess (`BLUE HARBOUR LOGISTICS INC` read an
/// English invoice as Spanish): they are left out where enough other words remain. A document
/// printed all in capitals (many receipts) keeps them all.
fn letters_only<'a>(lines: impl Iterator<Item = &'a str>) -> String {
    let words: Vec<&str> = lines
        .flat_map(str::split_whitespace)
        .map(|w| w.trim_matches(|c: char| !c.is_alphabetic()))
        .filter(|w| w.chars().count() >= 2 && w.chars().all(char::is_alphabetic))
        .collect();
    let mixed = |w: &str| w.chars().any(char::is_lowercase);
    let keep_capitals = words.iter().filter(|w| mixed(w)).count() < MIXED_CASE_WORDS;
    words
        .into_iter()
        .filter(|w| keep_capitals || mixed(w))
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// ISO 639-3 (whatlang's codes) to ISO 639-1 where the language has one.
fn iso_639_1(code: &str) -> &str {
    match code {
        "eng" => "en",
        "deu" => "de",
        "fra" => "fr",
        "spa" => "es",
        "ita" => "it",
        "nld" => "nl",
        "por" => "pt",
        "pol" => "pl",
        "swe" => "sv",
        "dan" => "da",
        "nob" => "nb",
        "fin" => "fi",
        "ces" => "cs",
        "slk" => "sk",
        "hun" => "hu",
        "ron" => "ro",
        "hrv" => "hr",
        "slv" => "sl",
        "lit" => "lt",
        "lav" => "lv",
        "est" => "et",
        "tur" => "tr",
        "rus" => "ru",
        "ukr" => "uk",
        "bul" => "bg",
        "ell" => "el",
        "heb" => "he",
        "ara" => "ar",
        "hin" => "hi",
        "jpn" => "ja",
        "kor" => "ko",
        "cmn" => "zh",
        "vie" => "vi",
        "ind" => "id",
        "tha" => "th",
        "afr" => "af",
        "tgl" => "tl",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_are_detected_from_their_words_not_their_numbers() {
        let text = |lines: &[&str]| letters_only(lines.iter().copied());
        let de = detect(&text(&[
            "Rechnung Nr. 2024-117",
            "Rechnungsdatum: 14.03.2024",
            "Beratung und Schulung für die Mitarbeiter",
            "Gesamtbetrag 1.234,56 €",
            "Zahlbar innerhalb von vierzehn Tagen ohne Abzug",
        ]))
        .unwrap();
        assert_eq!(de.code, "de");
        assert_eq!(de.script.as_deref(), Some("Latin"));
        assert_eq!(de.source, LanguageSource::Detected);
        let fr = detect(&text(&[
            "Facture n° 2024-117 du 14/03/2024",
            "Prestation de conseil et formation des équipes",
            "Montant total à payer 1 234,56 €",
            "Payable sous quinze jours, sans escompte",
        ]))
        .unwrap();
        assert_eq!(fr.code, "fr");
        let es = detect(&text(&[
            "Factura número 2024-117, fecha 14/03/2024",
            "Servicios de consultoría y formación del personal",
            "Importe total a pagar 1.234,56 €",
            "Pagadero en un plazo de quince días",
        ]))
        .unwrap();
        assert_eq!(es.code, "es");
        let en = detect(&text(&[
            "Invoice 2024-117 dated 03/14/2024",
            "Consulting services and training for the staff",
            "Total amount due $1,234.56",
            "Payable within fourteen days of the invoice date",
        ]))
        .unwrap();
        assert_eq!(en.code, "en");
        // Amounts and codes alone are no language.
        assert_eq!(
            detect(&text(&["12.50 3.00 15.50", "2024-03-14 #4411"])),
            None
        );
        // The pack's shortest English invoice: too few words to say, so no language (with its
        // names and codes in capitals counted, whatlang was sure it was Spanish).
        let short = [
            "BLUE HARBOUR LOGISTICS INC",
            "Invoice No: INV-2026-0108",
            "Invoice Date: 2026-02-08",
            "Due Date: 2026-02-10",
            "Support plan                       200.00",
            "Cloud hosting                      340.50",
            "Subtotal $540.50",
            "Tax (6%) $32.43",
            "Total Due $572.93",
            "Currency: USD",
        ];
        assert_eq!(detect(&text(&short)), None);
        // A receipt printed all in capitals keeps its words.
        assert_eq!(
            detect(&text(&[
                "THANK YOU FOR SHOPPING WITH US PLEASE COME AGAIN",
                "GOODS SOLD ARE NOT RETURNABLE OR EXCHANGEABLE",
            ]))
            .map(|l| l.code),
            Some("en".to_owned())
        );
    }

    #[test]
    fn segments_are_bounded() {
        assert_eq!(language_segment(Some("de")), "de");
        assert_eq!(language_segment(Some("tl")), "other");
        assert_eq!(language_segment(None), "unknown");
        assert_eq!(from_locale("en-US").as_deref(), Some("en"));
        assert_eq!(from_locale("zh-Hans").as_deref(), Some("zh"));
        assert_eq!(from_locale("").as_deref(), None);
        for h in ["none", "some", "mostly", "unknown"] {
            assert_eq!(Handwriting::parse(h).map(Handwriting::as_str), Some(h));
        }
    }
}
