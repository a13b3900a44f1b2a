{#- Profiles that ceased to exist because their identifiers now belong to another profile
    (usually two people found to be one: the older profile_id survives), one row per
    (old_profile_id, new_profile_id) and run, so syncs can merge or re-key what they sent.

    Read from int_profile_id_history: an identifier moved from old_profile_id to new_profile_id
    and old_profile_id has no identifier left in identity_map (merged_away). A profile that loses
    some identifiers but survives (a split, e.g. a device that became shared) is not a merge.
    Append-only: each run's changes are added once (run_id), and the table is kept on
    `--full-refresh`. merged_at is the as_of of the run that saw the merge. -#}
{{ config(
    materialized='incremental',
    incremental_strategy=('merge' if target.type == 'bigquery' else 'append'),
    on_schema_change='fail',
    full_refresh=false
) }}
with moves as (
    select run_id, previous_profile_id as old_profile_id, profile_id as new_profile_id, changed_at
    from {{ ref('int_profile_id_history') }}
    where merged_away
    {% if is_incremental() %}
      and run_id not in (select distinct run_id from {{ this }})
    {% endif %}
),

final as (
    select
        old_profile_id,
        new_profile_id,
        max(changed_at) as merged_at,
        count(*) as identifiers_moved,
        run_id
    from moves
    group by run_id, old_profile_id, new_profile_id
)

select * from final
