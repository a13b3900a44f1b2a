{#- Stage-to-stage moves in lifecycle_stage_history: how many intervals of from_stage ended in
    to_stage, and that count as a share of all intervals of from_stage (conversion_rate), for
    var as_of. from_stage is 'entry' for a profile's first interval. -#}
with history as (
    select
        profile_id,
        stage,
        valid_from,
        lag(stage) over (partition by profile_id order by valid_from) as previous_stage
    from {{ ref('lifecycle_stage_history') }}
),

moves as (
    select coalesce(previous_stage, 'entry') as from_stage, stage as to_stage, count(*) as transitions
    from history
    group by coalesce(previous_stage, 'entry'), stage
),

stage_totals as (
    select stage, count(*) as intervals
    from history
    group by stage
),

final as (
    select
        moves.from_stage,
        moves.to_stage,
        moves.transitions,
        coalesce(stage_totals.intervals, moves.transitions) as from_stage_intervals,
        cast(moves.transitions as double precision) / coalesce(stage_totals.intervals, moves.transitions) as conversion_rate
    from moves
    left join stage_totals on stage_totals.stage = moves.from_stage
)

select * from final
