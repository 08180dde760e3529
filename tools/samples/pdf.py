"""A one-page text PDF written by hand (Helvetica, one line per entry): no dependency, and the
simulator reads it from its text layer."""


def text_pdf(lines, size=13, winansi=False, font="Helvetica"):
    """winansi: the font gets /WinAnsiEncoding and the text is written in it (cp1252), so accented
    letters (ä, é, ñ) are drawn and extracted as themselves; without it the bytes are ASCII."""
    content = "BT /F1 %d Tf 72 740 Td %d TL\n" % (size, size + 6)
    for line in lines:
        content += "(%s) Tj T*\n" % line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    content += "ET\n"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        "<< /Type /Font /Subtype /Type1 /BaseFont /%s%s >>" % (font, " /Encoding /WinAnsiEncoding" if winansi else ""),
        "<< /Length %d >>\nstream\n%sendstream" % (len(content), content),
    ]
    encoding = "cp1252" if winansi else "ascii"
    out = b"%PDF-1.4\n"
    offsets = []
    for i, body in enumerate(objects):
        offsets.append(len(out))
        out += ("%d 0 obj\n%s\nendobj\n" % (i + 1, body)).encode(encoding)
    xref = len(out)
    out += ("xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)).encode()
    for o in offsets:
        out += ("%010d 00000 n \n" % o).encode()
    out += ("trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)).encode()
    return out
