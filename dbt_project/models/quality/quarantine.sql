{#- Every raw row that was dropped or repaired, and why (contract §1). action is 'dropped' (the row
    is not used) or 'repaired' (the row is used without the named field).

    Each base model is read once, and only its rows with a problem: the filter touches the three
    problem columns (almost all null), not the keys of every row. Raw order items have no base
    model: only the rows whose ids are null or start with a space can be blank after trimming, so
    only those are trimmed. -#}
{%- set problem = 'coalesce(drop_reason, email_issue, phone_issue) is not null' -%}
with events as (
    select event_key as source_key, drop_reason, email_issue, phone_issue
    from {{ ref('base_events') }}
    where {{ problem }}
),

customers as (
    select customer_id, drop_reason, email_issue, phone_issue
    from {{ ref('base_customers') }}
    where {{ problem }} and (drop_reason is null or drop_reason <> 'superseded_customer_record')
),

orders as (
    select order_id, drop_reason, email_issue, phone_issue
    from {{ ref('base_orders') }}
    where {{ problem }}
),

messages as (
    select message_id, drop_reason
    from {{ ref('base_message_events') }}
    where drop_reason is not null
),

{%- set maybe_blank -%}
{%- for column in ('order_id', 'product_id') %}
        {% if not loop.first %}or {% endif %}{{ column }} is null or cast({{ column }} as {{ dbt.type_string() }}) = '' or cast({{ column }} as {{ dbt.type_string() }}) like ' %'
{%- endfor %}
{%- endset %}

order_items as (
    select
        nullif(trim(cast(order_id as {{ dbt.type_string() }})), '') as order_id,
        nullif(trim(cast(product_id as {{ dbt.type_string() }})), '') as product_id
    from {{ source('raw', 'order_items') }}
    where {{ maybe_blank }}
),

problems as (
    select 'events' as source_table, source_key, drop_reason as reason, 'dropped' as action
    from events where drop_reason is not null
    union all
    select 'events', source_key, email_issue, 'repaired'
    from events where drop_reason is null and email_issue is not null
    union all
    select 'events', source_key, phone_issue, 'repaired'
    from events where drop_reason is null and phone_issue is not null
    union all
    select 'customers', coalesce(customer_id, 'row:unknown'), drop_reason, 'dropped'
    from customers where drop_reason is not null
    union all
    select 'customers', customer_id, email_issue, 'repaired'
    from customers where drop_reason is null and email_issue is not null
    union all
    select 'customers', customer_id, phone_issue, 'repaired'
    from customers where drop_reason is null and phone_issue is not null
    union all
    select 'orders', coalesce(order_id, 'row:unknown'), drop_reason, 'dropped'
    from orders where drop_reason is not null
    union all
    select 'orders', order_id, email_issue, 'repaired'
    from orders where drop_reason is null and email_issue is not null
    union all
    select 'orders', order_id, phone_issue, 'repaired'
    from orders where drop_reason is null and phone_issue is not null
    union all
    select 'message_events', coalesce(message_id, 'row:unknown'), drop_reason, 'dropped'
    from messages
    union all
    select 'order_items', coalesce(order_id, 'row:unknown'),
           case when order_id is null then 'missing_order_id' else 'missing_product_id' end, 'dropped'
    from order_items where order_id is null or product_id is null
),

final as (
    select
        source_table,
        source_key,
        reason,
        action,
        {{ lifeline.as_of() }} as detected_at
    from problems
)

select * from final
