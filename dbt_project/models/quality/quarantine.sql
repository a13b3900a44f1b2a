{#- Every raw row that was dropped or repaired, and why (contract §1). action is 'dropped' (the row
    is not used) or 'repaired' (the row is used without the named field). -#}
with events as (
    select * from {{ ref('base_events') }}
),

customers as (
    select * from {{ ref('base_customers') }}
),

orders as (
    select * from {{ ref('base_orders') }}
),

messages as (
    select * from {{ ref('base_message_events') }}
),

order_items as (
    select
        nullif(trim(cast(order_id as {{ dbt.type_string() }})), '') as order_id,
        nullif(trim(cast(product_id as {{ dbt.type_string() }})), '') as product_id
    from {{ source('raw', 'order_items') }}
),

problems as (
    select 'events' as source_table, coalesce(event_id, 'row:' || row_hash) as source_key, drop_reason as reason, 'dropped' as action
    from events where drop_reason is not null
    union all
    select 'events', coalesce(event_id, 'row:' || row_hash), email_issue, 'repaired'
    from events where drop_reason is null and email_issue is not null
    union all
    select 'events', coalesce(event_id, 'row:' || row_hash), phone_issue, 'repaired'
    from events where drop_reason is null and phone_issue is not null
    union all
    select 'customers', coalesce(customer_id, 'row:unknown'), drop_reason, 'dropped'
    from customers where drop_reason is not null and drop_reason <> 'superseded_customer_record'
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
    from messages where drop_reason is not null
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
