{#- The profile each identifier combination (record) belongs to: through its first identifier
    that is in identity_map (user_id, email, phone, anonymous_id). Records whose identifiers were
    all excluded (a kiosk cookie alone) belong to nobody.

    Incremental (delete+insert on record_id): a run writes only the records that are new or whose
    profile changed, with changed_at = the run's start, and a tombstone (profile_id null) for a
    stored record that no longer has a profile. Readers take `profile_id is not null`;
    int_profile_events re-attributes the events of records with changed_at after the last it saw. -#}
{{ config(
    materialized='incremental',
    unique_key='record_id',
    incremental_strategy=('merge' if target.type == 'bigquery' else 'delete+insert'),
    on_schema_change='fail'
) }}
{%- set changed_at = "cast('" ~ run_started_at.strftime('%Y-%m-%d %H:%M:%S.%f') ~ "' as " ~ dbt.type_timestamp() ~ ")" %}
with records as (
    select * from {{ ref('int_identity_records') }}
),

identity_map as (
    select * from {{ ref('identity_map') }}
),

current_profiles as (
    select
        records.record_id,
        records.source_table,
        coalesce(records.anonymous_id, '') as anonymous_id_key,
        coalesce(records.user_id, '') as user_id_key,
        coalesce(records.email, '') as email_key,
        coalesce(records.phone, '') as phone_key,
        {{ lifeline.resolved_profile_id() }} as profile_id
    from records
    {{ lifeline.join_identity_map('records') }}
    where {{ lifeline.resolved_profile_id() }} is not null
),

{% if is_incremental() %}
changed as (
    select current_profiles.*, {{ changed_at }} as changed_at
    from current_profiles
    left join {{ this }} as stored on stored.record_id = current_profiles.record_id
    where stored.record_id is null or stored.profile_id is null or stored.profile_id <> current_profiles.profile_id
),

vanished as (
    select
        stored.record_id, stored.source_table, stored.anonymous_id_key, stored.user_id_key, stored.email_key,
        stored.phone_key, cast(null as {{ dbt.type_string() }}) as profile_id, {{ changed_at }} as changed_at
    from {{ this }} as stored
    left join current_profiles on current_profiles.record_id = stored.record_id
    where current_profiles.record_id is null and stored.profile_id is not null
),

final as (
    select * from changed
    union all
    select * from vanished
)
{% else %}
final as (
    select current_profiles.*, {{ changed_at }} as changed_at
    from current_profiles
)
{% endif %}

select * from final
