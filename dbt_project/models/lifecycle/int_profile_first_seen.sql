{#- When each profile was first seen and first became contactable (an email, phone or user_id), and
    whether it is contactable at all (a record without any timestamp still has its identifiers). -#}
with identity_map as (
    select * from {{ ref('identity_map') }}
),

final as (
    select
        profile_id,
        min(first_seen_at) as first_seen_at,
        max(last_seen_at) as last_seen_at,
        min(case when identifier_type <> 'anonymous_id' then first_seen_at end) as contactable_at,
        max(case when identifier_type <> 'anonymous_id' then 1 else 0 end) = 1 as is_contactable
    from identity_map
    group by profile_id
)

select * from final
