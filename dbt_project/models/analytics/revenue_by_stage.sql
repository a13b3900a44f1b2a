{#- Revenue by current lifecycle stage (for var as_of): profiles, buyers, lifetime revenue, revenue
    per profile and revenue of the last at_risk_days, with the build's as_of. The funnel of the report reads this too. -#}
with profiles as (
    select * from {{ ref('profiles') }}
),

recent as (
    select profile_id, sum(coalesce(total, 0)) as recent_revenue
    from {{ ref('int_profile_orders') }}
    where is_purchase
      and ordered_at > {{ lifeline.add_days(-var('at_risk_days'), lifeline.as_of()) }}
    group by profile_id
),

final as (
    select
        profiles.lifecycle_stage as stage,
        count(*) as profiles,
        sum(case when profiles.orders_count > 0 then 1 else 0 end) as buyers,
        sum(profiles.total_revenue) as total_revenue,
        sum(profiles.total_revenue) / count(*) as revenue_per_profile,
        coalesce(sum(recent.recent_revenue), 0) as revenue_last_at_risk_days,
        {{ lifeline.as_of() }} as as_of
    from profiles
    left join recent on recent.profile_id = profiles.profile_id
    where profiles.lifecycle_stage is not null
    group by profiles.lifecycle_stage
)

select * from final
