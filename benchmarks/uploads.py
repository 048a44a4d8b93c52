"""How fast planners' files are read: each format and encoding, without matching.

Writes the same shoppers as UTF-8 CSV, GBK CSV (semicolons), UTF-16 CSV
(tabs), Excel .xlsx and JSON Lines into a temporary folder, then times
:func:`matcher.batch_input.describe_input` (encoding, delimiter, header),
:func:`~matcher.batch_input.count_rows` (the progress total) and reading every
row with :func:`~matcher.batch_input.read_rows` (duplicate ids checked). The
readers run before matching, so their rate bounds nothing the model does not:
the default model pairs 26 to 47 shoppers a second on two cores.

    .venv/bin/python benchmarks/uploads.py [--rows 20000]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import tempfile
import time
from pathlib import Path

from openpyxl import Workbook

from matcher.batch_input import count_rows, describe_input, read_rows

TEXTS = [
    "周末喜欢一个人去茶馆坐一下午，看看书，写点随笔",
    "Weekends I'm off trekking between mountain huts, phone off.",
    "演唱会、卡拉OK，和朋友在霓虹灯下跳舞到深夜",
    "I collect vintage silk scarves and love a quiet gallery morning.",
]


def rows(count: int) -> list[tuple[str, str]]:
    return [(f"VIP-{n:07d}", TEXTS[n % len(TEXTS)]) for n in range(count)]


def write_csv(path: Path, data: list[tuple[str, str]], delimiter: str, encoding: str) -> Path:
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(["ID", "Text"])
    writer.writerows(data)
    path.write_bytes(out.getvalue().encode(encoding))
    return path


def write_xlsx(path: Path, data: list[tuple[str, str]]) -> Path:
    book = Workbook(write_only=True)
    sheet = book.create_sheet()
    sheet.append(["ID", "Text"])
    for row in data:
        sheet.append(list(row))
    book.save(path)
    return path


def write_jsonl(path: Path, data: list[tuple[str, str]]) -> Path:
    lines = (json.dumps({"id": i, "text": t}, ensure_ascii=False) for i, t in data)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    args = parser.parse_args()
    data = rows(args.rows)
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        files = {
            "CSV, UTF-8, commas": write_csv(base / "u8.csv", data, ",", "utf-8"),
            "CSV, UTF-8 BOM": write_csv(base / "bom.csv", data, ",", "utf-8-sig"),
            "CSV, GBK, semicolons": write_csv(base / "gbk.csv", data, ";", "gbk"),
            "CSV, UTF-16, tabs": write_csv(base / "u16.csv", data, "\t", "utf-16"),
            "Excel .xlsx": write_xlsx(base / "book.xlsx", data),
            "JSON Lines": write_jsonl(base / "rows.jsonl", data),
        }
        print(f"{args.rows:,} shoppers per file")
        print("| file | size | detected | describe (ms) | count (s) | read (s) | rows/s read |")
        print("|---|---|---|---|---|---|---|")
        for label, path in files.items():
            start = time.perf_counter()
            found = describe_input(path)
            described = time.perf_counter() - start
            start = time.perf_counter()
            total = count_rows(path)
            counted = time.perf_counter() - start
            start = time.perf_counter()
            good = sum(1 for _ in read_rows(path, id_column="id", text_column="text"))
            read = time.perf_counter() - start
            assert total == good == args.rows, (label, total, good)
            detected = found.encoding_label or found.format
            if found.delimiter:
                detected += f", {found.delimiter!r}"
            print(
                f"| {label} | {path.stat().st_size / 1e6:.1f} MB | {detected} | "
                f"{described * 1000:.0f} | {counted:.2f} | {read:.2f} | {good / read:,.0f} |"
            )


if __name__ == "__main__":
    main()
