"""Builds the default quality benchmark pack, bench/packs/default/ (python3 tools/samples/make_pack.py [SROIE_DIR]).

- receipts/: the 40 SROIE receipts (scanned Malaysian receipts, ICDAR 2019; MIT licence, see
  receipts/LICENSE) from SROIE_DIR (default ../shared/corpus/sroie-dev), each with its truth:
  merchant, date and total from the key file, and the text lines from the line file.
- invoices/: twelve invoices generated here as text PDFs, with every field known by construction
  (vendor name, invoice number, issue and due date, subtotal, tax, total, currency) and their
  line items (description, amount).
- invoices/intl/: nine more, three each in German, French and Spanish, with their accents, their
  date forms (14.03.2026, 14/03/2026) and number forms (1.234,56 and 1 234,56), so quality is read
  per language.

Every truth names its language (SROIE's receipts are English).

The pack is committed; the project never needs SROIE_DIR to run its benchmark.
"""
import csv
import json
import os
import shutil
import sys

from pdf import text_pdf

HERE = os.path.dirname(os.path.abspath(__file__))
PACK = os.path.join(HERE, "..", "..", "bench", "packs", "default")
SROIE = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "..", "shared", "corpus", "sroie-dev")


def truth(path, fields, lines, line_items=None, language="en"):
    body = {"fields": fields, "lines": lines}
    if line_items:
        body["line_items"] = line_items
    body["language"] = language
    with open(path, "w") as f:
        json.dump(body, f, indent=1, ensure_ascii=False)
        f.write("\n")


def receipts():
    out = os.path.join(PACK, "receipts")
    os.makedirs(out, exist_ok=True)
    shutil.copy(os.path.join(SROIE, "LICENSE"), os.path.join(out, "LICENSE"))
    for name in sorted(os.listdir(SROIE)):
        if not name.endswith(".jpg"):
            continue
        stem = name[:-4]
        shutil.copy(os.path.join(SROIE, name), os.path.join(out, name))
        with open(os.path.join(SROIE, stem + ".key.json")) as f:
            key = json.load(f)
        with open(os.path.join(SROIE, stem + ".lines.csv"), newline="") as f:
            lines = [row[8] if len(row) == 9 else ",".join(row[8:]) for row in csv.reader(f) if len(row) >= 9]
        fields = {"merchant": key["company"], "date": key["date"], "total": key["total"]}
        truth(os.path.join(out, stem + ".truth.json"), fields, lines)


VENDORS = [
    ("NORTHWIND TRADING LTD", "USD", "$"), ("BLUE HARBOUR LOGISTICS INC", "USD", "$"),
    ("KESTREL ENGINEERING GMBH", "EUR", "EUR "), ("LIMA PRINT COMPANY", "GBP", "GBP "),
    ("ORCHARD SUPPLY SDN BHD", "MYR", "RM "), ("TASMAN DATA LLC", "AUD", "AUD "),
]
ITEMS = [("Consulting services", 1000), ("Support plan", 200), ("Cloud hosting", 340.5), ("Training day", 850),
         ("Hardware rental", 125.25), ("Licence renewal", 499), ("Site survey", 610), ("Freight", 88.4)]


def money(x):
    return "{:,.2f}".format(x)


def invoices():
    out = os.path.join(PACK, "invoices")
    os.makedirs(out, exist_ok=True)
    for i in range(12):
        vendor, currency, symbol = VENDORS[i % len(VENDORS)]
        number = "INV-2026-%04d" % (101 + i * 7)
        month, day = 1 + i % 12, 3 + (i * 5) % 25
        issue = "2026-%02d-%02d" % (month, day)
        due = "2026-%02d-%02d" % (month, min(day + 2, 28)) if i % 2 else "2027-%02d-%02d" % (month, day)
        items = [ITEMS[(i + k) % len(ITEMS)] for k in range(1 + i % 3)]
        subtotal = round(sum(a for _, a in items), 2)
        rate = [0.1, 0.06, 0.2, 0.0825][i % 4]
        tax = round(subtotal * rate, 2)
        total = round(subtotal + tax, 2)
        printed_issue = issue if i % 3 else "%02d/%02d/2026" % (day, month)
        lines = [vendor, "Invoice No: " + number, "Invoice Date: " + printed_issue, "Due Date: " + due]
        lines += ["%-28s %12s" % (d, money(a)) for d, a in items]
        lines += ["Subtotal %s%s" % (symbol, money(subtotal)), "Tax (%g%%) %s%s" % (rate * 100, symbol, money(tax)),
                  "Total Due %s%s" % (symbol, money(total)), "Currency: " + currency]
        name = "inv-%03d" % (i + 1)
        with open(os.path.join(out, name + ".pdf"), "wb") as f:
            f.write(text_pdf(lines))
        fields = {"vendor_name": vendor, "invoice_number": number, "issue_date": issue, "due_date": due,
                  "subtotal": "%.2f" % subtotal, "tax": "%.2f" % tax, "total": "%.2f" % total, "currency": currency}
        line_items = [{"description": d, "amount": "%.2f" % a} for d, a in items]
        truth(os.path.join(out, name + ".truth.json"), fields, lines, line_items)


# Per language: words, vendors, items, the tax rate, and how dates and money are printed.
LANGUAGES = {
    "de": {
        "title": "Rechnung", "number": "Rechnungsnummer: ", "issue": "Rechnungsdatum: ", "due": "Fällig am: ",
        "subtotal": "Zwischensumme ", "tax": "MwSt. (%g %%) ", "total": "Gesamtbetrag ", "currency": "Währung: ",
        "terms": "Zahlbar innerhalb von vierzehn Tagen ohne Abzug auf das unten genannte Konto.",
        "vendors": ["Müller & Söhne Beratung GmbH", "Bäckerei Schröder KG", "Grünwald Logistik AG"],
        "items": [("Beratungsleistungen März", 1000), ("Schulung für Mitarbeiter", 480), ("Wartungsvertrag", 215.5),
                  ("Fahrtkosten", 64.8)],
        "rate": 0.19, "prefix": "RE", "date": "%d.%m.%Y", "thousands": ".", "decimal": ",", "after": " €",
    },
    "fr": {
        "title": "Facture", "number": "N° de facture : ", "issue": "Date de facture : ", "due": "Date d'échéance : ",
        "subtotal": "Sous-total ", "tax": "TVA (%g %%) ", "total": "Total TTC ", "currency": "Devise : ",
        "terms": "Paiement à trente jours par virement bancaire, sans escompte pour paiement anticipé.",
        "vendors": ["Éditions Lefèvre SARL", "Société Générale de Négoce", "Boulangerie Hélène et Frères"],
        "items": [("Prestation de conseil", 1000), ("Formation des équipes", 480), ("Hébergement mensuel", 215.5),
                  ("Frais de déplacement", 64.8)],
        "rate": 0.2, "prefix": "FA", "date": "%d/%m/%Y", "thousands": " ", "decimal": ",", "after": " €",
    },
    "es": {
        "title": "Factura", "number": "N.º de factura: ", "issue": "Fecha de factura: ", "due": "Fecha de vencimiento: ",
        "subtotal": "Base imponible ", "tax": "IVA (%g %%) ", "total": "Total factura ", "currency": "Moneda: ",
        "terms": "Pago a treinta días mediante transferencia bancaria a la cuenta indicada abajo.",
        "vendors": ["Distribuciones Peña S.L.", "Cafés Andalucía S.A.", "Construcciones Ibáñez y Núñez S.L."],
        "items": [("Servicios de consultoría", 1000), ("Formación del personal", 480), ("Mantenimiento anual", 215.5),
                  ("Gastos de desplazamiento", 64.8)],
        "rate": 0.21, "prefix": "FAC", "date": "%d/%m/%Y", "thousands": ".", "decimal": ",", "after": " €",
    },
}


def local_money(x, spec):
    whole, cents = ("%.2f" % x).split(".")
    groups = []
    while len(whole) > 3:
        groups.insert(0, whole[-3:])
        whole = whole[:-3]
    groups.insert(0, whole)
    return spec["thousands"].join(groups) + spec["decimal"] + cents


def international_invoices():
    import datetime
    out = os.path.join(PACK, "invoices", "intl")
    os.makedirs(out, exist_ok=True)
    for language, spec in LANGUAGES.items():
        for i in range(3):
            vendor = spec["vendors"][i]
            number = "%s-2026-%04d" % (spec["prefix"], 211 + i * 13)
            issue = datetime.date(2026, 2 + i * 3, 4 + i * 9)
            due = issue + datetime.timedelta(days=30)
            items = [spec["items"][(i + k) % len(spec["items"])] for k in range(1 + i)]
            subtotal = round(sum(a for _, a in items), 2)
            tax = round(subtotal * spec["rate"], 2)
            total = round(subtotal + tax, 2)
            lines = [vendor, spec["title"], spec["number"] + number, spec["issue"] + issue.strftime(spec["date"]),
                     spec["due"] + due.strftime(spec["date"])]
            lines += ["%-28s %12s" % (d, local_money(a, spec)) for d, a in items]
            lines += [spec["subtotal"] + local_money(subtotal, spec) + spec["after"],
                      (spec["tax"] % (spec["rate"] * 100)) + local_money(tax, spec) + spec["after"],
                      spec["total"] + local_money(total, spec) + spec["after"],
                      spec["currency"] + "EUR", spec["terms"]]
            name = "%s-%03d" % (language, i + 1)
            with open(os.path.join(out, name + ".pdf"), "wb") as f:
                f.write(text_pdf(lines, size=11, winansi=True))
            fields = {"vendor_name": vendor, "invoice_number": number, "issue_date": issue.isoformat(),
                      "due_date": due.isoformat(), "subtotal": "%.2f" % subtotal, "tax": "%.2f" % tax,
                      "total": "%.2f" % total, "currency": "EUR"}
            line_items = [{"description": d, "amount": "%.2f" % a} for d, a in items]
            truth(os.path.join(out, name + ".truth.json"), fields, lines, line_items, language)


if __name__ == "__main__":
    receipts()
    invoices()
    international_invoices()
    print("wrote", os.path.normpath(PACK))
