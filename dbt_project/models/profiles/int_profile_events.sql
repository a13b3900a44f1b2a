{#- Behavioural events with the profile that did them. -#}
with events as (
    select * from {{ ref('stg_events') }}
),

record_profiles as (
    select * from {{ ref('int_record_profiles') }}
    where source_table = 'events'
),

final as (
    select
        record_profiles.profile_id,
        events.event_id,
        events.event_type,
        events.occurred_at,
        events.session_id,
        events.product_id,
        events.cart_id,
        events.order_id,
        events.value,
        events.email,
        events.phone,
        events.properties
    from events
    {{ lifeline.join_record_profiles('events.anonymous_id', 'events.user_id', 'events.email', 'events.phone') }}
)

select * from final
