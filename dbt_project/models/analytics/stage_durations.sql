{#- Time in stage: per stage, how many intervals, how many are closed, the mean days of the closed
    ones and the mean days so far of the open ones (up to var as_of). -#}
with intervals as (
    select
        stage,
        valid_to is null as is_open,
        cast({{ dbt.datediff('valid_from', 'coalesce(valid_to, ' ~ lifeline.as_of() ~ ')', 'minute') }} as double precision) / 1440.0 as days_in_stage
    from {{ ref('lifecycle_stage_history') }}
),

final as (
    select
        stage,
        count(*) as intervals,
        sum(case when is_open then 0 else 1 end) as closed_intervals,
        avg(case when not is_open then days_in_stage end) as avg_days_closed,
        avg(case when is_open then days_in_stage end) as avg_days_open_so_far,
        max(days_in_stage) as max_days
    from intervals
    group by stage
)

select * from final
