//! The console's pages, rendered on the server: plain HTML, a little CSS, and a few lines of
//! JavaScript for the keys. Everything that comes from a document or a vendor is escaped.

use std::fmt::Write as _;

use serde_json::Value;

use super::queue::{Filter, Item};
use crate::output::age;

pub use crate::output::esc;

/// Percent-encodes a query value.
fn query_value(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

const STYLE: &str = r#"
body{font:15px/1.4 system-ui,sans-serif;margin:0;color:#1d1d1f;background:#f6f6f7}
header{background:#23395d;color:#fff;padding:.6em 1em;display:flex;gap:1em;align-items:baseline}
header a{color:#fff}
main{padding:1em}
table{border-collapse:collapse;background:#fff;width:100%}
th,td{border-bottom:1px solid #ddd;padding:.35em .6em;text-align:left;vertical-align:top}
tr.selected{outline:2px solid #2a6fdb}
.rule{display:inline-block;background:#fde2e1;color:#8a1c14;border-radius:3px;padding:0 .4em;margin:0 .2em .2em 0;font-size:.85em}
.doc{display:flex;gap:1.5em;align-items:flex-start}
.page{position:relative;display:inline-block;border:1px solid #ccc;background:#fff;max-width:55vw}
.page img{display:block;max-width:55vw;height:auto}
.box{position:absolute;border:2px solid #2a6fdb;background:rgba(42,111,219,.08)}
.box.flagged{border-color:#d93025;background:rgba(217,48,37,.15)}
.fields{flex:1;min-width:24em}
tr.flagged td{background:#fff4f3}
tr.flagged input{border:2px solid #d93025}
input[type=text]{width:100%;box-sizing:border-box;font:inherit;padding:.2em}
.keys{color:#555;font-size:.85em}
.notice{background:#e6f4ea;padding:.5em 1em;margin-bottom:1em}
.conf-low{color:#b3261e;font-weight:600}
button{font:inherit;padding:.3em .9em}
"#;

fn page(title: &str, body: &str, script: &str) -> String {
    format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>{}</title><style>{STYLE}</style></head>\
         <body><header><strong>ocrbridge review</strong><a href=\"/\">queue</a><span>{}</span></header><main>{body}</main>\
         <script>{script}</script></body></html>",
        esc(title),
        esc(title)
    )
}

fn rules_html(item: &Item) -> String {
    item.rules()
        .iter()
        .map(|r| format!("<span class=rule>{}</span>", esc(r)))
        .collect()
}

/// The queue page: riskiest first, with the filters it was asked for.
pub fn queue(stack: &str, items: &[Item], filter: &Filter, notice: Option<&str>) -> String {
    let mut body = String::new();
    if let Some(n) = notice {
        let _ = write!(body, "<div class=notice id=notice>{}</div>", esc(n));
    }
    let _ = write!(
        body,
        "<form method=get action=\"/\" id=filters>\
         <label>profile <input name=profile value=\"{}\" size=10></label> \
         <label>source <input name=source value=\"{}\" size=10></label> \
         <label>rule <input name=rule value=\"{}\" size=16></label> \
         <button>filter</button></form>\
         <p class=keys>{} waiting in {} · keys: <b>j</b>/<b>k</b> move, <b>Enter</b> open</p>",
        esc(filter.profile.as_deref().unwrap_or("")),
        esc(filter.source.as_deref().unwrap_or("")),
        esc(filter.rule.as_deref().unwrap_or("")),
        items.len(),
        esc(stack),
    );
    body.push_str("<table id=queue><thead><tr><th>#</th><th>document</th><th>profile</th><th>source</th><th>rules</th><th>lowest critical confidence</th><th>waiting</th><th>risk</th></tr></thead><tbody>");
    for (n, item) in items.iter().enumerate() {
        let id = item.job.id.as_str();
        let _ = write!(
            body,
            "<tr data-job=\"{id}\"{}><td>{}</td><td><a href=\"/jobs/{id}{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=risk>{}</td></tr>",
            if n == 0 { " class=selected" } else { "" },
            n + 1,
            filter_query(filter),
            esc(&item.job.source.key),
            esc(item.job.profile.as_str()),
            esc(item.job.channel.as_deref().unwrap_or("other")),
            rules_html(item),
            item.lowest_critical_confidence
                .map_or("-".into(), |c| format!("{c:.2}")),
            age(item.waiting_ms),
            item.risk,
        );
    }
    body.push_str("</tbody></table>");
    if items.is_empty() {
        body.push_str("<p id=empty>Nothing to review.</p>");
    }
    page("review queue", &body, QUEUE_KEYS)
}

/// The filter as a query string (`?profile=…`), kept from the queue to the document and back.
pub fn filter_query(filter: &Filter) -> String {
    let parts: Vec<String> = [
        ("profile", &filter.profile),
        ("source", &filter.source),
        ("rule", &filter.rule),
    ]
    .iter()
    .filter_map(|(k, v)| v.as_deref().map(|v| format!("{k}={}", query_value(v))))
    .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

const QUEUE_KEYS: &str = r#"
const rows=[...document.querySelectorAll('#queue tbody tr')];let at=0;
function sel(n){if(!rows.length)return;rows[at].classList.remove('selected');at=Math.max(0,Math.min(rows.length-1,n));rows[at].classList.add('selected');rows[at].scrollIntoView({block:'nearest'});}
document.addEventListener('keydown',e=>{if(e.target.tagName==='INPUT')return;
if(e.key==='j')sel(at+1);else if(e.key==='k')sel(at-1);
else if(e.key==='Enter'&&rows.length){rows[at].querySelector('a').click();}});
"#;

/// One field as the document page shows it.
#[derive(Debug, Clone)]
pub struct FieldView {
    pub name: String,
    /// The value as the reviewer edits it (the canonical value's text).
    pub value: String,
    pub raw: Option<String>,
    pub confidence: Option<f64>,
    pub page: Option<u64>,
    pub bbox: Option<[f64; 4]>,
    /// The rules that flagged it.
    pub rules: Vec<String>,
}

impl FieldView {
    /// Text of a JSON field value as a reviewer reads and edits it.
    pub fn text(value: &Value) -> String {
        match value {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
}

/// Where the document's page images come from.
#[derive(Debug, Clone)]
pub enum PageImage {
    /// An image the browser shows (a presigned URL of the upload).
    Url(String),
    /// PDF pages the console renders (`/jobs/{id}/page/{n}`): this many, from the first.
    Rendered(u32),
    /// Nothing the browser can show (a TIFF or HEIC, or a PDF with `pdftoppm` missing).
    None(String),
}

pub struct DocumentView<'a> {
    pub item: &'a Item,
    pub fields: Vec<FieldView>,
    pub image: PageImage,
    pub pages: u32,
    pub csrf: &'a str,
    pub previous: Option<String>,
    pub next: Option<String>,
    pub filter: &'a Filter,
    pub reason: Option<&'a str>,
}

/// The document page: the page image with the fields' boxes, beside the fields to correct.
pub fn document(v: &DocumentView<'_>) -> String {
    let job = &v.item.job;
    let id = job.id.as_str();
    let q = filter_query(v.filter);
    let mut body = String::new();
    let _ = write!(
        body,
        "<p><strong>{}</strong> · {} · {} page(s) · waiting {} · risk {} · {}</p>",
        esc(&job.source.key),
        esc(job.profile.as_str()),
        v.pages,
        age(v.item.waiting_ms),
        v.item.risk,
        rules_html(v.item),
    );
    if let Some(reason) = v.reason {
        let _ = write!(body, "<p class=keys id=why>{}</p>", esc(reason));
    }
    body.push_str("<div class=doc><div>");
    let boxes = |page: u32| -> String {
        v.fields
            .iter()
            .filter(|f| f.page.unwrap_or(1) == u64::from(page))
            .filter_map(|f| {
                let [l, t, w, h] = f.bbox?;
                Some(format!(
                    "<div class=\"box{}\" data-field=\"{}\" title=\"{}\" style=\"left:{:.2}%;top:{:.2}%;width:{:.2}%;height:{:.2}%\"></div>",
                    if f.rules.is_empty() { "" } else { " flagged" },
                    esc(&f.name),
                    esc(&f.name),
                    l * 100.0,
                    t * 100.0,
                    w * 100.0,
                    h * 100.0
                ))
            })
            .collect()
    };
    match &v.image {
        PageImage::Url(url) => {
            let _ = write!(
                body,
                "<div class=page><img id=page-1 alt=\"page 1\" src=\"{}\">{}</div>",
                esc(url),
                boxes(1)
            );
        }
        PageImage::Rendered(pages) => {
            for n in 1..=*pages {
                let _ = write!(
                    body,
                    "<div class=page><img id=page-{n} alt=\"page {n}\" src=\"/jobs/{id}/page/{n}\">{}</div>",
                    boxes(n)
                );
            }
        }
        PageImage::None(why) => {
            let _ = write!(body, "<p id=noimage>{}</p>", esc(why));
        }
    }
    let _ = write!(
        body,
        "</div><div class=fields><form method=post action=\"/jobs/{id}/decide{q}\" id=decide>\
         <input type=hidden name=csrf value=\"{}\">\
         <table id=fields><thead><tr><th>field</th><th>value</th><th>vendor wrote</th><th>confidence</th><th>flagged by</th></tr></thead><tbody>",
        esc(v.csrf)
    );
    for f in &v.fields {
        let flagged = !f.rules.is_empty();
        let _ = write!(
            body,
            "<tr data-field=\"{name}\"{cls}><td><label for=\"f-{name}\">{name}</label></td>\
             <td><input type=text id=\"f-{name}\" name=\"field.{name}\" value=\"{value}\"{flag}></td>\
             <td>{raw}</td><td{low}>{conf}</td><td>{rules}</td></tr>",
            name = esc(&f.name),
            cls = if flagged { " class=flagged" } else { "" },
            value = esc(&f.value),
            flag = if flagged { " data-flagged=1" } else { "" },
            raw = esc(f.raw.as_deref().unwrap_or("")),
            low = if f.confidence.is_some_and(|c| c < 0.6) {
                " class=conf-low"
            } else {
                ""
            },
            conf = f.confidence.map_or("-".into(), |c| format!("{c:.2}")),
            rules = f
                .rules
                .iter()
                .map(|r| format!("<span class=rule>{}</span>", esc(r)))
                .collect::<String>(),
        );
    }
    let _ = write!(
        body,
        "</tbody></table><p><button type=submit name=action value=approve id=approve>Approve (a)</button> \
         <span class=keys>changed fields are recorded as corrections, beside the vendor's values</span></p></form>\
         <form method=post action=\"/jobs/{id}/decide{q}\" id=reject><input type=hidden name=csrf value=\"{}\">\
         <input type=hidden name=action value=reject>\
         <label>reject because <input type=text name=reason id=reason required placeholder=\"not a receipt, unreadable…\"></label> \
         <button type=submit>Reject (r)</button></form>\
         <p class=keys>keys: <b>n</b> next flagged field · <b>a</b> approve · <b>r</b> reject · <b>j</b>/<b>k</b> next/previous document · in a field, <b>Enter</b> approves with the change and <b>Esc</b> leaves it</p>\
         <p>{}{}</p></div></div>",
        esc(v.csrf),
        v.previous
            .as_ref()
            .map_or(String::new(), |p| format!("<a id=prev href=\"/jobs/{}{q}\">← previous</a> ", esc(p))),
        v.next
            .as_ref()
            .map_or(String::new(), |n| format!("<a id=next href=\"/jobs/{}{q}\">next →</a>", esc(n))),
    );
    page(&format!("review {}", job.source.key), &body, DOCUMENT_KEYS)
}

const DOCUMENT_KEYS: &str = r#"
const flagged=[...document.querySelectorAll('input[data-flagged]')];let f=-1;
function nextFlagged(){if(!flagged.length)return;f=(f+1)%flagged.length;flagged[f].focus();flagged[f].select();}
document.addEventListener('keydown',e=>{
if(e.target.tagName==='INPUT'){if(e.key==='Escape')e.target.blur();return;}
if(e.key==='n'){e.preventDefault();nextFlagged();}
else if(e.key==='a'){document.getElementById('approve').click();}
else if(e.key==='r'){e.preventDefault();document.getElementById('reason').focus();}
else if(e.key==='j'){const n=document.getElementById('next');if(n)n.click();}
else if(e.key==='k'){const p=document.getElementById('prev');if(p)p.click();}});
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_documents_is_escaped() {
        assert_eq!(
            esc(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        assert_eq!(
            filter_query(&Filter {
                rule: Some("a b&c".into()),
                ..Filter::default()
            }),
            "?rule=a%20b%26c"
        );
    }
}
