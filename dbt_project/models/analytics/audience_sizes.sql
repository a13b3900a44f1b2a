{#- Audience sizes over time, from audience_membership_history: members synced and held out per
    audience, channel and run (as_of). -#}
with history as (
    select * from {{ ref('audience_membership_history') }}
),

final as (
    select
        as_of,
        audience,
        channel,
        sum(case when is_holdout then 0 else 1 end) as members,
        sum(case when is_holdout then 1 else 0 end) as holdout
    from history
    group by as_of, audience, channel
)

select * from final
