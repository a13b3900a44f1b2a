{#- Order items, one row per (order_id, product_id): quantities summed, the highest unit price.

    Incremental (macros/incremental_orders.sql, order_items_slice): a run re-reads the raw rows of
    the orders that have an item loaded since its last run (load stamp) and replaces the stored
    rows of those orders (delete+insert on order_id). Without load stamps, or when the raw rows
    read before are not all there any more, every raw row is re-read. staged_at is the start of the
    run that wrote the row (a `dbt build`'s data tests read only those rows, macros/test_window.sql);
    a table from a release without it gains the column in its next run (old rows null). -#}
{{ config(
    materialized='incremental',
    unique_key='order_id',
    incremental_strategy=('merge' if target.type == 'bigquery' else 'delete+insert'),
    on_schema_change='append_new_columns',
    post_hook="{{ lifeline.store_load_count_mark(source('raw', 'order_items'), 'stg_order_items_slice') }}"
) }}
{%- set order_id_sql = "nullif(trim(cast(source.order_id as " ~ dbt.type_string() ~ ")), '')" -%}
{%- set raw_relation = lifeline.order_items_slice(source('raw', 'order_items'), 'stg_order_items_slice',
                                                  order_id_sql, 'stg_order_items') %}
with source as (
    select * from {{ raw_relation }}
),

typed as (
    select
        {{ order_id_sql }} as order_id,
        nullif(trim(cast(source.product_id as {{ dbt.type_string() }})), '') as product_id,
        coalesce({{ lifeline.parse_number('source.quantity') }}, 1) as quantity,
        {{ lifeline.parse_number('source.unit_price') }} as unit_price
    from source
),

final as (
    select
        order_id,
        product_id,
        sum(quantity) as quantity,
        max(unit_price) as unit_price,
        {{ lifeline.run_stamp() }} as staged_at
    from typed
    where order_id is not null and product_id is not null
    group by order_id, product_id
)

select * from final
