{#- One row per person. Survivorship of contact fields: the customer record wins over orders and
    events; among equals the newest non-null value wins. Consent is the latest signal per channel
    (int_consent_signals) and is only true when the profile has that channel's contact field.

    Incremental (delete+insert on profile_id, macros/incremental_profiles.sql): a run recomputes
    only the profiles whose input rows changed since its last run: their int_profile_first_seen
    row, identity_map rows (email, phone, user_id), customer records, consent signals, completed
    orders, int_profile_engagement row and current lifecycle stage. Nothing here depends on as_of
    directly (the stage carries it). A change of the model replaces every row. -#}
{{ config(
    materialized='incremental',
    unique_key='profile_id',
    incremental_strategy=('merge' if target.type == 'bigquery' else 'delete+insert'),
    on_schema_change='fail',
    post_hook=["delete from {{ this }} where email_consent is null",
               "{{ lifeline.store_profile_scope() }}"]
) }}
{%- set fingerprint_sql %}
    select profile_id, {{ lifeline.profile_row_hash(["'first_seen'", 'first_seen_at', 'last_seen_at']) }} as row_hash
    from {{ ref('int_profile_first_seen') }}
    union all
    select profile_id, {{ lifeline.profile_row_hash(["'identifier'", 'identifier_type', 'identifier_value', 'last_seen_at']) }}
    from {{ ref('identity_map') }}
    where identifier_type in ('email', 'phone', 'user_id')
    union all
    select identity_map.profile_id, {{ lifeline.profile_row_hash(["'customer'", 'customers.customer_id', 'customers.email',
        'customers.phone', 'customers.first_name', 'customers.last_name', 'customers.country_code', 'customers.postal_code',
        'customers.record_at']) }}
    from {{ ref('stg_customers') }} as customers
    join {{ ref('identity_map') }} as identity_map
        on identity_map.identifier_type = 'user_id' and identity_map.identifier_value = customers.customer_id
    union all
    select profile_id, {{ lifeline.profile_row_hash(["'consent'", 'channel', 'status', 'signaled_at']) }}
    from {{ ref('int_consent_signals') }}
    union all
    select profile_id, {{ lifeline.profile_row_hash(["'order'", 'total', 'ordered_at']) }}
    from {{ ref('int_profile_orders') }}
    where is_purchase
    union all
    select profile_id, {{ lifeline.profile_row_hash(["'engagement'", 'last_opened_at', 'last_clicked_at', 'last_sent_at',
        'emails_sent', 'sends_since_last_engagement', 'best_send_hour']) }}
    from {{ ref('int_profile_engagement') }}
    union all
    select profile_id, {{ lifeline.profile_row_hash(["'stage'", 'stage']) }}
    from {{ ref('lifecycle_stage_history') }}
    where valid_to is null
{%- endset %}
{%- set scope = lifeline.profile_scope(fingerprint_sql, 'profiles') %}
{%- set in_scope = ('profile_id in (select profile_id from ' ~ scope ~ ')') if scope else '1 = 1' %}

with first_seen as (
    select * from {{ ref('int_profile_first_seen') }}
    where {{ in_scope }}
),

identity_map as (
    select * from {{ ref('identity_map') }}
    where {{ in_scope }}
),

customer_records as (
    select
        identity_map.profile_id,
        customers.*,
        row_number() over (partition by identity_map.profile_id order by customers.record_at desc nulls last, customers.customer_id) as record_rank
    from {{ ref('stg_customers') }} as customers
    join identity_map
        on identity_map.identifier_type = 'user_id' and identity_map.identifier_value = customers.customer_id
),

latest_customer as (
    select * from customer_records where record_rank = 1
),

contact_candidates as (
    select
        identity_map.profile_id,
        identity_map.identifier_type,
        identity_map.identifier_value,
        row_number() over (
            partition by identity_map.profile_id, identity_map.identifier_type
            order by
                case when identity_map.identifier_type = 'email' and identity_map.identifier_value = latest_customer.email then 0
                     when identity_map.identifier_type = 'phone' and identity_map.identifier_value = latest_customer.phone then 0
                     when identity_map.identifier_type = 'user_id' and identity_map.identifier_value = latest_customer.customer_id then 0
                     else 1 end,
                identity_map.last_seen_at desc,
                identity_map.identifier_value
        ) as candidate_rank
    from identity_map
    left join latest_customer on latest_customer.profile_id = identity_map.profile_id
    where identity_map.identifier_type in ('email', 'phone', 'user_id')
),

contacts as (
    select
        profile_id,
        max(case when identifier_type = 'user_id' then identifier_value end) as user_id,
        max(case when identifier_type = 'email' then identifier_value end) as email,
        max(case when identifier_type = 'phone' then identifier_value end) as phone
    from contact_candidates
    where candidate_rank = 1
    group by profile_id
),

latest_consent as (
    select profile_id, channel, status, signaled_at
    from (
        select
            signals.*,
            row_number() over (
                partition by profile_id, channel
                order by signaled_at desc nulls last,
                    case status when 'unsubscribed' then 0 when 'subscribed' then 1 else 2 end
            ) as signal_rank
        from {{ ref('int_consent_signals') }} as signals
        where {{ in_scope }}
    ) ranked
    where signal_rank = 1
),

orders as (
    select
        profile_id,
        count(*) as orders_count,
        sum(coalesce(total, 0)) as total_revenue,
        min(ordered_at) as first_order_at,
        max(ordered_at) as last_order_at
    from {{ ref('int_profile_orders') }}
    where is_purchase and {{ in_scope }}
    group by profile_id
),

current_stage as (
    select profile_id, stage
    from {{ ref('lifecycle_stage_history') }}
    where valid_to is null and {{ in_scope }}
),

final as (
    select
        first_seen.profile_id,
        contacts.user_id,
        contacts.email,
        contacts.phone,
        latest_customer.first_name,
        latest_customer.last_name,
        latest_customer.country_code as country,
        latest_customer.postal_code,
        coalesce(email_consent.status = 'subscribed' and contacts.email is not null, false) as email_consent,
        coalesce(sms_consent.status = 'subscribed' and contacts.phone is not null, false) as sms_consent,
        email_consent.signaled_at as email_consent_at,
        sms_consent.signaled_at as sms_consent_at,
        first_seen.first_seen_at,
        first_seen.last_seen_at,
        coalesce(orders.orders_count, 0) as orders_count,
        coalesce(orders.total_revenue, 0) as total_revenue,
        orders.first_order_at,
        orders.last_order_at,
        engagement.last_opened_at,
        engagement.last_clicked_at,
        engagement.last_sent_at,
        coalesce(engagement.emails_sent, 0) as emails_sent,
        coalesce(engagement.sends_since_last_engagement, 0) as sends_since_last_engagement,
        engagement.best_send_hour,
        current_stage.stage as lifecycle_stage
    from first_seen
    left join contacts on contacts.profile_id = first_seen.profile_id
    left join latest_customer on latest_customer.profile_id = first_seen.profile_id
    left join latest_consent as email_consent
        on email_consent.profile_id = first_seen.profile_id and email_consent.channel = 'email'
    left join latest_consent as sms_consent
        on sms_consent.profile_id = first_seen.profile_id and sms_consent.channel = 'sms'
    left join orders on orders.profile_id = first_seen.profile_id
    left join {{ ref('int_profile_engagement') }} as engagement on engagement.profile_id = first_seen.profile_id
    left join current_stage on current_stage.profile_id = first_seen.profile_id
{%- if scope %}
    {#- A scoped profile that no longer exists (merged away, erased): a tombstone (email_consent
        null) that replaces its stored row and is deleted by the post-hook. #}
    union all
    select scoped.profile_id, null, null, null, null, null, null, null, cast(null as boolean), cast(null as boolean),
           null, null, null, null, null, null, null, null, null, null, null, null, null, null, null
    from {{ scope }} as scoped
    where scoped.profile_id not in (select profile_id from first_seen)
{%- endif %}
)

select * from final
