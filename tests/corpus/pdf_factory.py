"""Build tiny PDFs by hand for the loader tests (one text line per row, Helvetica)."""

from __future__ import annotations


def _escape(text: str) -> bytes:
    raw = text.encode("cp1252")
    return raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def make_pdf(
    lines: list[str],
    *,
    title: str | None = None,
    pages: int = 1,
    repeat: int = 1,
    compress: bool = False,
) -> bytes:
    """A valid PDF whose text layer holds `lines` (WinAnsi encoding) on each of `pages` pages
    sharing one content stream; `repeat` repeats the lines in the stream, `compress` stores it
    with /FlateDecode (a tiny file that decompresses to a huge text: the PDF «bomb»)."""
    import zlib

    text_ops = b"".join(b"(" + _escape(line) + b") Tj T*\n" for line in lines)
    stream = b"BT /F1 12 Tf 72 720 Td 14 TL\n" + text_ops * repeat + b"ET"
    flate = b""
    if compress:
        stream, flate = zlib.compress(stream, 9), b" /Filter /FlateDecode"
    # 1 catalog, 2 page tree, 3 font, 4 the shared content stream, 5… the pages
    kids = " ".join(f"{5 + i} 0 R" for i in range(pages)).encode()
    page = (
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 3 0 R >> >> /Contents 4 0 R >>"
    )
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [" + kids + b"] /Count " + str(pages).encode() + b" >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Length "
        + str(len(stream)).encode()
        + flate
        + b" >>\nstream\n"
        + stream
        + b"\nendstream",
        *([page] * pages),
    ]
    if title is not None:
        objects.append(b"<< /Title (" + _escape(title) + b") >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    info = f" /Info {len(objects)} 0 R" if title is not None else ""
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R{info} >>\n".encode()
    out += f"startxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)
