//! Machine readable zones (ICAO Doc 9303): the TD1 (ID card, 3 × 30), TD2 (2 × 36) and TD3
//! (passport, 2 × 44) formats, their check digits (the composite one included), and the
//! comparison of MRZ names with the names printed on the document.
//!
//! Parsing is strict about shape (line count and length, the MRZ alphabet) and lenient about
//! check digits: a digit that does not verify is reported as a [`CheckFailure`], not an error,
//! because the `mrz_check_digit` rule must say *which* field failed, and the other fields are
//! still worth showing to a reviewer. OCR mistakes (`0`/`O`, `1`/`I`) are not corrected by
//! [`parse`]: a correction would hide what the vendor read. [`repair`] corrects them apart, only
//! where the format allows one alphabet (a country code holds letters, a date digits), and says
//! what it changed; the numeric fields it touches are then held to their check digits.

use std::fmt;

use chrono::{Datelike, NaiveDate};

/// The three ICAO 9303 layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MrzFormat {
    /// ID cards: three lines of 30.
    Td1,
    /// Two lines of 36.
    Td2,
    /// Passports: two lines of 44.
    Td3,
}

impl MrzFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            MrzFormat::Td1 => "TD1",
            MrzFormat::Td2 => "TD2",
            MrzFormat::Td3 => "TD3",
        }
    }
}

/// The fields a check digit guards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MrzField {
    DocumentNumber,
    BirthDate,
    ExpiryDate,
    /// TD3's personal number (optional data).
    PersonalNumber,
    /// The check over the document number, dates and optional data together.
    Composite,
}

impl MrzField {
    pub fn as_str(self) -> &'static str {
        match self {
            MrzField::DocumentNumber => "document_number",
            MrzField::BirthDate => "birth_date",
            MrzField::ExpiryDate => "expiry_date",
            MrzField::PersonalNumber => "personal_number",
            MrzField::Composite => "composite",
        }
    }
}

impl fmt::Display for MrzField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A check digit that does not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckFailure {
    pub field: MrzField,
    /// What the digit should be for the data read.
    pub expected: char,
    /// What the MRZ says.
    pub found: char,
}

/// Why text is not an MRZ at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MrzError {
    #[error("an MRZ has 2 lines of 44 (TD3) or 36 (TD2), or 3 lines of 30 (TD1); found {lines} lines of {lengths:?}")]
    Shape { lines: usize, lengths: Vec<usize> },
    #[error(
        "line {line}, position {position}: {found:?} is not in the MRZ alphabet (A-Z, 0-9, <)"
    )]
    Alphabet {
        line: usize,
        position: usize,
        found: char,
    },
    #[error("the {field} {text:?} is not a date (YYMMDD)")]
    Date { field: MrzField, text: String },
}

/// A date as the MRZ writes it: two-digit year.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MrzDate {
    pub yy: u8,
    pub mm: u8,
    pub dd: u8,
}

impl MrzDate {
    fn parse(field: MrzField, text: &str) -> Result<Self, MrzError> {
        let bad = || MrzError::Date {
            field,
            text: text.to_owned(),
        };
        let n = |r: std::ops::Range<usize>| text.get(r).and_then(|s| s.parse::<u8>().ok());
        let (yy, mm, dd) = (
            n(0..2).ok_or_else(bad)?,
            n(2..4).ok_or_else(bad)?,
            n(4..6).ok_or_else(bad)?,
        );
        if !(1..=12).contains(&mm) || !(1..=31).contains(&dd) {
            return Err(bad());
        }
        Ok(MrzDate { yy, mm, dd })
    }

    /// A birth date: the latest century that does not put it after `today`.
    pub fn as_birth_date(self, today: NaiveDate) -> Option<NaiveDate> {
        let century = today.year() / 100 * 100;
        match self.in_century(century) {
            Some(d) if d <= today => Some(d),
            _ => self.in_century(century - 100),
        }
    }

    /// An expiry date: documents are valid for at most about 10 years ahead, and one that expired
    /// long ago still reads as past: the century that puts it within 50 years of `today`.
    pub fn as_expiry_date(self, today: NaiveDate) -> Option<NaiveDate> {
        let century = today.year() / 100 * 100;
        let d = self.in_century(century)?;
        if (d - today).num_days() > 50 * 365 {
            self.in_century(century - 100)
        } else {
            Some(d)
        }
    }

    fn in_century(self, century: i32) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(century + i32::from(self.yy), self.mm.into(), self.dd.into())
    }
}

/// The document's sex field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sex {
    Female,
    Male,
    /// `X` or `<`: unspecified.
    Unspecified,
}

/// A parsed MRZ. Text fields have their filler `<` removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mrz {
    pub format: MrzFormat,
    /// `P` passport, `I`/`A`/`C` identity documents, `V` visa… (one or two letters).
    pub document_code: String,
    pub issuing_state: String,
    pub document_number: String,
    pub nationality: String,
    pub birth_date: MrzDate,
    pub sex: Sex,
    pub expiry_date: MrzDate,
    /// The primary identifier: `<` inside it is a space.
    pub surname: String,
    /// The secondary identifier's names, in order.
    pub given_names: Vec<String>,
    /// Optional data (TD3: the personal number; TD1: both optional fields, joined by a space).
    pub optional_data: String,
    /// The lines as read (after trimming).
    pub lines: Vec<String>,
    /// Every check digit that does not verify; empty when the MRZ is consistent.
    pub check_failures: Vec<CheckFailure>,
}

/// The ICAO 9303 check digit of `data`: weights 7, 3, 1 repeating over the character values
/// (`0`–`9`, then `A` = 10 … `Z` = 35, `<` = 0), modulo 10.
pub fn check_digit(data: &str) -> char {
    let sum: u32 = data
        .bytes()
        .zip([7u32, 3, 1].iter().cycle())
        .map(|(b, w)| {
            let v = match b {
                b'0'..=b'9' => u32::from(b - b'0'),
                b'A'..=b'Z' => u32::from(b - b'A') + 10,
                _ => 0,
            };
            v * w
        })
        .sum();
    char::from_digit(sum % 10, 10).unwrap_or('0')
}

/// What an MRZ holds, to write one with [`compose`]: the fields [`parse`] reads back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// `P`, `I`, `ID`… (one or two letters).
    pub document_code: String,
    pub issuing_state: String,
    /// At most 9 characters (a longer one continues in TD1's optional data: not written here).
    pub document_number: String,
    pub nationality: String,
    pub birth_date: MrzDate,
    pub sex: Sex,
    pub expiry_date: MrzDate,
    /// Words separated by spaces.
    pub surname: String,
    pub given_names: Vec<String>,
    /// Letters and digits: TD3's personal number (14), TD2's optional data (7), TD1's first
    /// optional field (15).
    pub optional_data: String,
}

/// `text` left-aligned in `width`, filled with `<` (spaces are `<` too), cut at `width`.
fn filled(text: &str, width: usize) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c == ' ' { '<' } else { c })
        .take(width)
        .collect();
    while out.len() < width {
        out.push('<');
    }
    out
}

impl MrzDate {
    fn written(self) -> String {
        format!("{:02}{:02}{:02}", self.yy, self.mm, self.dd)
    }
}

/// Writes the MRZ of `holder` in `format`, every check digit computed (Doc 9303-4, -5, -6): what
/// the benchmark pack's documents and the tests print, and the inverse of [`parse`].
pub fn compose(format: MrzFormat, holder: &Holder) -> Vec<String> {
    let sex = match holder.sex {
        Sex::Female => 'F',
        Sex::Male => 'M',
        Sex::Unspecified => '<',
    };
    let mut names = holder.surname.replace(' ', "<");
    names.push_str("<<");
    names.push_str(&holder.given_names.join("<"));
    let head = format!(
        "{}{}",
        filled(&holder.document_code, 2),
        filled(&holder.issuing_state, 3)
    );
    let number = filled(&holder.document_number, 9);
    let numbered = format!("{number}{}", check_digit(&number));
    let birth = holder.birth_date.written();
    let birth = format!("{birth}{}", check_digit(&birth));
    let expiry = holder.expiry_date.written();
    let expiry = format!("{expiry}{}", check_digit(&expiry));
    let nationality = filled(&holder.nationality, 3);
    match format {
        MrzFormat::Td1 => {
            let line1 = format!("{head}{numbered}{}", filled(&holder.optional_data, 15));
            let optional_2 = filled("", 11);
            let composite = format!("{}{birth}{expiry}{optional_2}", &line1[5..30]);
            let line2 = format!(
                "{birth}{sex}{expiry}{nationality}{optional_2}{}",
                check_digit(&composite)
            );
            vec![line1, line2, filled(&names, 30)]
        }
        MrzFormat::Td2 | MrzFormat::Td3 => {
            let (width, optional_width) = match format {
                MrzFormat::Td2 => (36, 7),
                _ => (44, 14),
            };
            let optional = filled(&holder.optional_data, optional_width);
            // TD3's personal number has its own digit; TD2's optional data has none.
            let optional = match format {
                MrzFormat::Td3 => format!("{optional}{}", check_digit(&optional)),
                _ => optional,
            };
            let composite = format!("{numbered}{birth}{expiry}{optional}");
            let line2 = format!(
                "{numbered}{nationality}{birth}{sex}{expiry}{optional}{}",
                check_digit(&composite)
            );
            vec![format!("{head}{}", filled(&names, width - 5)), line2]
        }
    }
}

/// Finds the MRZ lines in `text` (OCR output: the MRZ lines among others, spaces inside them
/// dropped) and parses them.
pub fn find(text: &str) -> Option<Result<Mrz, MrzError>> {
    locate(text).map(|lines| parse(&lines))
}

/// The MRZ's lines in `text`, as read, spaces inside them dropped: the first block of 2 × 44,
/// 2 × 36 or 3 × 30 `<`-bearing lines. `None` when there is none.
pub fn locate(text: &str) -> Option<Vec<String>> {
    let candidates: Vec<String> = text
        .lines()
        .map(|l| l.chars().filter(|c| !c.is_whitespace()).collect::<String>())
        .filter(|l| l.len() >= 30 && l.contains('<'))
        .collect();
    for (len, count) in [(44, 2), (36, 2), (30, 3)] {
        if let Some(start) = (0..candidates.len()).find(|&i| {
            candidates.len() >= i + count && candidates[i..i + count].iter().all(|l| l.len() == len)
        }) {
            return Some(candidates[start..start + count].to_vec());
        }
    }
    None
}

/// Parses an MRZ from its lines.
pub fn parse<S: AsRef<str>>(lines: &[S]) -> Result<Mrz, MrzError> {
    let lines: Vec<String> = lines
        .iter()
        .map(|l| l.as_ref().trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect();
    let lengths: Vec<usize> = lines.iter().map(|l| l.chars().count()).collect();
    let format = match (lines.len(), lengths.first()) {
        (2, Some(44)) if lengths[1] == 44 => MrzFormat::Td3,
        (2, Some(36)) if lengths[1] == 36 => MrzFormat::Td2,
        (3, Some(30)) if lengths[1..].iter().all(|&n| n == 30) => MrzFormat::Td1,
        _ => {
            return Err(MrzError::Shape {
                lines: lines.len(),
                lengths,
            })
        }
    };
    for (line, text) in lines.iter().enumerate() {
        if let Some((position, found)) = text
            .chars()
            .enumerate()
            .find(|(_, c)| !(c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '<'))
        {
            return Err(MrzError::Alphabet {
                line: line + 1,
                position: position + 1,
                found,
            });
        }
    }
    match format {
        MrzFormat::Td1 => td1(lines),
        MrzFormat::Td2 | MrzFormat::Td3 => td2_or_td3(format, lines),
    }
}

/// What [`repair`] changed (lines and positions 1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repair {
    /// A character the position's alphabet rules out, and the one it was taken for.
    Character {
        line: usize,
        position: usize,
        read: char,
        corrected: char,
    },
    /// A name line read longer or shorter than its format's width, where the difference is in
    /// its filler tail (OCR splits and merges runs of `<`): the tail re-laid to the width.
    FillerTail { line: usize, read_length: usize },
}

/// What a position of an MRZ may hold.
#[derive(Clone, Copy)]
enum Alphabet {
    Letters,
    Digits,
    /// A name field: letters and fillers; OCR noise in its filler tail is a filler.
    Name,
}

/// The positions of each line that hold one alphabet only (the rest, document numbers and
/// optional data, may hold both and are left as read).
fn alphabets(format: MrzFormat) -> &'static [&'static [(std::ops::Range<usize>, Alphabet)]] {
    use Alphabet::{Digits, Letters, Name};
    match format {
        MrzFormat::Td3 => &[
            &[(2..5, Letters), (5..44, Name)],
            &[
                (9..10, Digits),
                (10..13, Letters),
                (13..20, Digits),
                (21..28, Digits),
                (42..44, Digits),
            ],
        ],
        MrzFormat::Td2 => &[
            &[(2..5, Letters), (5..36, Name)],
            &[
                (9..10, Digits),
                (10..13, Letters),
                (13..20, Digits),
                (21..28, Digits),
                (35..36, Digits),
            ],
        ],
        MrzFormat::Td1 => &[
            &[(2..5, Letters)],
            &[
                (0..7, Digits),
                (8..15, Digits),
                (15..18, Letters),
                (29..30, Digits),
            ],
            &[(0..30, Name)],
        ],
    }
}

/// Corrects the OCR confusions an MRZ's layout rules out: a digit where only letters may stand
/// (`UT0` → `UTO`, `1` → `I`), a letter where only digits may (`O`/`Q`/`D` → `0`, `I`/`L` → `1`,
/// `Z` → `2`, `S` → `5`, `G` → `6`, `B` → `8`), and noise in a name's filler tail (`<<c<<e#<<`
/// → `<`). Lines whose shape is not an MRZ's are returned as they are. The corrected lines are
/// still parsed and checked like any: a wrong correction of a numeric field fails its check
/// digit.
pub fn repair<S: AsRef<str>>(lines: &[S]) -> (Vec<String>, Vec<Repair>) {
    let mut out: Vec<Vec<char>> = lines
        .iter()
        .map(|l| l.as_ref().trim().chars().collect())
        .filter(|l: &Vec<char>| !l.is_empty())
        .collect();
    let lengths: Vec<usize> = out.iter().map(Vec::len).collect();
    // The format from the lines that carry no name (their length is what OCR rarely breaks).
    let (format, name_line, width) = match (out.len(), lengths.get(1)) {
        (2, Some(44)) => (MrzFormat::Td3, 0, 44),
        (2, Some(36)) => (MrzFormat::Td2, 0, 36),
        (3, Some(30)) if lengths[0] == 30 => (MrzFormat::Td1, 2, 30),
        _ => {
            return (
                out.into_iter().map(|l| l.into_iter().collect()).collect(),
                Vec::new(),
            )
        }
    };
    let mut repairs = Vec::new();
    let name = &mut out[name_line];
    if name.len() != width {
        // Everything after the last letter is filler by definition; what precedes must fit.
        let kept = name
            .iter()
            .rposition(char::is_ascii_uppercase)
            .map_or(0, |i| i + 1);
        if kept <= width {
            repairs.push(Repair::FillerTail {
                line: name_line + 1,
                read_length: name.len(),
            });
            name.truncate(kept);
            name.resize(width, '<');
        } else {
            return (
                out.into_iter().map(|l| l.into_iter().collect()).collect(),
                Vec::new(),
            );
        }
    }
    for (index, ranges) in alphabets(format).iter().enumerate() {
        let line = &mut out[index];
        for (range, alphabet) in ranges.iter() {
            // A name's filler tail: everything after its last letter.
            let tail_from = match alphabet {
                Alphabet::Name => line[range.clone()]
                    .iter()
                    .rposition(char::is_ascii_uppercase)
                    .map_or(range.start, |i| range.start + i + 1),
                _ => range.end,
            };
            for position in range.clone() {
                let read = line[position];
                let corrected = match alphabet {
                    Alphabet::Letters => match read {
                        '0' => 'O',
                        '1' => 'I',
                        '2' => 'Z',
                        '5' => 'S',
                        '6' => 'G',
                        '8' => 'B',
                        c => c,
                    },
                    Alphabet::Digits => match read {
                        'O' | 'Q' | 'D' => '0',
                        'I' | 'L' => '1',
                        'Z' => '2',
                        'S' => '5',
                        'G' => '6',
                        'B' => '8',
                        c => c,
                    },
                    Alphabet::Name if position >= tail_from && read != '<' => '<',
                    Alphabet::Name => read,
                };
                if corrected != read {
                    line[position] = corrected;
                    repairs.push(Repair::Character {
                        line: index + 1,
                        position: position + 1,
                        read,
                        corrected,
                    });
                }
            }
        }
    }
    (
        out.into_iter().map(|l| l.into_iter().collect()).collect(),
        repairs,
    )
}

/// The text in `line[range]`: ASCII only by now, so byte ranges are character ranges.
fn at(line: &str, range: std::ops::Range<usize>) -> &str {
    &line[range]
}

fn char_at(line: &str, i: usize) -> char {
    line.as_bytes()[i] as char
}

fn unfill(text: &str) -> String {
    text.trim_end_matches('<').replace('<', " ")
}

fn sex(c: char) -> Sex {
    match c {
        'F' => Sex::Female,
        'M' => Sex::Male,
        _ => Sex::Unspecified,
    }
}

fn names(field: &str) -> (String, Vec<String>) {
    let field = field.trim_end_matches('<');
    let (primary, secondary) = field.split_once("<<").unwrap_or((field, ""));
    (
        primary.replace('<', " "),
        secondary
            .split('<')
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect(),
    )
}

struct Checks(Vec<CheckFailure>);

impl Checks {
    fn verify(&mut self, field: MrzField, data: &str, found: char) {
        let expected = check_digit(data);
        // A field left empty may carry `<` as its digit (TD3's personal number).
        let empty_ok = found == '<' && data.bytes().all(|b| b == b'<');
        if found != expected && !empty_ok {
            self.0.push(CheckFailure {
                field,
                expected,
                found,
            });
        }
    }
}

fn td2_or_td3(format: MrzFormat, lines: Vec<String>) -> Result<Mrz, MrzError> {
    let (l1, l2) = (&lines[0], &lines[1]);
    let width = l1.len();
    let (surname, given_names) = names(at(l1, 5..width));
    let mut checks = Checks(Vec::new());
    checks.verify(MrzField::DocumentNumber, at(l2, 0..9), char_at(l2, 9));
    checks.verify(MrzField::BirthDate, at(l2, 13..19), char_at(l2, 19));
    checks.verify(MrzField::ExpiryDate, at(l2, 21..27), char_at(l2, 27));
    let composite_at = width - 1;
    let optional_end = if format == MrzFormat::Td3 {
        // The personal number and its own check digit.
        checks.verify(MrzField::PersonalNumber, at(l2, 28..42), char_at(l2, 42));
        42
    } else {
        composite_at
    };
    let composite = format!(
        "{}{}{}",
        at(l2, 0..10),
        at(l2, 13..20),
        at(l2, 21..composite_at)
    );
    checks.verify(MrzField::Composite, &composite, char_at(l2, composite_at));
    Ok(Mrz {
        format,
        document_code: unfill(at(l1, 0..2)),
        issuing_state: unfill(at(l1, 2..5)),
        document_number: unfill(at(l2, 0..9)),
        nationality: unfill(at(l2, 10..13)),
        birth_date: MrzDate::parse(MrzField::BirthDate, at(l2, 13..19))?,
        sex: sex(char_at(l2, 20)),
        expiry_date: MrzDate::parse(MrzField::ExpiryDate, at(l2, 21..27))?,
        surname,
        given_names,
        optional_data: unfill(at(l2, 28..optional_end)),
        check_failures: checks.0,
        lines,
    })
}

fn td1(lines: Vec<String>) -> Result<Mrz, MrzError> {
    let (l1, l2, l3) = (&lines[0], &lines[1], &lines[2]);
    let mut checks = Checks(Vec::new());
    let optional_1 = at(l1, 15..30);
    // A document number longer than 9 characters: its digit at 15 is `<`, and the number goes
    // on in the optional data up to its check digit, followed by filler (Doc 9303-5, 4.2.4).
    let (document_number, optional_1) = if char_at(l1, 14) == '<' && !optional_1.starts_with('<') {
        let rest = optional_1.split('<').next().unwrap_or("");
        let (more, digit) = rest.split_at(rest.len().saturating_sub(1));
        let number = format!("{}{more}", at(l1, 5..14));
        checks.verify(
            MrzField::DocumentNumber,
            &number,
            digit.chars().next().unwrap_or('<'),
        );
        (number, &optional_1[rest.len()..])
    } else {
        checks.verify(MrzField::DocumentNumber, at(l1, 5..14), char_at(l1, 14));
        (at(l1, 5..14).to_owned(), optional_1)
    };
    checks.verify(MrzField::BirthDate, at(l2, 0..6), char_at(l2, 6));
    checks.verify(MrzField::ExpiryDate, at(l2, 8..14), char_at(l2, 14));
    let composite = format!(
        "{}{}{}{}",
        at(l1, 5..30),
        at(l2, 0..7),
        at(l2, 8..15),
        at(l2, 18..29)
    );
    checks.verify(MrzField::Composite, &composite, char_at(l2, 29));
    let (surname, given_names) = names(l3);
    let optional = [unfill(optional_1), unfill(at(l2, 18..29))]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    Ok(Mrz {
        format: MrzFormat::Td1,
        document_code: unfill(at(l1, 0..2)),
        issuing_state: unfill(at(l1, 2..5)),
        document_number: unfill(&document_number),
        nationality: unfill(at(l2, 15..18)),
        birth_date: MrzDate::parse(MrzField::BirthDate, at(l2, 0..6))?,
        sex: sex(char_at(l2, 7)),
        expiry_date: MrzDate::parse(MrzField::ExpiryDate, at(l2, 8..14))?,
        surname,
        given_names,
        optional_data: optional,
        check_failures: checks.0,
        lines,
    })
}

/// A printed name as the MRZ would write it (Doc 9303-3, 6.A: the recommended transliteration
/// of Latin characters): upper case, diacritics to their base letter or their two-letter form,
/// punctuation and spaces to single separators.
pub fn transliterate(name: &str) -> Vec<String> {
    let mut out = String::new();
    for c in name.chars().flat_map(char::to_uppercase) {
        let mapped: &str = match c {
            'Ä' | 'Æ' => "AE",
            'Ö' | 'Ø' | 'Œ' => "OE",
            'Ü' => "UE",
            'Å' => "AA",
            'ß' => "SS",
            'Þ' => "TH",
            'Ð' | 'Đ' => "D",
            'Ł' => "L",
            'Ĳ' => "IJ",
            'À' | 'Á' | 'Â' | 'Ã' | 'Ą' | 'Ă' | 'Ā' => "A",
            'Ç' | 'Ć' | 'Č' | 'Ĉ' | 'Ċ' => "C",
            'È' | 'É' | 'Ê' | 'Ë' | 'Ę' | 'Ě' | 'Ē' | 'Ė' => "E",
            'Ì' | 'Í' | 'Î' | 'Ï' | 'Ī' | 'Į' | 'İ' => "I",
            'Ñ' | 'Ń' | 'Ň' | 'Ņ' => "N",
            'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ő' | 'Ō' => "O",
            'Ù' | 'Ú' | 'Û' | 'Ů' | 'Ű' | 'Ū' | 'Ų' => "U",
            'Ý' | 'Ÿ' => "Y",
            'Ś' | 'Š' | 'Ş' | 'Ș' => "S",
            'Ź' | 'Ż' | 'Ž' => "Z",
            'Ť' | 'Ţ' | 'Ț' => "T",
            'Ř' | 'Ŕ' => "R",
            'Ğ' => "G",
            'Ľ' | 'Ĺ' => "L",
            c if c.is_ascii_uppercase() => {
                out.push(c);
                continue;
            }
            // Hyphens, apostrophes, commas and spaces separate names.
            _ => " ",
        };
        out.push_str(mapped);
    }
    out.split_whitespace().map(str::to_owned).collect()
}

/// Whether a printed name and its MRZ form agree: the same names after transliteration, where
/// the MRZ may have cut the last ones off (the name field is only so long) and may have used
/// the one-letter form of a two-letter transliteration (`Ä` as `A`, as some states do).
pub fn names_agree(printed: &str, mrz_names: &[String]) -> bool {
    let printed = transliterate(printed);
    if mrz_names.is_empty() || printed.len() < mrz_names.len() {
        return printed.is_empty() && mrz_names.is_empty();
    }
    let last = mrz_names.len() - 1;
    printed
        .iter()
        .zip(mrz_names)
        .enumerate()
        .all(|(i, (p, m))| {
            let short = |s: &str| {
                s.replace("AE", "A")
                    .replace("OE", "O")
                    .replace("UE", "U")
                    .replace("AA", "A")
            };
            let same = p == m || short(p) == short(m);
            // The field ends where it ends: the last name kept may be truncated.
            same || (i == last && (p.starts_with(m.as_str()) || short(p).starts_with(&short(m))))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    // The specimens of ICAO Doc 9303 (Utopia, Anna Maria Eriksson).
    const TD3: [&str; 2] = [
        "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<",
        "L898902C36UTO7408122F1204159ZE184226B<<<<<10",
    ];
    const TD2: [&str; 2] = [
        "I<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<",
        "D231458907UTO7408122F1204159<<<<<<<6",
    ];
    const TD1: [&str; 3] = [
        "I<UTOD231458907<<<<<<<<<<<<<<<",
        "7408122F1204159UTO<<<<<<<<<<<6",
        "ERIKSSON<<ANNA<MARIA<<<<<<<<<<",
    ];

    /// The specimens written back from their fields: `compose` is the inverse of `parse` on
    /// the documents the standard itself prints.
    #[test]
    fn the_icao_specimens_are_written_back_exactly() {
        let holder = |code: &str, number: &str, optional: &str| Holder {
            document_code: code.into(),
            issuing_state: "UTO".into(),
            document_number: number.into(),
            nationality: "UTO".into(),
            birth_date: MrzDate {
                yy: 74,
                mm: 8,
                dd: 12,
            },
            sex: Sex::Female,
            expiry_date: MrzDate {
                yy: 12,
                mm: 4,
                dd: 15,
            },
            surname: "ERIKSSON".into(),
            given_names: vec!["ANNA".into(), "MARIA".into()],
            optional_data: optional.into(),
        };
        assert_eq!(
            compose(MrzFormat::Td3, &holder("P", "L898902C3", "ZE184226B")),
            TD3
        );
        assert_eq!(compose(MrzFormat::Td2, &holder("I", "D23145890", "")), TD2);
        assert_eq!(compose(MrzFormat::Td1, &holder("I", "D23145890", "")), TD1);
    }

    mod property {
        use super::*;
        use proptest::prelude::*;

        fn date() -> impl Strategy<Value = MrzDate> {
            (0u8..100, 1u8..=12, 1u8..=28).prop_map(|(yy, mm, dd)| MrzDate { yy, mm, dd })
        }

        fn holder() -> impl Strategy<Value = Holder> {
            let letters = |n: std::ops::RangeInclusive<usize>| {
                proptest::collection::vec(proptest::char::range('A', 'Z'), n)
                    .prop_map(|c| c.into_iter().collect::<String>())
            };
            let alnum = |n: std::ops::RangeInclusive<usize>| {
                proptest::collection::vec(
                    prop_oneof![
                        proptest::char::range('A', 'Z'),
                        proptest::char::range('0', '9')
                    ],
                    n,
                )
                .prop_map(|c| c.into_iter().collect::<String>())
            };
            (
                prop_oneof![Just("P"), Just("I"), Just("ID"), Just("AC")],
                letters(3..=3),
                alnum(1..=9),
                letters(3..=3),
                date(),
                prop_oneof![Just(Sex::Female), Just(Sex::Male), Just(Sex::Unspecified)],
                date(),
                // At most 6 + 1 + 6 + 2 + 6 + 1 + 6 = 28 characters: within TD1's 30, so
                // nothing is cut (a cut name reads back shorter, as it should).
                proptest::collection::vec(letters(1..=6), 1..=2),
                proptest::collection::vec(letters(1..=6), 0..=2),
                alnum(0..=7),
            )
                .prop_map(
                    |(
                        code,
                        state,
                        number,
                        nationality,
                        birth,
                        sex,
                        expiry,
                        surname,
                        given,
                        optional,
                    )| {
                        Holder {
                            document_code: code.into(),
                            issuing_state: state,
                            document_number: number,
                            nationality,
                            birth_date: birth,
                            sex,
                            expiry_date: expiry,
                            surname: surname.join(" "),
                            given_names: given,
                            optional_data: optional,
                        }
                    },
                )
        }

        fn formats() -> impl Strategy<Value = MrzFormat> {
            prop_oneof![
                Just(MrzFormat::Td1),
                Just(MrzFormat::Td2),
                Just(MrzFormat::Td3)
            ]
        }

        proptest! {
            /// Generate → parse → the same fields, every check digit verifying.
            #[test]
            fn what_is_written_parses_back_to_the_same_fields(h in holder(), format in formats()) {
                let lines = compose(format, &h);
                let mrz = parse(&lines).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(mrz.format, format);
                prop_assert_eq!(&mrz.document_code, &h.document_code);
                prop_assert_eq!(&mrz.issuing_state, &h.issuing_state);
                prop_assert_eq!(&mrz.document_number, &h.document_number);
                prop_assert_eq!(&mrz.nationality, &h.nationality);
                prop_assert_eq!(mrz.birth_date, h.birth_date);
                prop_assert_eq!(mrz.sex, h.sex);
                prop_assert_eq!(mrz.expiry_date, h.expiry_date);
                prop_assert_eq!(&mrz.surname, &h.surname);
                prop_assert_eq!(&mrz.given_names, &h.given_names);
                prop_assert_eq!(&mrz.optional_data, &h.optional_data);
                prop_assert_eq!(mrz.check_failures, vec![]);
            }

            /// Any one digit of the data changed: a check digit says so (the 7-3-1 weights
            /// catch every single-digit substitution), and the field it names holds that digit.
            #[test]
            fn one_changed_digit_fails_a_check(h in holder(), format in formats(), pick in any::<proptest::sample::Index>(), by in 1u32..10) {
                let lines = compose(format, &h);
                // The dates' digits: positions every format fills with data digits.
                let (line, positions) = match format {
                    MrzFormat::Td1 => (1, [0usize, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13]),
                    _ => (1, [13, 14, 15, 16, 17, 18, 21, 22, 23, 24, 25, 26]),
                };
                let at = positions[pick.index(positions.len())];
                let mut chars: Vec<char> = lines[line].chars().collect();
                let digit = chars[at].to_digit(10).unwrap_or(0);
                chars[at] = char::from_digit((digit + by) % 10, 10).unwrap_or('0');
                let mut changed = lines.clone();
                changed[line] = chars.into_iter().collect();
                // A changed date may not be a date at all: that is refused outright.
                if let Ok(mrz) = parse(&changed) {
                    let fields: Vec<MrzField> = mrz.check_failures.iter().map(|f| f.field).collect();
                    let date = if positions[..6].contains(&at) { MrzField::BirthDate } else { MrzField::ExpiryDate };
                    prop_assert!(fields.contains(&date), "{:?} {:?}", changed, fields);
                }
            }
        }
    }

    #[test]
    fn check_digits_follow_the_7_3_1_weights() {
        assert_eq!(check_digit("L898902C3"), '6');
        assert_eq!(check_digit("740812"), '2');
        assert_eq!(check_digit("120415"), '9');
        assert_eq!(check_digit("ZE184226B<<<<<"), '1');
        assert_eq!(check_digit("<<<<<<<<<"), '0');
    }

    #[test]
    fn the_icao_specimens_parse_and_verify() {
        let td3 = parse(&TD3).unwrap();
        assert_eq!(td3.format, MrzFormat::Td3);
        assert_eq!(
            (td3.document_code.as_str(), td3.issuing_state.as_str()),
            ("P", "UTO")
        );
        assert_eq!(td3.document_number, "L898902C3");
        assert_eq!(td3.surname, "ERIKSSON");
        assert_eq!(td3.given_names, ["ANNA", "MARIA"]);
        assert_eq!(td3.sex, Sex::Female);
        assert_eq!(
            td3.birth_date,
            MrzDate {
                yy: 74,
                mm: 8,
                dd: 12
            }
        );
        assert_eq!(
            td3.expiry_date,
            MrzDate {
                yy: 12,
                mm: 4,
                dd: 15
            }
        );
        assert_eq!(td3.optional_data, "ZE184226B");
        assert_eq!(td3.check_failures, []);

        for mrz in [parse(&TD2).unwrap(), parse(&TD1).unwrap()] {
            assert_eq!(mrz.document_number, "D23145890", "{mrz:?}");
            assert_eq!(mrz.nationality, "UTO");
            assert_eq!(mrz.given_names, ["ANNA", "MARIA"]);
            assert_eq!(mrz.check_failures, [], "{mrz:?}");
        }
        assert_eq!(parse(&TD1).unwrap().format, MrzFormat::Td1);
    }

    #[test]
    fn a_wrong_digit_names_its_field_and_the_composite() {
        // The birth date's digit 2 read as 3: its own check and the composite fail.
        let mut lines = TD3.map(str::to_owned);
        lines[1].replace_range(19..20, "3");
        let mrz = parse(&lines).unwrap();
        let fields: Vec<MrzField> = mrz.check_failures.iter().map(|f| f.field).collect();
        assert_eq!(fields, [MrzField::BirthDate, MrzField::Composite]);
        assert_eq!(mrz.check_failures[0].expected, '2');

        // A document number changed with its digit left: the number and the composite.
        let mut lines = TD1.map(str::to_owned);
        lines[0].replace_range(5..6, "E");
        let fields: Vec<MrzField> = parse(&lines)
            .unwrap()
            .check_failures
            .iter()
            .map(|f| f.field)
            .collect();
        assert_eq!(fields, [MrzField::DocumentNumber, MrzField::Composite]);
    }

    #[test]
    fn a_long_td1_document_number_continues_in_the_optional_data() {
        // 12 characters: 9 in place, `<` for the digit, 3 more and the digit in the optional data.
        let number = "D23145890123";
        let digit = check_digit(number);
        let line1 = format!("I<UTO{}<{}{digit}", &number[..9], &number[9..]);
        let line1 = format!("{line1:<<30}");
        let line2_head = "7408122F1204159UTO<<<<<<<<<<<";
        let composite = format!(
            "{}{}{}{}",
            &line1[5..30],
            &line2_head[0..7],
            &line2_head[8..15],
            &line2_head[18..29]
        );
        let line2 = format!("{line2_head}{}", check_digit(&composite));
        let mrz = parse(&[line1, line2, TD1[2].to_owned()]).unwrap();
        assert_eq!(mrz.document_number, number);
        assert_eq!(mrz.check_failures, []);
    }

    #[test]
    fn what_is_not_an_mrz_says_why() {
        assert!(matches!(
            parse(&["P<UTOERIKSSON", "L898"]),
            Err(MrzError::Shape { lines: 2, .. })
        ));
        let mut lines = TD3.map(str::to_owned);
        lines[0].replace_range(5..6, "e");
        assert_eq!(
            parse(&lines).unwrap_err(),
            MrzError::Alphabet {
                line: 1,
                position: 6,
                found: 'e'
            }
        );
        let mut lines = TD3.map(str::to_owned);
        lines[1].replace_range(15..17, "13");
        assert!(matches!(
            parse(&lines),
            Err(MrzError::Date {
                field: MrzField::BirthDate,
                ..
            })
        ));
    }

    #[test]
    fn the_lines_are_found_in_ocr_text() {
        let text = format!(
            "PASSPORT\nUtopia\nSurname ERIKSSON\n{}\n{}\n",
            TD3[0].replace("<<<<<<", "<<< <<<"),
            TD3[1]
        );
        let mrz = find(&text).unwrap().unwrap();
        assert_eq!(mrz.document_number, "L898902C3");
        assert!(find("a receipt\nTotal 4.50").is_none());
    }

    #[test]
    fn dates_take_the_century_that_makes_sense() {
        let today = NaiveDate::from_ymd_opt(2026, 12, 3).unwrap();
        let d = |yy, mm, dd| MrzDate { yy, mm, dd };
        assert_eq!(
            d(74, 8, 12).as_birth_date(today),
            NaiveDate::from_ymd_opt(1974, 8, 12)
        );
        assert_eq!(
            d(10, 1, 2).as_birth_date(today),
            NaiveDate::from_ymd_opt(2010, 1, 2)
        );
        assert_eq!(
            d(27, 1, 2).as_birth_date(today),
            NaiveDate::from_ymd_opt(1927, 1, 2)
        );
        assert_eq!(
            d(31, 6, 30).as_expiry_date(today),
            NaiveDate::from_ymd_opt(2031, 6, 30)
        );
        assert_eq!(
            d(12, 4, 15).as_expiry_date(today),
            NaiveDate::from_ymd_opt(2012, 4, 15)
        );
    }

    #[test]
    fn printed_names_are_compared_after_transliteration() {
        let m = |names: &[&str]| names.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(names_agree("Anna María", &m(&["ANNA", "MARIA"])));
        assert!(names_agree("Jürgen", &m(&["JUERGEN"])));
        assert!(names_agree("Jürgen", &m(&["JURGEN"])));
        assert!(names_agree(
            "Søren Østergård",
            &m(&["SOEREN", "OESTERGAARD"])
        ));
        assert!(names_agree("O'Brien-Smith", &m(&["O", "BRIEN", "SMITH"])));
        assert!(names_agree(
            "Maximiliane Alexandra",
            &m(&["MAXIMILIANE", "ALEX"])
        ));
        assert!(!names_agree("Anna Maria", &m(&["ANNA", "MARTA"])));
        assert!(!names_agree("Anna", &m(&["ANNA", "MARIA"])));
        assert!(!names_agree("Jörg", &m(&["JURG"])));
    }

    /// What Tesseract read off the pack's generated documents (tools/samples/make_pack.py):
    /// `0` for `O` in the country codes, `Q` for `0` in a check digit, noise in a name's fillers.
    #[test]
    fn repair_corrects_only_what_the_layout_rules_out() {
        let read = [
            "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<",
            "L898902C36UT07408122F3204153<<<<<<<<<<<<<<04",
        ];
        assert!(
            parse(&read).is_ok_and(|m| m.nationality == "UT0"),
            "as read"
        );
        let (lines, repairs) = repair(&read);
        assert_eq!(
            repairs,
            [Repair::Character {
                line: 2,
                position: 13,
                read: '0',
                corrected: 'O'
            }]
        );
        let mrz = parse(&lines).unwrap();
        assert_eq!(mrz.nationality, "UTO");
        assert_eq!(mrz.check_failures, []);

        // The document number may hold both: `CQ1X00T47` stays, and its check digit says so.
        let read = [
            "P<UTOMUELLER<<JONAS<<<<<<<<<<<<<<<<<<<c<<ec#<<",
            "CQ1X00T478UT08802299M3011021<<<<<<<<<<<<<<Q8",
        ];
        assert!(
            matches!(parse(&read), Err(MrzError::Shape { .. })),
            "46 long"
        );
        let (lines, repairs) = repair(&read);
        assert_eq!(lines[0], "P<UTOMUELLER<<JONAS<<<<<<<<<<<<<<<<<<<<<<<<<");
        assert_eq!(
            repairs[0],
            Repair::FillerTail {
                line: 1,
                read_length: 46
            }
        );
        assert_eq!(repairs.len(), 3, "the tail, UT0, the Q: {repairs:?}");
        let mrz = parse(&lines).unwrap();
        assert_eq!(
            (mrz.surname.as_str(), mrz.given_names.as_slice()),
            ("MUELLER", &["JONAS".to_owned()][..])
        );
        assert_eq!(mrz.document_number, "CQ1X00T47");
        assert_eq!(
            mrz.check_failures
                .iter()
                .map(|f| f.field)
                .collect::<Vec<_>>(),
            [MrzField::DocumentNumber, MrzField::Composite]
        );

        // TD1: the issuing state and nationality; lines that are no MRZ are left alone.
        let read = [
            "I<UT0D231458907<<<<<<<<<<<<<<<",
            "9507096F3107081UT0<<<<<<<<<<<2",
            "PENA<<LUCIA<<<<<<<<<<<<<<<<<<<",
        ];
        let (lines, repairs) = repair(&read);
        assert_eq!(repairs.len(), 2);
        assert_eq!(parse(&lines).unwrap().check_failures, []);
        assert_eq!(repair(&["UT0", "x"]).1, []);
    }
}
