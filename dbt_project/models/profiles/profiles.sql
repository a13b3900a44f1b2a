{#- One row per person. Survivorship of contact fields: the customer record wins over orders and
    events; among equals the newest non-null value wins. Consent is the latest signal per channel
    (int_consent_signals) and is only true when the profile has that channel's contact field. -#}
with first_seen as (
    select * from {{ ref('int_profile_first_seen') }}
),

identity_map as (
    select * from {{ ref('identity_map') }}
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
    where is_purchase
    group by profile_id
),

current_stage as (
    select profile_id, stage
    from {{ ref('lifecycle_stage_history') }}
    where valid_to is null
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
)

select * from final
