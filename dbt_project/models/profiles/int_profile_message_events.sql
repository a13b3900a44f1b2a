{#- Message events with the profile they concern: by the external_id we sent, else the recipient. -#}
with messages as (
    select * from {{ ref('stg_message_events') }}
),

identity_map as (
    select * from {{ ref('identity_map') }}
),

final as (
    select
        coalesce(by_email.profile_id, by_phone.profile_id, messages.external_id) as profile_id,
        messages.message_id,
        messages.channel,
        messages.event,
        messages.occurred_at,
        messages.campaign
    from messages
    left join identity_map as by_email
        on by_email.identifier_type = 'email' and by_email.identifier_value = messages.recipient_email
    left join identity_map as by_phone
        on by_phone.identifier_type = 'phone' and by_phone.identifier_value = messages.recipient_phone
    where coalesce(by_email.profile_id, by_phone.profile_id, messages.external_id) is not null
)

select * from final
