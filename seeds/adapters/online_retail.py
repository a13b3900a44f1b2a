"""UCI "Online Retail" (Chen, Sain & Guo 2012) -> contract tables.

Columns read: InvoiceNo, StockCode, Description, Quantity, InvoiceDate, UnitPrice, CustomerID,
Country (CSV; extra columns are ignored). Rules:
- One order per InvoiceNo (order_id = InvoiceNo), one order item per source line (product_id =
  StockCode, quantity = Quantity, unit_price = UnitPrice; staging sums repeated products).
  total = sum(Quantity * UnitPrice) over the invoice, rounded to pence; currency GBP.
- Status: invoices starting with `C` are cancellations (credit notes) -> `cancelled`, keeping their
  negative quantities and total so the source's net sum reconciles; the data does not say which
  earlier invoice a credit note reverses, so that invoice stays `completed`. Invoices whose every
  line has a quantity of zero or less (stock write-offs: "damaged", "lost", no customer, price 0)
  and `A` invoices (bad-debt adjustments) are not sales either -> `cancelled`. Everything else is
  `completed`.
- Rows without a CustomerID are guest checkouts: their orders are kept with customer_id (and every
  other identifier) null, so revenue totals still reconcile with the source, but they join no
  profile (there is nothing to stitch them on). No identifiers are invented for them.
- CustomerID `17850` and `17850.0` (spreadsheet exports) are the same customer `17850`.
- InvoiceDate is the UK retailer's local wall-clock time (Europe/London: GMT in winter, BST in
  summer). It is converted to UTC and written as ISO-8601 with `Z`; at the autumn change, an hour
  that occurs twice is read as its first (BST) occurrence. Accepted layouts: `YYYY-MM-DD HH:MM:SS`,
  `YYYY-MM-DD HH:MM` and the UCI CSV's `M/D/YYYY H:MM`.
- customers: one row per CustomerID, country = Country of that customer's latest invoice.
- products: one row per StockCode, name = its most frequent Description, price = its most frequent
  positive UnitPrice.
"""
from __future__ import annotations

import csv
import io
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pyarrow as pa

from seeds.adapters.common import AdapterError, bad_value, read_text, write_tables

COLUMNS = ("InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID",
           "Country")
DATE_LAYOUTS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%m/%d/%Y %H:%M")
LONDON = ZoneInfo("Europe/London")


class _Timestamps:
    """UK local time -> UTC ISO-8601 text, parsed once per distinct value."""

    def __init__(self) -> None:
        self.seen: dict[str, str | None] = {}

    def utc(self, value: str) -> str | None:
        if value not in self.seen:
            self.seen[value] = None
            for layout in DATE_LAYOUTS:
                try:
                    local = datetime.strptime(value.strip(), layout).replace(tzinfo=LONDON)
                except ValueError:
                    continue
                self.seen[value] = local.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
                break
        return self.seen[value]


def _customer_id(value: str) -> str | None:
    value = value.strip()
    if not value:
        return None
    head, dot, tail = value.partition(".")
    return head if dot and head.isdigit() and set(tail) <= {"0"} else value


def _quantity(value: str) -> int | None:
    try:
        return int(value)
    except ValueError:
        try:
            number = float(value)
        except ValueError:
            return None
        return int(number) if number.is_integer() else None


def _parse(src: Path) -> pa.Table:
    reader = csv.reader(io.StringIO(read_text(src), newline=""))
    header = next(reader, None)
    if header is None:
        raise AdapterError(f"{src}: the file is empty; expected a CSV with columns {', '.join(COLUMNS)}.")
    index = {name.strip(): i for i, name in enumerate(header)}
    missing = [c for c in COLUMNS if c not in index]
    if missing:
        raise AdapterError(f"{src}, line 1: missing column(s) {', '.join(missing)}; an Online Retail CSV has "
                           f"{', '.join(COLUMNS)}. Nothing was written.")
    cols: dict[str, list] = {name: [] for name in ("line", "invoice", "stock_code", "description", "quantity",
                                                   "ordered_at", "unit_price", "customer_id", "country")}
    stamps = _Timestamps()
    get = {name: index[name] for name in COLUMNS}
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        number = reader.line_num
        if len(row) < len(header):
            raise AdapterError(f"{src}, line {number}: {len(row)} fields where the header has {len(header)}. "
                               "Fix or delete that line and run the conversion again; nothing was written.")
        invoice, stock = row[get["InvoiceNo"]].strip(), row[get["StockCode"]].strip()
        if not invoice:
            raise bad_value(src, number, "InvoiceNo", invoice, "an invoice number")
        if not stock:
            raise bad_value(src, number, "StockCode", stock, "a stock code")
        quantity = _quantity(row[get["Quantity"]])
        if quantity is None:
            raise bad_value(src, number, "Quantity", row[get["Quantity"]], "a whole number")
        ordered_at = stamps.utc(row[get["InvoiceDate"]])
        if ordered_at is None:
            raise bad_value(src, number, "InvoiceDate", row[get["InvoiceDate"]],
                            "a date and time like 2011-12-09 12:50:00")
        try:
            price = float(row[get["UnitPrice"]])
        except ValueError:
            raise bad_value(src, number, "UnitPrice", row[get["UnitPrice"]], "a number") from None
        cols["line"].append(number)
        cols["invoice"].append(invoice)
        cols["stock_code"].append(stock)
        cols["description"].append(row[get["Description"]].strip() or None)
        cols["quantity"].append(quantity)
        cols["ordered_at"].append(ordered_at)
        cols["unit_price"].append(price)
        cols["customer_id"].append(_customer_id(row[get["CustomerID"]]))
        cols["country"].append(row[get["Country"]].strip() or None)
    if not cols["line"]:
        raise AdapterError(f"{src}: no rows below the header. Nothing was written.")
    return pa.table({**cols, "quantity": pa.array(cols["quantity"], pa.int64()),
                     "unit_price": pa.array(cols["unit_price"], pa.float64())})


def convert(src: Path, out_dir: Path) -> dict[str, int]:
    lines = _parse(Path(src))
    con = duckdb.connect()
    try:
        con.register("lines", lines)
        queries = {
            "customers": """
                select customer_id, arg_max(country, ordered_at) as country
                from lines where customer_id is not null
                group by customer_id order by customer_id""",
            "orders": """
                select invoice as order_id, min(ordered_at) as ordered_at, max(customer_id) as customer_id,
                       case when upper(left(invoice, 1)) in ('C', 'A') or max(quantity) <= 0
                            then 'cancelled' else 'completed' end as status,
                       round(sum(quantity * unit_price), 2) as total, 'GBP' as currency
                from lines group by invoice order by min(line)""",
            "order_items": """
                select invoice as order_id, stock_code as product_id, quantity, unit_price
                from lines order by line""",
            "products": """
                select stock_code as product_id, mode(description) as name,
                       mode(unit_price) filter (where unit_price > 0) as price
                from lines group by stock_code order by stock_code""",
        }
        tables = {name: con.sql(sql).to_arrow_table() for name, sql in queries.items()}
    finally:
        con.close()
    return write_tables(tables, Path(out_dir))
