with checked as (
    select * from {{ ref('base_customers') }}
),

final as (
    select
        customer_id,
        email,
        {{ lifeline.canonical_gmail('email') }} as email_canonical,
        phone,
        first_name,
        last_name,
        created_at,
        country,
        country_code,
        postal_code,
        email_consent,
        sms_consent,
        updated_at,
        record_at
    from checked
    where drop_reason is null
      and (created_at is null or created_at <= {{ lifeline.as_of() }})
)

select * from final
