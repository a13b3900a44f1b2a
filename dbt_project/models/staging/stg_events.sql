with checked as (
    select * from {{ ref('base_events') }}
),

final as (
    select
        event_id,
        event_type,
        occurred_at,
        anonymous_id,
        user_id,
        email,
        {{ lifeline.canonical_gmail('email') }} as email_canonical,
        phone,
        session_id,
        product_id,
        cart_id,
        order_id,
        value,
        properties
    from checked
    where drop_reason is null
      and occurred_at <= {{ lifeline.as_of() }}
)

select * from final
