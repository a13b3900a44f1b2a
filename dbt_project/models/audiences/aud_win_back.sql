{#- Buyers whose current stage is at_risk or lapsed; one-time buyers get a "second purchase"
    angle, repeat buyers a "loyalty" angle. entered_at is when the at_risk/lapsed run began (the end
    of the last buying stage), so moving on from at_risk to lapsed continues the same win-back
    sequence instead of restarting it. -#}
with profiles as (
    select * from {{ ref('profiles') }}
),

stage_since as (
    select profile_id, max(valid_to) as valid_from
    from {{ ref('lifecycle_stage_history') }}
    where stage not in ('at_risk', 'lapsed') and valid_to is not null
    group by profile_id
),

final as (
    select
        profiles.profile_id,
        'win_back' as audience,
        stage_since.valid_from as entered_at,
        cast(null as {{ dbt.type_string() }}) as product_id,
        case when profiles.orders_count = 1 then 'second_purchase' else 'loyalty' end as angle
    from profiles
    join stage_since on stage_since.profile_id = profiles.profile_id
    where profiles.lifecycle_stage in ('at_risk', 'lapsed')
)

select * from final
