{#- Memory of identity_map across runs: the profile_id each identifier had after the last run that
    changed it, and the one it had before (previous_profile_id). Upserted each run for the
    identifiers whose profile_id changed or that are new; run_id is the dbt invocation that made
    the change, and merged_away says the previous profile no longer exists after it (the input
    of profile_merges).

    full_refresh is off on purpose: `--full-refresh` rebuilds the graph from scratch but keeps this
    memory, so merges are still detected against what syncs last saw. Drop the table by hand to
    forget it. -#}
{{ config(
    materialized='incremental',
    unique_key=['identifier_type', 'identifier_value'],
    incremental_strategy=('merge' if target.type == 'bigquery' else 'delete+insert'),
    on_schema_change='fail',
    full_refresh=false
) }}
with current_map as (
    select identifier_type, identifier_value, profile_id
    from {{ ref('identity_map') }}
),

surviving as (
    select distinct profile_id from current_map
),

{% if is_incremental() %}
changed as (
    select
        current_map.identifier_type,
        current_map.identifier_value,
        current_map.profile_id,
        stored.profile_id as previous_profile_id
    from current_map
    left join {{ this }} as stored
        on stored.identifier_type = current_map.identifier_type
        and stored.identifier_value = current_map.identifier_value
    where stored.profile_id is null or stored.profile_id <> current_map.profile_id
),
{% else %}
changed as (
    select
        identifier_type,
        identifier_value,
        profile_id,
        cast(null as {{ dbt.type_string() }}) as previous_profile_id
    from current_map
),
{% endif %}

final as (
    select
        changed.identifier_type,
        changed.identifier_value,
        changed.profile_id,
        changed.previous_profile_id,
        changed.previous_profile_id is not null and surviving.profile_id is null as merged_away,
        cast('{{ invocation_id }}' as {{ dbt.type_string() }}) as run_id,
        {{ lifeline.as_of() }} as changed_at
    from changed
    left join surviving on surviving.profile_id = changed.previous_profile_id
)

select * from final
