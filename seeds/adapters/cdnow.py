"""CDNOW purchase log (Fader & Hardie) -> contract tables.

Two layouts, told apart by the number of whitespace-separated columns:
- master (4): customer_id, date (YYYYMMDD), number_of_cds, dollar_value, after a header line;
- 1/10 sample (5): customer_id, sample id, date, number_of_cds, dollar_value, no header.
The first column is the master customer id in both, so the sample's customers keep their master ids.

Mapping: each line is one completed order (`cdnow-<customer>-<YYYYMMDD>-<n>`, n counting that
customer's lines on that day in file order) at 00:00 UTC, total = dollar_value, currency USD, with
one order item of product `cd` (quantity = number_of_cds, unit_price = dollar_value / number_of_cds,
null when no CDs); one customer row per customer id; one product row `cd`.
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from seeds.adapters.common import AdapterError, bad_value, read_text, write_tables

LAYOUTS = {4: "master", 5: "sample"}


def _parse(src: Path) -> pa.Table:
    customers: list[str] = []
    days: list[str] = []
    cds: list[int] = []
    dollars: list[float] = []
    width = None
    dates: dict[str, str] = {}
    for number, line in enumerate(read_text(src).splitlines(), start=1):
        fields = line.split()
        if not fields or (width is None and not fields[0].isdigit()):
            continue  # blank line, or the master file's header
        if width is None:
            if len(fields) not in LAYOUTS:
                raise AdapterError(f"{src}, line {number}: {len(fields)} columns; a CDNOW file has 4 "
                                   "(master: id, date, cds, dollars) or 5 (sample: id, id2, date, cds, dollars).")
            width = len(fields)
        if len(fields) != width:
            raise AdapterError(f"{src}, line {number}: {len(fields)} columns where the file has {width}. "
                               "Fix or delete that line and run the conversion again; nothing was written.")
        customer, date, count, value = fields[0], fields[-3], fields[-2], fields[-1]
        if not customer.isdigit():
            raise bad_value(src, number, "customer_id", customer, "a numeric customer id")
        if date not in dates:
            try:
                dates[date] = datetime.strptime(date, "%Y%m%d").strftime("%Y-%m-%dT00:00:00Z")
            except ValueError:
                raise bad_value(src, number, "date", date, "a date written YYYYMMDD") from None
        try:
            cds.append(int(count))
        except ValueError:
            raise bad_value(src, number, "number_of_cds", count, "a whole number") from None
        try:
            dollars.append(float(value))
        except ValueError:
            raise bad_value(src, number, "dollar_value", value, "a number") from None
        if cds[-1] < 0:
            raise bad_value(src, number, "number_of_cds", count, "a count of zero or more")
        customers.append(customer)
        days.append(dates[date])
    if width is None:
        raise AdapterError(f"{src}: no purchase lines found. Is this the CDNOW master or sample file?")
    return pa.table({"line": pa.array(range(len(customers)), pa.int64()), "customer_id": customers,
                     "ordered_at": days, "cds": pa.array(cds, pa.int64()), "dollars": dollars})


def convert(src: Path, out_dir: Path) -> dict[str, int]:
    purchases = _parse(Path(src))
    con = duckdb.connect()
    try:
        con.register("purchases", purchases)
        con.execute("""
            create temporary table numbered as
            select *, 'cdnow-' || customer_id || '-' || replace(left(ordered_at, 10), '-', '') || '-'
                      || row_number() over (partition by customer_id, ordered_at order by line) as order_id
            from purchases""")
        tables = {
            "customers": con.sql("select distinct customer_id from numbered order by customer_id").to_arrow_table(),
            "orders": con.sql("""
                select order_id, ordered_at, customer_id, 'completed' as status, dollars as total,
                       'USD' as currency
                from numbered order by line""").to_arrow_table(),
            "order_items": con.sql("""
                select order_id, 'cd' as product_id, cds as quantity,
                       case when cds > 0 then round(dollars / cds, 4) end as unit_price
                from numbered order by line""").to_arrow_table(),
            "products": con.sql("select 'cd' as product_id, 'CD' as name, 'music' as category").to_arrow_table(),
        }
    finally:
        con.close()
    return write_tables(tables, Path(out_dir))
