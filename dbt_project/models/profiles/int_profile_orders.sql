{#- Orders (all statuses) with the profile that placed them and their sequence among the
    profile's completed orders. -#}
with orders as (
    select * from {{ ref('stg_orders') }}
),

record_profiles as (
    select * from {{ ref('int_record_profiles') }}
    where source_table = 'orders'
      and profile_id is not null
),

attributed as (
    select
        record_profiles.profile_id,
        orders.order_id,
        orders.ordered_at,
        orders.status,
        orders.is_purchase,
        orders.total,
        orders.currency
    from orders
    {{ lifeline.join_record_profiles('orders.anonymous_id', 'orders.customer_id', 'orders.email', 'orders.phone') }}
),

final as (
    select
        attributed.*,
        case when is_purchase then
            row_number() over (partition by profile_id, is_purchase order by ordered_at, order_id)
        end as purchase_number
    from attributed
)

select * from final
