{#- The profile each identifier combination (record) belongs to: through its first identifier
    that is in identity_map (user_id, email, phone, anonymous_id). Records whose identifiers were
    all excluded (a kiosk cookie alone) belong to nobody.

    Incremental (delete+insert on record_id): a run writes only the records that are new or whose
    profile changed, with changed_at = the run's start, and a tombstone (profile_id null) for a
    stored record that no longer has a profile. Readers take `profile_id is not null`;
    int_profile_events re-attributes the events of records with changed_at after the last it saw.
    It resolves again only the records int_identity_records created or removed since its last run and
    those holding an identifier whose profile_id changed, appeared or vanished in identity_map's
    last run (identity_map__changes, macros/identity_map_incremental.sql, record_profiles_since);
    when that list does not cover everything since its last run (identity_map rebuilt in full or
    run twice), it resolves every record and compares it with the stored rows (logged).
    The relations are read directly, not through CTEs referenced several times (DuckDB would
    materialise all of int_identity_records and identity_map first). -#}
{{ config(
    materialized='incremental',
    unique_key='record_id',
    incremental_strategy=('merge' if target.type == 'bigquery' else 'delete+insert'),
    on_schema_change='fail',
    post_hook="{{ lifeline.record_profiles_post_hook() }}"
) }}
{%- set records = ref('int_identity_records') %}
{%- set identity_map = ref('identity_map') %}
{%- set mark = lifeline.record_profiles_since(records, lifeline.identity_removed_relation(), identity_map) %}
{%- set changed_at = "cast('" ~ run_started_at.strftime('%Y-%m-%d %H:%M:%S.%f') ~ "' as " ~ dbt.type_timestamp() ~ ")" %}
with
{% if mark is not none %}
{#- The records to resolve again: created since the mark, or with an identifier whose profile_id
    changed in identity_map (one semi-join per identifier column against the few changed ones).
    A record rewritten only because new rows of its combination arrived has the same identifiers,
    so it resolves to the same profile unless one of them changed in identity_map. #}
changed_identifiers as (
    select * from {{ lifeline.identity_side_relation(identity_map, '__changes') }}
),

touched as (
    select record_id from {{ records }} where created_at > {{ lifeline.stamp_literal(mark) }}
    union
    select records.record_id from {{ records }} as records
    join changed_identifiers on changed_identifiers.identifier_type = 'user_id' and changed_identifiers.identifier_value = records.user_id
    union
    select records.record_id from {{ records }} as records
    join changed_identifiers on changed_identifiers.identifier_type = 'email' and changed_identifiers.identifier_value = records.email
    union
    select records.record_id from {{ records }} as records
    join changed_identifiers on changed_identifiers.identifier_type = 'phone' and changed_identifiers.identifier_value = records.phone
    union
    select records.record_id from {{ records }} as records
    join changed_identifiers on changed_identifiers.identifier_type = 'anonymous_id' and changed_identifiers.identifier_value = records.anonymous_id
),

to_resolve as (
    select records.* from {{ records }} as records where record_id in (select record_id from touched)
),
{% else %}
to_resolve as (
    select * from {{ records }}
),
{% endif %}

{#- Their profile now (incremental by touched records: null when they have none, for the tombstones). #}
current_profiles as (
    select
        records.record_id,
        records.source_table,
        coalesce(records.anonymous_id, '') as anonymous_id_key,
        coalesce(records.user_id, '') as user_id_key,
        coalesce(records.email, '') as email_key,
        coalesce(records.phone, '') as phone_key,
        {{ lifeline.resolved_profile_id() }} as profile_id
    from to_resolve as records
    {{ lifeline.join_identity_map('records', identity_map) }}
    {% if mark is none %}where {{ lifeline.resolved_profile_id() }} is not null{% endif %}
),

{% if mark is not none %}
{#- A join on the keys, not `in (...) or in (...)` (a filter over every column of every stored row). #}
stored as (
    select stored.* from {{ this }} as stored
    join (
        select record_id from touched
        union
        select record_id from {{ lifeline.identity_removed_relation() }} where removed_at > {{ lifeline.stamp_literal(mark) }}
    ) as keys on keys.record_id = stored.record_id
),

final as (
    select
        resolved.record_id, resolved.source_table, resolved.anonymous_id_key, resolved.user_id_key,
        resolved.email_key, resolved.phone_key, resolved.profile_id, {{ changed_at }} as changed_at
    from current_profiles as resolved
    left join stored on stored.record_id = resolved.record_id
    where resolved.profile_id is not null
      and (stored.record_id is null or stored.profile_id is null or stored.profile_id <> resolved.profile_id)
    union all
    {#- Tombstones: stored with a profile, and now without one or removed (a removed record that
        came back was written since, so it is in resolved). #}
    select
        stored.record_id, stored.source_table, stored.anonymous_id_key, stored.user_id_key, stored.email_key,
        stored.phone_key, cast(null as {{ dbt.type_string() }}), {{ changed_at }}
    from stored
    left join current_profiles as resolved on resolved.record_id = stored.record_id
    where stored.profile_id is not null and resolved.profile_id is null
)
{% elif is_incremental() %}
{#- One full outer join of the current and the stored rows on record_id (a left join for the
    changed rows plus an anti-join for the vanished ones read both sides twice). #}
compared as (
    select
        current_profiles.*,
        stored.record_id as stored_record_id,
        stored.source_table as stored_source_table,
        stored.anonymous_id_key as stored_anonymous_id_key,
        stored.user_id_key as stored_user_id_key,
        stored.email_key as stored_email_key,
        stored.phone_key as stored_phone_key,
        stored.profile_id as stored_profile_id
    from current_profiles
    full outer join {{ this }} as stored on stored.record_id = current_profiles.record_id
),

final as (
    select
        record_id, source_table, anonymous_id_key, user_id_key, email_key, phone_key, profile_id,
        {{ changed_at }} as changed_at
    from compared
    where record_id is not null
      and (stored_record_id is null or stored_profile_id is null or stored_profile_id <> profile_id)
    union all
    select
        stored_record_id, stored_source_table, stored_anonymous_id_key, stored_user_id_key, stored_email_key,
        stored_phone_key, cast(null as {{ dbt.type_string() }}), {{ changed_at }}
    from compared
    where record_id is null and stored_profile_id is not null
)
{% else %}
final as (
    select current_profiles.*, {{ changed_at }} as changed_at
    from current_profiles
)
{% endif %}

select * from final
