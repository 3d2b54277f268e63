"""Contact list import (pure)."""

from __future__ import annotations

import csv
import io

import pytest

from ccd.campaigns.importer import ContactRow, ImportFormatError, Rejected, read_contacts

CSV = """Phone,Name,TZ,Language,Country,Account
+1 555 777 0001,Carol,America/New_York,en,,A1
(555) 777-0002,Dan,,es,,A2
5557770001,Again,,,,A3
not a number,X,,,,A4
+15557770003,Zed,Mars/Base,,,A5
0612345678,Marie,Europe/Paris,fr,FR,A6
+15557770004,Eve,,english,,A7
+15557770005,Old,,,,A8
+4420,Short,,,,A9
+15557770006,Foo,,,ZZ,A10
+19005550000,Premium,,,,A11
"""


def parse(text: str, existing: set[str] | None = None) -> list[ContactRow | Rejected]:
    reader = csv.DictReader(io.StringIO(text))
    return list(read_contacts(reader, list(reader.fieldnames or []), default_country="US",
                              allowed=lambda n: not n.startswith("+1900"),
                              existing=existing or set()))


def test_rows_are_normalised_and_rejections_explained() -> None:
    out = parse(CSV, existing={"+15557770005"})
    ok = [r for r in out if isinstance(r, ContactRow)]
    bad = {r.line: r.reason for r in out if isinstance(r, Rejected)}
    assert [(r.line, r.e164, r.name, r.timezone, r.language) for r in ok] == [
        (2, "+15557770001", "Carol", "America/New_York", "en"),
        (3, "+15557770002", "Dan", None, "es"),
        (7, "+33612345678", "Marie", "Europe/Paris", "fr"),
    ]
    assert ok[0].data == {"Account": "A1"}
    assert "duplicate of line 2" in bad[4]
    assert "not a phone number" in bad[5]
    assert "unknown time zone" in bad[6]
    assert "language" in bad[8]
    assert "already in the campaign" in bad[9]
    assert "not a phone number" in bad[10]
    assert "unknown country" in bad[11]
    assert "dial patterns" in bad[12]
    assert len(ok) + len(bad) == 11


def test_header_and_shape_errors() -> None:
    with pytest.raises(ImportFormatError, match="phone column"):
        parse("name,email\nx,y\n")
    out = parse("phone,name\n+15557770001,A,extra\n,B\n")
    assert [r.reason for r in out if isinstance(r, Rejected)] == \
        ["more values than columns", "no phone number"]
