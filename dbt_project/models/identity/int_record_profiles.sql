{#- The profile each identifier combination (record) belongs to: through its first identifier
    that is in identity_map (user_id, email, phone, anonymous_id). Records whose identifiers were
    all excluded (a kiosk cookie alone) belong to nobody. -#}
with records as (
    select * from {{ ref('int_identity_records') }}
),

identity_map as (
    select * from {{ ref('identity_map') }}
),

final as (
    select
        records.source_table,
        coalesce(records.anonymous_id, '') as anonymous_id_key,
        coalesce(records.user_id, '') as user_id_key,
        coalesce(records.email, '') as email_key,
        coalesce(records.phone, '') as phone_key,
        coalesce(by_user.profile_id, by_email.profile_id, by_phone.profile_id, by_cookie.profile_id) as profile_id
    from records
    left join identity_map as by_user
        on by_user.identifier_type = 'user_id' and by_user.identifier_value = records.user_id
    left join identity_map as by_email
        on by_email.identifier_type = 'email' and by_email.identifier_value = records.email
    left join identity_map as by_phone
        on by_phone.identifier_type = 'phone' and by_phone.identifier_value = records.phone
    left join identity_map as by_cookie
        on by_cookie.identifier_type = 'anonymous_id' and by_cookie.identifier_value = records.anonymous_id
    where coalesce(by_user.profile_id, by_email.profile_id, by_phone.profile_id, by_cookie.profile_id) is not null
)

select * from final
