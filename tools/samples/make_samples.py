"""Regenerates samples/: small documents made for the demo (python3 tools/samples/make_samples.py).

Text PDFs are written by hand (Helvetica, one line per entry); the PNG is one of them rendered
by poppler's pdftoppm, so it has no text layer and must be OCRed.
"""
import os
import subprocess

from pdf import text_pdf

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "samples")


def write(path, data):
    with open(os.path.join(ROOT, path), "wb") as f:
        f.write(data)


write("receipts/acme-grocery.pdf", text_pdf([
    "ACME GROCERY SDN BHD", "12 JALAN MERDEKA, 50000 KUALA LUMPUR", "Tel: 03-1234 5678",
    "Date: 14/11/2026", "Milk 1L            4.50", "Bread              3.20", "Eggs x10           7.90",
    "Subtotal 15.60", "Tax 0.94", "Total 16.54", "Paid in MYR", "THANK YOU",
]))
write("receipts/wrong-total.pdf", text_pdf([
    "CORNER CAFE ENTERPRISE", "8 JALAN BUNGA, 10200 PENANG", "Date: 20/11/2026",
    "Latte              9.00", "Croissant          6.00", "Subtotal 15.00", "Tax 0.90", "Total 19.90", "Paid in MYR",
]))
write("invoices/northwind-0042.pdf", text_pdf([
    "NORTHWIND TRADING LTD", "Invoice No: INV-2026-0042", "Invoice Date: 2026-11-02", "Due Date: 2026-12-02",
    "Consulting services        1,000.00", "Support plan                 200.00",
    "Subtotal $1,200.00", "Tax (10%) $120.00", "Total Due $1,320.00",
]))
cafe = text_pdf([
    "HARBOUR NOODLE HOUSE SDN BHD", "21 JALAN PANTAI, 81100 JOHOR BAHRU", "Date: 18/11/2026",
    "Laksa              12.00", "Teh tarik           3.50", "Subtotal 15.50", "Tax 0.93", "Total 16.43", "Paid in MYR",
], size=16)
write("receipts/harbour-noodle.pdf.tmp", cafe)
subprocess.run(["pdftoppm", "-r", "110", "-png", "-singlefile", os.path.join(ROOT, "receipts/harbour-noodle.pdf.tmp"),
                os.path.join(ROOT, "receipts/harbour-noodle")], check=True)
os.remove(os.path.join(ROOT, "receipts/harbour-noodle.pdf.tmp"))
write("misc/notes.txt", b"This is a plain text file, not a document an OCR vendor takes.\n")
