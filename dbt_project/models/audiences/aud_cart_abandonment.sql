{#- Added to cart or started a checkout between var cart_max_hours and var cart_min_minutes before
    as_of, with no order since. -#}
with events as (
    select * from {{ ref('int_profile_events') }}
    where occurred_at > {{ lifeline.add_hours(-var('cart_max_hours'), lifeline.as_of()) }}
),

last_cart as (
    select profile_id, product_id, cart_id, occurred_at as carted_at
    from (
        select events.*, row_number() over (partition by profile_id order by occurred_at desc, event_id) as cart_rank
        from events
        where event_type in ('add_to_cart', 'checkout_started')
    ) ranked
    where cart_rank = 1
      and occurred_at <= {{ lifeline.add_minutes(-var('cart_min_minutes'), lifeline.as_of()) }}
),

ordered_since as (
    select distinct last_cart.profile_id
    from last_cart
    join events
        on events.profile_id = last_cart.profile_id
        and events.occurred_at >= last_cart.carted_at
        and events.event_type = 'order_completed'
    union
    select distinct last_cart.profile_id
    from last_cart
    join {{ ref('int_profile_orders') }} as orders
        on orders.profile_id = last_cart.profile_id
        and orders.ordered_at >= last_cart.carted_at
),

final as (
    select
        last_cart.profile_id,
        'cart_abandonment' as audience,
        last_cart.carted_at as entered_at,
        last_cart.product_id,
        'reminder' as angle
    from last_cart
    left join ordered_since on ordered_since.profile_id = last_cart.profile_id
    where ordered_since.profile_id is null
)

select * from final
