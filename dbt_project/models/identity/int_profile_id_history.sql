{#- Memory of identity_map across runs: the profile_id each identifier had after the last run that
    changed it, and the one it had before (previous_profile_id). Upserted each run for the
    identifiers whose profile_id changed or that are new; run_id is the dbt invocation that made
    the change, and merged_away says the previous profile no longer exists after it (the input
    of profile_merges).

    Incremental runs compare with this memory only the identifiers in identity_map's list of
    changes (identity_map__changes: profile_id changed, appeared or vanished in its last run) when
    that list covers every identity_map run since this model's last run (the coverage rule
    int_record_profiles and int_profile_message_events follow, macros/message_events_identity.sql;
    the run is recorded in <this>__last_run by the post-hook). After each run every identity_map
    row has its profile_id here, so an identifier in no list since kept it. Otherwise (no run
    recorded, identity_map rebuilt in full, e.g. on --full-refresh, or run twice since, a side
    table missing) every identity_map row is compared, as the log line says.

    full_refresh is off on purpose: `--full-refresh` rebuilds the graph from scratch but keeps this
    memory, so merges are still detected against what syncs last saw. Drop the table by hand to
    forget it. -#}
{{ config(
    materialized='incremental',
    unique_key=['identifier_type', 'identifier_value'],
    incremental_strategy=('merge' if target.type == 'bigquery' else 'delete+insert'),
    on_schema_change='fail',
    full_refresh=false,
    post_hook="{{ lifeline.record_profiles_post_hook() }}"
) }}
{%- set map_changes_since = lifeline.identity_map_changes_since(
    ref('identity_map'), 'int_profile_id_history', ['user_id', 'email', 'phone', 'anonymous_id']) %}
with current_map as (
    select identifier_type, identifier_value, profile_id
    from {{ ref('identity_map') }}
),

{% if is_incremental() %}
{% if map_changes_since is not none %}
{#- Only the identifiers identity_map listed as changed can differ from this memory. #}
listed_changes as (
    select distinct identifier_type, identifier_value
    from {{ lifeline.identity_side_relation(ref('identity_map'), '__changes') }}
),

candidates as (
    select current_map.identifier_type, current_map.identifier_value, current_map.profile_id
    from current_map
    join listed_changes
        on listed_changes.identifier_type = current_map.identifier_type
        and listed_changes.identifier_value = current_map.identifier_value
),

{% else %}
candidates as (
    select * from current_map
),

{% endif %}
changed as (
    select
        candidates.identifier_type,
        candidates.identifier_value,
        candidates.profile_id,
        stored.profile_id as previous_profile_id
    from candidates
    left join {{ this }} as stored
        on stored.identifier_type = candidates.identifier_type
        and stored.identifier_value = candidates.identifier_value
    where stored.profile_id is null or stored.profile_id <> candidates.profile_id
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

{#- The previous profiles that still have an identifier. #}
surviving as (
    select distinct profile_id from current_map
    where profile_id in (select previous_profile_id from changed)
),

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
