{#- One row per usable, normalised identifier and the profile it belongs to.

    profile_id is deterministic: it is derived from the component's anchor, the identifier seen
    first (ties: user_id, email, phone, anonymous_id, then value), salted with var profile_id_salt.
    Unrelated new data leaves existing components, so their anchors and ids, unchanged; when two
    profiles merge, the older anchor (so the older id) survives.

    The anchor is found in two steps, not by ranking every identifier: the earliest first_seen_at
    of each component (a grouping), then the ranking among the identifiers seen at that time
    (macros/identity_map_incremental.sql, identity_map_rows_sql).

    Incremental (delete+insert on (identifier_type, identifier_value)): a run re-derives only the
    components holding an identifier stamped after its last run that may move the anchor or the
    membership: an int_identifiers row rewritten that is new, excluded or has another
    first_seen_at, int_identity_components rows recomputed (a merge or split) or vanished
    (int_identity_components__vanished). An identifier only seen again keeps its stored profile_id
    with its new seen times. Identifiers that left (excluded, or of records removed since:
    int_identity_records__removed) are written as tombstones (profile_id null) that the post-hook
    deletes (macros/identity_map_incremental.sql, build_identity_map_batch). Every row a full rebuild would change is among them: a row depends only on
    the identifier's int_identifiers row, its component and that component's members. The
    identifiers whose profile_id changed, appeared or vanished go to identity_map__changes (read by
    int_record_profiles), the run to identity_map__state. A full rebuild (logged) when there is no
    previous run, the salt changed, or a parent was rebuilt in full since (identity_map_mark).

    changed_at is the start of the run that last wrote the row: a `dbt build`'s data tests read only
    the rows it wrote (macros/test_window.sql). A table from a release without it gains the column
    (on_schema_change append_new_columns, its old rows null until rewritten): no full refresh needed. -#}
{{ config(
    materialized='incremental',
    unique_key=['identifier_type', 'identifier_value'],
    incremental_strategy=('merge' if target.type == 'bigquery' else 'delete+insert'),
    on_schema_change='append_new_columns',
    post_hook="{{ lifeline.identity_map_post_hook() }}"
) }}
-- depends_on: {{ ref('int_identity_records') }}
{%- set identifiers = ref('int_identifiers') -%}
{%- set components = ref('int_identity_components') -%}
{%- set mark = lifeline.identity_map_mark(identifiers, components) -%}
{%- if mark is not none %}
{%- do lifeline.build_identity_map_batch(mark, identifiers, components) %}
select * from {{ lifeline.identity_map_batch_table() }}
{%- else %}
{%- do lifeline.identity_map_full_rebuild() %}
{%- set assigned -%}
    select {{ lifeline.identity_map_assigned_columns('coalesce(components.component_key, identifiers.identifier_key)') }}
    from {{ identifiers }} as identifiers
    left join {{ components }} as components on components.identifier_key = identifiers.identifier_key
    where not identifiers.is_excluded
{%- endset %}
{{ lifeline.identity_map_rows_sql(assigned) }}
{%- endif %}
