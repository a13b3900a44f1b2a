"""Dataset adapters (`lifeline load --format online_retail|cdnow`): real files and bad input."""
from __future__ import annotations

import csv
from pathlib import Path

import duckdb
import pytest

from seeds.adapters import FORMATS, AdapterError, convert

RETAIL = Path("online_retail_sample") / "online_retail_sample.csv"
HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"


def table(out_dir: Path, name: str) -> list[dict]:
    rel = duckdb.sql(f"select * from read_parquet('{out_dir / name}.parquet')")
    return [dict(zip(rel.columns, row)) for row in rel.fetchall()]


def scalar(sql: str) -> object:
    return duckdb.sql(sql).fetchone()[0]


# --- real files ------------------------------------------------------------------------------------

def test_online_retail_sample(shared_datasets: Path, tmp_path: Path) -> None:
    src = shared_datasets / RETAIL
    counts = convert("online_retail", src, tmp_path)
    with src.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    invoices = {r["InvoiceNo"] for r in rows}
    assert counts == {"customers": 3621, "orders": len(invoices), "order_items": 40000,
                      "products": len({r["StockCode"] for r in rows})}
    assert len(invoices) == 13199

    orders = {o["order_id"]: o for o in table(tmp_path, "orders")}
    assert len(orders) == len(invoices)
    # Totals reconcile with the source, per invoice (to the penny) and overall.
    source_totals: dict[str, float] = {}
    for r in rows:
        source_totals[r["InvoiceNo"]] = source_totals.get(r["InvoiceNo"], 0.0) + int(r["Quantity"]) * float(r["UnitPrice"])
    assert all(abs(orders[k]["total"] - v) < 0.006 for k, v in source_totals.items())
    assert sum(o["total"] for o in orders.values()) == pytest.approx(sum(source_totals.values()), abs=0.01 * len(orders))
    items = tmp_path / "order_items.parquet"
    assert scalar(f"select sum(quantity) from '{items}'") == sum(int(r["Quantity"]) for r in rows)
    # Cancellations: every C invoice, and nothing else with a negative total, is cancelled.
    cancelled = {k for k, o in orders.items() if o["status"] == "cancelled"}
    assert {k for k in invoices if k.startswith("C")} <= cancelled
    assert all(o["total"] >= 0 for o in orders.values() if o["status"] == "completed")
    assert {o["status"] for o in orders.values()} == {"completed", "cancelled"}
    # Guest checkouts are kept without a customer.
    guests = {r["InvoiceNo"] for r in rows if not r["CustomerID"]}
    assert {k for k, o in orders.items() if o["customer_id"] is None} == guests - {
        r["InvoiceNo"] for r in rows if r["CustomerID"]}
    assert all(o["currency"] == "GBP" for o in orders.values())
    # UK local time -> UTC: BST in May is one hour ahead, GMT in late October is not.
    assert orders["553156"]["ordered_at"] == "2011-05-13T13:58:00Z"
    assert orders["573415"]["ordered_at"] == "2011-10-30T16:17:00Z"
    customers = table(tmp_path, "customers")
    assert len({c["customer_id"] for c in customers}) == 3621
    assert {c["customer_id"] for c in customers} == {o["customer_id"] for o in orders.values()} - {None}


def test_cdnow_sample_and_master(shared_datasets: Path, tmp_path: Path) -> None:
    sample_src = shared_datasets / "cdnow" / "CDNOW_sample.txt"
    counts = convert("cdnow", sample_src, tmp_path / "sample")
    assert counts == {"customers": 2357, "orders": 6919, "order_items": 6919, "products": 1}
    lines = [line.split() for line in sample_src.read_text().splitlines() if line.strip()]
    orders = table(tmp_path / "sample", "orders")
    assert len({o["order_id"] for o in orders}) == 6919
    assert sum(o["total"] for o in orders) == pytest.approx(sum(float(f[4]) for f in lines), abs=1e-6)
    assert {o["status"] for o in orders} == {"completed"}
    items = tmp_path / "sample" / "order_items.parquet"
    assert scalar(f"select sum(quantity) from '{items}'") == sum(int(f[3]) for f in lines)
    assert scalar(f"select count(distinct product_id) from '{items}'") == 1
    assert orders[0] == {"order_id": "cdnow-00004-19970101-1", "ordered_at": "1997-01-01T00:00:00Z",
                         "customer_id": "00004", "status": "completed", "total": 29.33, "currency": "USD"}

    master_src = shared_datasets / "cdnow" / "CDNOW_master.txt"
    counts = convert("cdnow", master_src, tmp_path / "master")
    assert counts["customers"] == 23570 and counts["orders"] == 69659
    master_lines = [line.split() for line in master_src.read_text().splitlines()[1:] if line.strip()]
    master_orders = tmp_path / "master" / "orders.parquet"
    assert scalar(f"select sum(total) from '{master_orders}'") == pytest.approx(
        sum(float(f[3]) for f in master_lines), abs=1e-4)
    # The sample keeps master customer ids, so its customers are a subset of the master's.
    sample_ids = {c["customer_id"] for c in table(tmp_path / "sample", "customers")}
    assert sample_ids <= {c["customer_id"] for c in table(tmp_path / "master", "customers")}


def test_converted_folder_loads_into_the_warehouse(shared_datasets: Path, tmp_path: Path, duck_warehouse) -> None:
    from orchestration.load import load

    convert("cdnow", shared_datasets / "cdnow" / "CDNOW_sample.txt", tmp_path / "converted")
    results = load(duck_warehouse, tmp_path / "converted", replace=True)
    assert results["orders"].rows == 6919 and results["customers"].rows == 2357


# --- rules, on tiny files ----------------------------------------------------------------------

def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_online_retail_rules(tmp_path: Path) -> None:
    src = write(tmp_path / "retail.csv", HEADER + "\n".join([
        "536365,85123A,WHITE HANGING HEART,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom",
        "536365,71053,WHITE METAL LANTERN,2,2010-12-01 08:26:00,3.39,17850.0,United Kingdom",
        "C536379,D,Discount,-1,2010-12-01 09:41:00,27.5,14527,United Kingdom",
        "536414,22139,,-56,2010-12-01 11:52:00,0,,United Kingdom",
        "550000,22139,RETRO SPOT,3,6/1/2011 10:00,1.25,,France",
        "550001,22139,RETRO SPOT TEA SET,1,2011-06-02 10:00:00,1.25,17850,France",
    ]) + "\n")
    convert("online_retail", src, tmp_path / "out")
    orders = {o["order_id"]: o for o in table(tmp_path / "out", "orders")}
    assert orders["536365"] == {"order_id": "536365", "ordered_at": "2010-12-01T08:26:00Z",
                                "customer_id": "17850", "status": "completed", "total": 22.08,
                                "currency": "GBP"}
    assert orders["C536379"]["status"] == "cancelled" and orders["C536379"]["total"] == -27.5
    assert orders["536414"]["status"] == "cancelled"  # a stock write-off, not a sale
    assert orders["550000"]["customer_id"] is None and orders["550000"]["status"] == "completed"
    assert orders["550000"]["ordered_at"] == "2011-06-01T09:00:00Z"  # BST
    customers = {c["customer_id"]: c["country"] for c in table(tmp_path / "out", "customers")}
    assert customers == {"17850": "France", "14527": "United Kingdom"}  # latest invoice's country
    products = {p["product_id"]: p for p in table(tmp_path / "out", "products")}
    assert products["22139"]["name"] in ("RETRO SPOT", "RETRO SPOT TEA SET")
    assert products["22139"]["price"] == 1.25
    items = table(tmp_path / "out", "order_items")
    assert len(items) == 6 and items[2] == {"order_id": "C536379", "product_id": "D", "quantity": -1,
                                            "unit_price": 27.5}


def test_cdnow_same_day_purchases_get_distinct_orders(tmp_path: Path) -> None:
    src = write(tmp_path / "master.txt", " customer_id  date number_of_cds  dollar_value\n"
                " 00002 19970112  1   12.00\n 00002 19970112  5   77.00\n 00003 19970102  0   0.00\n")
    assert convert("cdnow", src, tmp_path / "out") == {"customers": 2, "orders": 3, "order_items": 3, "products": 1}
    assert [o["order_id"] for o in table(tmp_path / "out", "orders")] == [
        "cdnow-00002-19970112-1", "cdnow-00002-19970112-2", "cdnow-00003-19970102-1"]
    items = table(tmp_path / "out", "order_items")
    assert [i["unit_price"] for i in items] == [12.0, 15.4, None]


def test_a_new_conversion_removes_the_previous_datasets_tables(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "events.parquet").write_bytes(b"old")
    (out / "notes.txt").write_text("mine")
    convert("cdnow", write(tmp_path / "s.txt", " 00001 0001 19970101  1   11.77\n"), out)
    assert sorted(p.name for p in out.iterdir()) == ["customers.parquet", "notes.txt", "order_items.parquet",
                                                       "orders.parquet", "products.parquet"]


# --- bad input: a clear error naming file, line and column, and nothing written ----------------------

CDNOW_BAD = [
    (" 00001 0001 19970101  1   11.77\n 00002 0002 1997013X  2   20.00\n", r"line 2, column date: '1997013X'"),
    (" 00001 0001 19970101  1   11.77\n 00002 0002 19970230  2   20.00\n", r"line 2, column date: '19970230'"),
    (" 00001 19970101  1   11.77\n 00002 19970105  two   20.00\n", r"line 2, column number_of_cds: 'two'"),
    (" 00001 19970101  1   11.77\n 00002 19970105  2   $20\n", r"line 2, column dollar_value: '\$20'"),
    (" 00001 19970101  1   11.77\n 00002 19970105  2\n", r"line 2: 3 columns where the file has 4"),
    (" 00001 19970101\n", r"line 1: 2 columns"),
    ("customer_id date cds dollars\n", r"no purchase lines"),
]

RETAIL_BAD = [
    (HEADER + "536365,85123A,HEART,six,2010-12-01 08:26:00,2.55,17850,United Kingdom\n",
     r"line 2, column Quantity: 'six'"),
    (HEADER + "536365,85123A,HEART,6,2010-12-01 08:26:00,2.55,17850,United Kingdom\n"
     "536366,85123A,HEART,6,01.12.2010 08:26,2.55,17850,United Kingdom\n", r"line 3, column InvoiceDate: '01.12.2010 08:26'"),
    (HEADER + "536365,85123A,HEART,6,2010-12-01 08:26:00,£2.55,17850,United Kingdom\n",
     r"line 2, column UnitPrice: '£2.55'"),
    (HEADER + ",85123A,HEART,6,2010-12-01 08:26:00,2.55,17850,United Kingdom\n", r"line 2, column InvoiceNo"),
    (HEADER + "536365,85123A,HEART,6\n", r"line 2: 4 fields where the header has 8"),
    ("InvoiceNo,StockCode,Quantity,InvoiceDate,UnitPrice,CustomerID\n1,2,3,2010-12-01 08:26:00,1,1\n",
     r"line 1: missing column\(s\) Description, Country"),
    ("", r"the file is empty"),
    (HEADER, r"no rows below the header"),
]


@pytest.mark.parametrize("fmt,text,message", [("cdnow", t, m) for t, m in CDNOW_BAD]
                         + [("online_retail", t, m) for t, m in RETAIL_BAD])
def test_bad_input_is_refused_clearly_and_nothing_is_lost(tmp_path: Path, fmt: str, text: str, message: str) -> None:
    out = tmp_path / "out"
    convert("cdnow", write(tmp_path / "previous.txt", " 00001 0001 19970101  1   11.77\n"), out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    src = write(tmp_path / "input.txt", text)
    with pytest.raises(AdapterError, match=message) as caught:
        convert(fmt, src, out)
    assert str(src) in str(caught.value)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the previous conversion is intact


def test_unknown_format_and_missing_file(tmp_path: Path) -> None:
    assert FORMATS == ("online_retail", "cdnow")
    with pytest.raises(AdapterError, match="choose one of online_retail, cdnow"):
        convert("excel", tmp_path / "x.csv", tmp_path / "out")
    with pytest.raises(AdapterError, match="no such file"):
        convert("cdnow", tmp_path / "missing.txt", tmp_path / "out")
    assert not (tmp_path / "out").exists()
