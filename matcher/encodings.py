"""The encoding of a planner's text file: the byte-order mark, UTF-16 without one, UTF-8, GB18030.

GB18030 (a superset of GBK, Chinese Excel's default) is tried before
charset-normalizer's guess, which calls short GBK files Shift JIS;
charset-normalizer then chooses among Big5, Shift JIS and EUC-KR.
"""

from __future__ import annotations

import codecs

LABELS = {
    "utf-8": "UTF-8",
    "utf-8-sig": "UTF-8",
    "utf-16": "UTF-16",
    "utf-16-le": "UTF-16",
    "utf-16-be": "UTF-16",
    "utf-32": "UTF-32",
    "gb18030": "GB18030 (GBK)",
    "big5": "Big5",
    "shift_jis": "Shift JIS",
    "euc_kr": "EUC-KR",
}


def encoding_of(sample: bytes, *, complete: bool = True) -> str:
    """The encoding of a file starting with ``sample`` (the whole file when ``complete``)."""
    if sample.startswith(codecs.BOM_UTF32_LE) or sample.startswith(codecs.BOM_UTF32_BE):
        return "utf-32"
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith(codecs.BOM_UTF16_LE) or sample.startswith(codecs.BOM_UTF16_BE):
        return "utf-16"
    utf16 = _utf16_without_mark(sample, complete)
    if utf16 is not None:
        return utf16
    if _decodes(sample, "utf-8", complete):
        return "utf-8"
    if _decodes(sample, "gb18030", complete):
        return "gb18030"
    from charset_normalizer import from_bytes

    best = from_bytes(sample, cp_isolation=["big5", "shift_jis", "euc_kr"]).best()
    if best is not None and _decodes(sample, best.encoding, complete):
        return str(best.encoding)
    # Mostly UTF-8 with a few bad bytes: those rows are reported, the rest read.
    return "utf-8"


def _utf16_without_mark(sample: bytes, complete: bool) -> str | None:
    """UTF-16 without a byte-order mark: its ASCII characters (ids, commas, line
    ends) put NUL bytes on one side of each pair, which no text file in a
    byte encoding has. (Such bytes can be valid UTF-8, hence this test first.)"""
    nuls = sample.count(b"\x00")
    if nuls * 50 < len(sample):
        return None
    even, odd = sample[0::2].count(b"\x00"), sample[1::2].count(b"\x00")
    if max(even, odd) * 10 < nuls * 9:
        return None
    encoding = "utf-16-be" if even > odd else "utf-16-le"
    if len(sample) % 2 and not complete:
        sample = sample[:-1]
    return encoding if _decodes(sample, encoding, complete) else None


def _decodes(sample: bytes, encoding: str, complete: bool) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    try:
        decoder.decode(sample, final=complete)
    except UnicodeDecodeError:
        return False
    return True


def encoding_label(encoding: str) -> str:
    return LABELS.get(encoding, encoding)
