{#- Bought a product with replenishment_days whose cycle falls due within var
    replenishment_window_days of as_of (either side), and has not bought it again since. -#}
with purchases as (
    select orders.profile_id, orders.ordered_at, items.product_id, products.replenishment_days
    from {{ ref('int_profile_orders') }} as orders
    join {{ ref('stg_order_items') }} as items on items.order_id = orders.order_id
    join {{ ref('stg_products') }} as products on products.product_id = items.product_id
    where orders.is_purchase and products.replenishment_days is not null
),

latest_per_product as (
    select profile_id, product_id, replenishment_days, ordered_at
    from (
        select purchases.*, row_number() over (partition by profile_id, product_id order by ordered_at desc) as purchase_rank
        from purchases
    ) ranked
    where purchase_rank = 1
),

due as (
    select
        latest_per_product.*,
        {{ lifeline.add_days('replenishment_days', 'ordered_at') }} as due_at
    from latest_per_product
),

in_window as (
    select
        due.*,
        row_number() over (partition by profile_id order by due_at, product_id) as due_rank
    from due
    where due_at between {{ lifeline.add_days(-var('replenishment_window_days'), lifeline.as_of()) }}
                     and {{ lifeline.add_days(var('replenishment_window_days'), lifeline.as_of()) }}
),

final as (
    select
        profile_id,
        'post_purchase_replenishment' as audience,
        {{ lifeline.add_days(-var('replenishment_window_days'), 'due_at') }} as entered_at,
        product_id,
        'replenish' as angle
    from in_window
    where due_rank = 1
)

select * from final
