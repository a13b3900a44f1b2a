{#- When each profile was first seen and first became contactable (an email, phone or user_id). -#}
with identity_map as (
    select * from {{ ref('identity_map') }}
),

final as (
    select
        profile_id,
        min(first_seen_at) as first_seen_at,
        max(last_seen_at) as last_seen_at,
        min(case when identifier_type <> 'anonymous_id' then first_seen_at end) as contactable_at
    from identity_map
    group by profile_id
)

select * from final
