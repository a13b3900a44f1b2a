{#- Subscribed (email or SMS) within var welcome_days before as_of and has not ordered. -#}
with profiles as (
    select * from {{ ref('profiles') }}
),

final as (
    select
        profile_id,
        'welcome' as audience,
        case when email_consent_at is null then sms_consent_at
             when sms_consent_at is null then email_consent_at
             else greatest(email_consent_at, sms_consent_at) end as entered_at,
        cast(null as {{ dbt.type_string() }}) as product_id,
        'introduction' as angle
    from profiles
    where orders_count = 0
      and (
        (email_consent and email_consent_at > {{ lifeline.add_days(-var('welcome_days'), lifeline.as_of()) }})
        or (sms_consent and sms_consent_at > {{ lifeline.add_days(-var('welcome_days'), lifeline.as_of()) }})
      )
)

select * from final
