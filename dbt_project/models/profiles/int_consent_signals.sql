{#- Every consent signal per profile and channel (contract §1: the latest signal wins across
    customer records, subscribe/unsubscribe events and message events). A subscribe/unsubscribe
    event applies to the channel named in properties.channel, else to sms when it carries only a
    phone, else to email. Channel `ads` is ad targeting: a message event of channel ads (opted_out:
    an ad-targeting opt-out) is an ads signal, never an sms or email one (audience_members).
    source_key names the row a signal comes from: the customer_id, event_id or message_key.

    Incremental per profile (delete+insert on profile_id, macros/incremental_consent.sql): a run
    recomputes only the profiles whose signals may have changed since its last run (a customer row
    restaged, an event written or removed by int_profile_events, an opt-out restaged, an identifier
    that moved between profiles: the old profile is found through the stored rows' source_key)
    and writes a tombstone (status null, deleted by the post-hook) for each of them, so that a
    profile left without signals (merged away) loses its rows; every other row is kept. When the
    inputs cannot tell what changed it recomputes every profile and logs why. -#}
{{ config(
    materialized='incremental',
    unique_key='profile_id',
    incremental_strategy=('merge' if target.type == 'bigquery' else 'delete+insert'),
    on_schema_change='append_new_columns',
    post_hook=["delete from {{ this }} where status is null",
               "{{ lifeline.record_profiles_post_hook() }}",
               "{{ lifeline.store_profile_state() }}"]
) }}
{%- set opt_out = "event in ('unsubscribed', 'complained', 'opted_out')" %}
{%- set scope = lifeline.consent_scope(ref('stg_customers'), ref('int_profile_events'), ref('stg_message_events'),
                                       ref('identity_map'), opt_out, 'int_consent_signals') %}
{%- set in_scope = ('profile_id in (select profile_id from ' ~ scope ~ ')') if scope else '1 = 1' %}
with customers as (
    select * from {{ ref('stg_customers') }}
),

identity_map as (
    select * from {{ ref('identity_map') }}
    where {{ in_scope }}
),

from_customers as (
    select identity_map.profile_id, 'email' as channel, customers.email_consent as status,
           customers.record_at as signaled_at, 'customers' as source, customers.customer_id as source_key
    from customers
    join identity_map on identity_map.identifier_type = 'user_id' and identity_map.identifier_value = customers.customer_id
    where customers.email_consent is not null
    union all
    select identity_map.profile_id, 'sms', customers.sms_consent, customers.record_at, 'customers', customers.customer_id
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
        'events' as source,
        event_id as source_key
    from {{ ref('int_profile_events') }}
    where event_type in ('subscribe', 'unsubscribe') and {{ in_scope }}
),

{#- A message row has either a recipient email or a recipient phone, never both: two hash joins
    (an OR in one join condition made a nested-loop join). -#}
opt_outs as (
    select * from {{ ref('stg_message_events') }}
    where {{ opt_out }}
),

from_messages as (
    select
        identity_map.profile_id,
        case when messages.channel = 'ads' then 'ads' when messages.event = 'opted_out' then 'sms' else messages.channel end as channel,
        'unsubscribed' as status,
        messages.occurred_at as signaled_at,
        'message_events' as source,
        messages.message_key as source_key
    from opt_outs as messages
    join identity_map
        on identity_map.identifier_type = 'email' and identity_map.identifier_value = messages.recipient_email
    union all
    select
        identity_map.profile_id,
        case when messages.channel = 'ads' then 'ads' when messages.event = 'opted_out' then 'sms' else messages.channel end,
        'unsubscribed',
        messages.occurred_at,
        'message_events',
        messages.message_key
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
{%- if scope %}
    {#- Every recomputed profile: a tombstone, so that its stored rows go also when it has none now. #}
    union all
    select profile_id, cast(null as {{ dbt.type_string() }}), cast(null as {{ dbt.type_string() }}),
           cast(null as {{ dbt.type_timestamp() }}), cast(null as {{ dbt.type_string() }}), cast(null as {{ dbt.type_string() }})
    from {{ scope }}
{%- endif %}
)

select * from final
