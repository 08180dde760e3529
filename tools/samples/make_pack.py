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

- ids/: eight identity documents generated here — four passports (TD3) and four identity cards
  (TD1) of ICAO's fictional Utopia — each printed with its labelled fields and its MRZ in a
  monospaced face, then rasterized to PNG (pdftoppm, 200 dpi) so the simulator reads them with
  Tesseract. Check digits are computed by ICAO 9303's rule; one of each kind has a digit
  deliberately wrong, one of each is expired. Truth by construction.

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


def check_digit(data):
    """ICAO 9303-3, 4.9: weights 7, 3, 1; A-Z are 10-35, < is 0."""
    value = lambda c: 0 if c == "<" else int(c) if c.isdigit() else ord(c) - 55
    return str(sum(value(c) * (7, 3, 1)[i % 3] for i, c in enumerate(data)) % 10)


def mrz_name(surname, given, width):
    # The printed name as the MRZ writes it (Doc 9303-3, 6.A): Ü → UE, spaces → <.
    table = {"Ü": "UE", "Ö": "OE", "Ä": "AE", "É": "E", "È": "E", "Ñ": "N", "Í": "I", "Ó": "O", "Á": "A"}
    t = lambda s: "".join(table.get(c, c) for c in s.upper()).replace(" ", "<").replace("-", "<")
    return (t(surname) + "<<" + t(given)).ljust(width, "<")[:width]


def yymmdd(d):
    return d.strftime("%y%m%d")


def td3(doc):
    number = doc["number"].ljust(9, "<")
    line1 = ("P<" + doc["state"] + mrz_name(doc["surname"], doc["given"], 39))
    personal = "".ljust(14, "<")
    parts = [number + check_digit(number), doc["nationality"], yymmdd(doc["birth"]) + check_digit(yymmdd(doc["birth"])),
             doc["sex"], yymmdd(doc["expiry"]) + check_digit(yymmdd(doc["expiry"])), personal + "0"]
    composite = parts[0] + parts[2] + parts[4] + parts[5]
    line2 = "".join(parts) + check_digit(composite)
    return [line1, line2]


def td1(doc):
    number = doc["number"].ljust(9, "<")
    line1 = ("I<" + doc["state"] + number + check_digit(number)).ljust(30, "<")
    birth, expiry = yymmdd(doc["birth"]), yymmdd(doc["expiry"])
    line2 = birth + check_digit(birth) + doc["sex"] + expiry + check_digit(expiry) + doc["nationality"]
    line2 = line2.ljust(29, "<")
    composite = line1[5:30] + line2[0:7] + line2[8:15] + line2[18:29]
    line2 += check_digit(composite)
    return [line1, line2, mrz_name(doc["surname"], doc["given"], 30)]


def identity_documents():
    import datetime
    import subprocess
    import tempfile
    out = os.path.join(PACK, "ids")
    os.makedirs(out, exist_ok=True)
    d = datetime.date
    people = [
        ("passport", "ERIKSSON", "ANNA MARIA", "L898902C3", "F", d(1974, 8, 12), d(2032, 4, 15), None),
        ("passport", "MÜLLER", "JONAS", "C01X00T47", "M", d(1988, 2, 29), d(2030, 11, 2), None),
        ("passport", "OKAFOR", "CHIDI", "P4366918B", "M", d(1990, 6, 1), d(2033, 1, 20), "broken"),
        ("passport", "LINDQVIST", "SARA", "XA0042195", "F", d(1969, 12, 24), d(2024, 3, 31), "expired"),
        ("id_card", "PEÑA", "LUCÍA", "D23145890", "F", d(1995, 7, 9), d(2031, 7, 8), None),
        ("id_card", "NAKAMURA", "KENJI", "T22000129", "M", d(1979, 3, 15), d(2029, 9, 30), None),
        ("id_card", "DUBOIS", "MARIE CLAIRE", "AB1234567", "F", d(2001, 10, 3), d(2032, 10, 2), "broken"),
        ("id_card", "SMITH", "JOHN", "ZE9876543", "M", d(1958, 1, 6), d(2025, 8, 12), "expired"),
    ]
    for i, (kind, surname, given, number, sex, birth, expiry, flaw) in enumerate(people):
        doc = {"state": "UTO", "nationality": "UTO", "surname": surname, "given": given, "number": number,
               "sex": sex, "birth": birth, "expiry": expiry}
        mrz = td3(doc) if kind == "passport" else td1(doc)
        if flaw == "broken":
            # The document number's check digit, off by one: what a forger or a misprint leaves.
            line = 0 if kind == "id_card" else 1
            at = 14 if kind == "id_card" else 9
            wrong = str((int(mrz[line][at]) + 1) % 10)
            mrz[line] = mrz[line][:at] + wrong + mrz[line][at + 1:]
        title = "PASSPORT" if kind == "passport" else "IDENTITY CARD"
        date = lambda x: x.strftime("%d %b %Y").upper()
        lines = [title, "Issuing State: UTO", "Surname: " + surname, "Given names: " + given,
                 "Nationality: UTO", "Date of birth: " + date(birth), "Sex: " + sex,
                 "Date of expiry: " + date(expiry), ("Passport No: " if kind == "passport" else "Card No: ") + number,
                 "", ""] + mrz
        name = "%s-%03d" % ("passport" if kind == "passport" else "idcard", i % 4 + 1)
        with tempfile.TemporaryDirectory() as tmp:
            pdf = os.path.join(tmp, "doc.pdf")
            with open(pdf, "wb") as f:
                f.write(text_pdf(lines, size=12, winansi=True, font="Courier"))
            subprocess.run(["pdftoppm", "-r", "200", "-png", "-gray", "-singlefile", pdf, os.path.join(out, name)],
                           check=True)
        fields = {"document_type": kind, "document_number": number, "surname": surname, "given_names": given,
                  "nationality": "UTO", "issuing_country": "UTO", "date_of_birth": birth.isoformat(),
                  "expiry_date": expiry.isoformat(), "sex": sex, "mrz": "\n".join(mrz)}
        truth(os.path.join(out, name + ".truth.json"), fields, [l for l in lines if l])


if __name__ == "__main__":
    receipts()
    invoices()
    international_invoices()
    identity_documents()
    print("wrote", os.path.normpath(PACK))
