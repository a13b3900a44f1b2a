{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='as_of') }}
{#- Each run's audience_members, appended with the run's as_of, so audiences over time and lift
    against the holdout can be measured. Re-running the same as_of replaces that snapshot;
    --full-refresh starts the history afresh. -#}
with members as (
    select * from {{ ref('audience_members') }}
),

final as (
    select
        {{ lifeline.as_of() }} as as_of,
        audience,
        channel,
        profile_id,
        entered_at,
        is_holdout,
        step,
        angle,
        message_format,
        offer_percent
    from members
)

select * from final
