{#- Every consent signal per profile and channel (contract §1: the latest signal wins across
    customer records, subscribe/unsubscribe events and message events). A subscribe/unsubscribe
    event applies to the channel named in properties.channel, else to sms when it carries only a
    phone, else to email. Channel `ads` is ad targeting: a message event of channel ads (opted_out:
    an ad-targeting opt-out) is an ads signal, never an sms or email one (audience_members). -#}
with customers as (
    select * from {{ ref('stg_customers') }}
),

identity_map as (
    select * from {{ ref('identity_map') }}
),

from_customers as (
    select identity_map.profile_id, 'email' as channel, customers.email_consent as status,
           customers.record_at as signaled_at, 'customers' as source
    from customers
    join identity_map on identity_map.identifier_type = 'user_id' and identity_map.identifier_value = customers.customer_id
    where customers.email_consent is not null
    union all
    select identity_map.profile_id, 'sms', customers.sms_consent, customers.record_at, 'customers'
    from customers
    join identity_map on identity_map.identifier_type = 'user_id' and identity_map.identifier_value = customers.customer_id
    where customers.sms_consent is not null
),

from_events as (
    select
        profile_id,
        case
            when properties like '%"channel": "sms"%' or properties like '%"channel":"sms"%' then 'sms'
            when properties like '%"channel": "email"%' or properties like '%"channel":"email"%' then 'email'
            when properties like '%"channel": "ads"%' or properties like '%"channel":"ads"%' then 'ads'
            when email is null and phone is not null then 'sms'
            else 'email'
        end as channel,
        case event_type when 'subscribe' then 'subscribed' else 'unsubscribed' end as status,
        occurred_at as signaled_at,
        'events' as source
    from {{ ref('int_profile_events') }}
    where event_type in ('subscribe', 'unsubscribe')
),

{#- A message row has either a recipient email or a recipient phone, never both: two hash joins
    (an OR in one join condition made a nested-loop join). -#}
opt_outs as (
    select * from {{ ref('stg_message_events') }}
    where event in ('unsubscribed', 'complained', 'opted_out')
),

from_messages as (
    select
        identity_map.profile_id,
        case when messages.channel = 'ads' then 'ads' when messages.event = 'opted_out' then 'sms' else messages.channel end as channel,
        'unsubscribed' as status,
        messages.occurred_at as signaled_at,
        'message_events' as source
    from opt_outs as messages
    join identity_map
        on identity_map.identifier_type = 'email' and identity_map.identifier_value = messages.recipient_email
    union all
    select
        identity_map.profile_id,
        case when messages.channel = 'ads' then 'ads' when messages.event = 'opted_out' then 'sms' else messages.channel end,
        'unsubscribed',
        messages.occurred_at,
        'message_events'
    from opt_outs as messages
    join identity_map
        on identity_map.identifier_type = 'phone' and identity_map.identifier_value = messages.recipient_phone
),

final as (
    select * from from_customers
    union all
    select * from from_events
    union all
    select * from from_messages
)

select * from final
