{#- Per customer, the inputs of the BG/NBD purchase-cadence model (orchestration/predictions):
    frequency = repeat purchase days (distinct days with a completed order, minus one),
    recency_days = days from the first to the last purchase day, t_days = days from the first
    purchase to as_of. -#}
with purchase_days as (
    select distinct
        profile_id,
        cast(ordered_at as date) as purchase_day
    from {{ ref('int_profile_orders') }}
    where is_purchase
),

summary as (
    select
        profile_id,
        count(*) - 1 as frequency,
        min(purchase_day) as first_purchase_day,
        max(purchase_day) as last_purchase_day
    from purchase_days
    group by profile_id
),

final as (
    select
        profile_id,
        frequency,
        cast({{ dbt.datediff('first_purchase_day', 'last_purchase_day', 'day') }} as double precision) as recency_days,
        cast({{ dbt.datediff('first_purchase_day', 'cast(' ~ lifeline.as_of() ~ ' as date)', 'day') }} as double precision) as t_days
    from summary
)

select * from final
