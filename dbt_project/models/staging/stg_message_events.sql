with checked as (
    select * from {{ ref('base_message_events') }}
),

final as (
    select
        message_id,
        channel,
        event,
        occurred_at,
        recipient_email,
        recipient_phone,
        campaign,
        external_id
    from checked
    where drop_reason is null
      and occurred_at <= {{ lifeline.as_of() }}
)

select * from final
