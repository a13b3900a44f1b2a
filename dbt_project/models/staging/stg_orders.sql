{#- Usable orders up to as_of, one per order_id.

    Incremental (macros/incremental_orders.sql, based_slice = staged_slice on ordered_at): a run
    re-stages the usable base_orders rows based (rewritten by base_orders) since its last run and
    those after the newest stored ordered_at (as_of moved forward), delete+insert on order_id. The
    rows outside that slice must be the ones stored (counted), else every row is re-read; when
    as_of moves back, the post-hook deletes the rows after it. staged_at is the start of the run
    that wrote the row. -#}
{{ config(
    materialized='incremental',
    unique_key='order_id',
    incremental_strategy=('merge' if target.type == 'bigquery' else 'delete+insert'),
    on_schema_change='fail',
    post_hook="delete from {{ this }} where ordered_at > {{ lifeline.as_of() }}"
) }}
{%- set usable -%}
(select * from {{ ref('base_orders') }} where drop_reason is null and ordered_at <= {{ lifeline.as_of() }})
{%- endset -%}
{%- set checked_relation = lifeline.based_slice(usable, 'stg_orders_slice', 'order_id', 'ordered_at', 'stg_orders') %}
with checked as (
    select * from {{ checked_relation }} as usable
),

final as (
    select
        order_id,
        ordered_at,
        customer_id,
        email,
        {{ lifeline.canonical_gmail('email') }} as email_canonical,
        phone,
        anonymous_id,
        status,
        is_purchase,
        total,
        currency,
        {#- When this row was (re)written: the run's start. #}
        {{ lifeline.run_stamp() }} as staged_at
    from checked
)

select * from final
