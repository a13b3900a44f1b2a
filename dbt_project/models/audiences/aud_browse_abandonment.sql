{#- Viewed a product within var browse_window_hours before as_of, and neither carted, started a
    checkout nor ordered since; at most once per var browse_cooldown_days per person. -#}
with events as (
    select * from {{ ref('int_profile_events') }}
    where occurred_at > {{ lifeline.add_days(-var('browse_cooldown_days'), lifeline.as_of()) }}
),

last_view as (
    select profile_id, product_id, occurred_at as viewed_at
    from (
        select events.*, row_number() over (partition by profile_id order by occurred_at desc, event_id) as view_rank
        from events
        where event_type = 'product_view' and product_id is not null
    ) ranked
    where view_rank = 1
      and occurred_at > {{ lifeline.add_hours(-var('browse_window_hours'), lifeline.as_of()) }}
),

acted_since as (
    select distinct last_view.profile_id
    from last_view
    join events
        on events.profile_id = last_view.profile_id
        and events.occurred_at >= last_view.viewed_at
        and events.event_type in ('add_to_cart', 'checkout_started', 'order_completed')
    union
    select distinct last_view.profile_id
    from last_view
    join {{ ref('int_profile_orders') }} as orders
        on orders.profile_id = last_view.profile_id
        and orders.ordered_at >= last_view.viewed_at
),

recently_messaged as (
    select distinct profile_id
    from {{ ref('int_profile_message_events') }}
    where campaign = 'browse_abandonment' and event = 'sent'
      and occurred_at > {{ lifeline.add_days(-var('browse_cooldown_days'), lifeline.as_of()) }}
),

final as (
    select
        last_view.profile_id,
        'browse_abandonment' as audience,
        last_view.viewed_at as entered_at,
        last_view.product_id,
        'reminder' as angle
    from last_view
    left join acted_since on acted_since.profile_id = last_view.profile_id
    left join recently_messaged on recently_messaged.profile_id = last_view.profile_id
    where acted_since.profile_id is null and recently_messaged.profile_id is null
)

select * from final
