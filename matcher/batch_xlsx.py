"""Excel workbooks read with python-calamine: the first sheet, its header row, cells as text."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from .errors import BatchInputError


def open_sheet(path: Path, name: str) -> tuple[Any, Iterator[tuple[int, tuple[Any, ...]]]]:
    """The workbook (to close) and its first sheet's rows after the header, numbered."""
    book, header_row, _ = _open_book(path, name)
    sheet = book.sheet
    first = sheet.start[0] + 1 if sheet.start else 1
    rows = (
        (number, tuple(values))
        for number, values in enumerate(sheet.iter_rows(), start=first)
        if number > header_row
    )
    return book, rows


def sheet_header(path: Path, name: str) -> tuple[int, list[str]]:
    book, header_row, header = _open_book(path, name)
    book.close()
    return header_row, header


def _open_book(path: Path, name: str) -> tuple[_Book, int, list[str]]:
    from python_calamine import CalamineWorkbook

    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise BatchInputError(f"cannot read {name}: {exc.strerror}") from exc
    try:
        # Opened from the handle: a path is judged by its extension, and an
        # upload being read may be kept under any name.
        workbook = CalamineWorkbook.from_filelike(handle)
        if not workbook.sheet_names:
            raise BatchInputError(f"{name}: the workbook has no sheet")
        book = _Book(workbook, workbook.get_sheet_by_index(0), handle)
    except BatchInputError:
        handle.close()
        raise
    except Exception as exc:  # calamine's errors: not a zip, not a workbook, a broken part
        handle.close()
        raise BatchInputError(
            f"{name}: not an Excel .xlsx workbook ({type(exc).__name__}); "
            "save it from Excel as .xlsx or CSV"
        ) from None
    sheet = book.sheet
    first = sheet.start[0] + 1 if sheet.start else 1
    for number, values in enumerate(sheet.iter_rows(), start=first):
        header = [cell_text(value).strip() for value in values]
        if any(header):
            while header and not header[-1]:
                header.pop()
            return book, number, header
    book.close()
    raise BatchInputError(f"{name}: the first sheet is empty")


class _Book:
    """A workbook, its first sheet and the file it reads, closed together."""

    def __init__(self, workbook: Any, sheet: Any, handle: IO[bytes]) -> None:
        self.sheet = sheet
        self._workbook = workbook
        self._handle = handle

    def close(self) -> None:
        """Close both; closing twice (the rows' end, then the caller) is harmless."""
        from python_calamine import WorkbookClosed

        try:
            self._workbook.close()
        except WorkbookClosed:
            pass
        finally:
            self._handle.close()


def cell_text(value: Any) -> str:
    """A cell as text: whole numbers without ``.0`` (ids typed as numbers), dates in ISO form."""
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)
