{#- Every distinct combination of identifiers seen together on one record (event, customer,
    order), with when it was seen. Collapsing events to combinations keeps the graph small:
    a person's hundreds of page views with one cookie are one row. -#}
with events as (
    select
        'events' as source_table,
        anonymous_id,
        user_id,
        email,
        phone,
        min(occurred_at) as first_seen_at,
        max(occurred_at) as last_seen_at
    from {{ ref('stg_events') }}
    where coalesce(anonymous_id, user_id, email, phone) is not null
    group by anonymous_id, user_id, email, phone
),

customers as (
    select
        'customers' as source_table,
        cast(null as {{ dbt.type_string() }}) as anonymous_id,
        customer_id as user_id,
        email,
        phone,
        coalesce(created_at, record_at) as first_seen_at,
        coalesce(record_at, created_at) as last_seen_at
    from {{ ref('stg_customers') }}
),

orders as (
    select
        'orders' as source_table,
        anonymous_id,
        customer_id as user_id,
        email,
        phone,
        min(ordered_at) as first_seen_at,
        max(ordered_at) as last_seen_at
    from {{ ref('stg_orders') }}
    where coalesce(anonymous_id, customer_id, email, phone) is not null
    group by anonymous_id, customer_id, email, phone
),

unioned as (
    select * from events
    union all
    select * from customers
    union all
    select * from orders
),

final as (
    select
        md5(
            source_table || '|' || coalesce(anonymous_id, '') || '|' || coalesce(user_id, '') || '|'
            || coalesce(email, '') || '|' || coalesce(phone, '')
        ) as record_id,
        source_table,
        anonymous_id,
        user_id,
        email,
        phone,
        first_seen_at,
        last_seen_at
    from unioned
)

select * from final
