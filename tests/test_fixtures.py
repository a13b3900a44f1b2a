import sqlalchemy as sa


def test_any_warehouse_round_trips_rows(any_warehouse):
    """Both warehouses the suite relies on really start and store data."""
    engine = any_warehouse.engine()
    with engine.begin() as conn:
        conn.execute(sa.text("create table probe (id integer, name varchar)"))
        conn.execute(sa.text("insert into probe values (1, 'a'), (2, 'b')"))
    with engine.connect() as conn:
        assert conn.execute(sa.text("select sum(id), max(name) from probe")).one() == (3, "b")
    engine.dispose()
