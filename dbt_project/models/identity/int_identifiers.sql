{#- Every usable identifier once, with when it was first and last seen, how many people-level ids
    (emails, user_ids) it was seen with, and whether that is too many to trust it for stitching.
    identifier_key is a stable 60-bit integer from the md5 of type:value (macro stable_key), the
    same on every run and warehouse, so the incremental graph state stays valid across runs.

    Incremental (delete+insert on identifier_key; macros/identity_incremental.sql): a run recomputes
    the identifiers of the records int_identity_records created or removed after this model's
    newest changed_at (and of customer and order records it changed), each over ALL its
    occurrences (seen min/max, linked counts); the identifiers only of event records that got new
    rows of their combination keep their stored row with the seen range widened to the records';
    the rest stay; an identifier left with no occurrence is deleted (tombstone identifier_type null, removed
    by the post-hook). exclusion_changed_at is the start of the run that set the current
    is_excluded (int_identity_edges re-derives the records of identifiers that flipped).
    A changed identity_link_limits var, or records rebuilt in full, rebuild every row. -#}
{{ config(
    materialized='incremental',
    unique_key='identifier_key',
    incremental_strategy=('merge' if target.type == 'bigquery' else 'delete+insert'),
    on_schema_change='fail',
    post_hook="{{ lifeline.identity_chain_post_hook('identifier_type is null') }}"
) }}
{%- do lifeline.identity_require_columns(['changed_at', 'exclusion_changed_at']) -%}
{%- set limits = var('identity_link_limits') -%}
-- depends_on: {{ ref('int_identity_records') }}
{%- set limits_changed = namespace(reason=none) -%}
{%- if execute and is_incremental() -%}
  {%- set stored_limits = run_query('select distinct identifier_type, link_limit from ' ~ this) -%}
  {%- for row in stored_limits.rows -%}
    {%- if row[0] not in limits or (limits[row[0]] | int) != (row[1] | int) -%}
      {%- set limits_changed.reason = 'the var identity_link_limits changed' -%}
    {%- endif -%}
  {%- endfor -%}
{%- endif -%}
{%- set mark = lifeline.identity_chain_mark('int_identifiers', ['int_identifier_occurrences'], limits_changed.reason) -%}
{%- set all_occurrences = ref('int_identifier_occurrences') %}
with
{% if mark is not none %}
{%- set since = lifeline.stamp_literal(mark) %}
{#- The identifiers of the records created or removed since the mark, and of the customer and
    order records changed since (their seen range can shrink): recomputed over all their
    occurrences. #}
changed_records as (
    select record_id, anonymous_id, user_id, email, phone
    from {{ ref('int_identity_records') }}
    where changed_at > {{ since }}
      and (created_at > {{ since }} or source_table <> 'events')
    union all
    select record_id, anonymous_id, user_id, email, phone
    from {{ lifeline.identity_removed_relation() }}
    where removed_at > {{ since }}
),

{#- Event records that existed at the mark and only got new rows of their combination since:
    their identifiers link the same emails and user_ids as before, and each one's seen range can
    only widen (int_identity_records merges min/max), so such an identifier, when nothing else
    touched it, keeps its stored row with the range widened, without reading its occurrences
    (1M people, 1% new events: ~200k identifiers, most of this model's work before). #}
grown_records as (
    select record_id, anonymous_id, user_id, email, phone, first_seen_at, last_seen_at
    from {{ ref('int_identity_records') }}
    where changed_at > {{ since }}
      and created_at <= {{ since }}
      and source_table = 'events'
),

grown as (
    select
        {{ lifeline.stable_key("identifier_type || ':' || identifier_value") }} as identifier_key,
        identifier_type,
        identifier_value,
        min(first_seen_at) as first_seen_at,
        max(last_seen_at) as last_seen_at
    from ({{ lifeline.unpivot_identifiers('grown_records', ', first_seen_at, last_seen_at') }}) as unpivoted
    group by identifier_type, identifier_value
),

touched as (
    select distinct identifier_type, identifier_value
    from ({{ lifeline.unpivot_identifiers('changed_records') }}) as unpivoted
),

occurrences as (
    select all_occurrences.*
    from {{ all_occurrences }} as all_occurrences
    join touched
        on touched.identifier_type = all_occurrences.identifier_type
        and touched.identifier_value = all_occurrences.identifier_value
    where not all_occurrences.is_blocklisted
),
{% else %}
occurrences as (
    select * from {{ all_occurrences }}
    where not is_blocklisted
),
{% endif %}

seen as (
    select
        identifier_type,
        identifier_value,
        min(first_seen_at) as first_seen_at,
        max(last_seen_at) as last_seen_at
    from occurrences
    group by identifier_type, identifier_value
),

{#- Distinct (identifier, linked email or user_id of another type) pairs first, then counted:
    a plain count(distinct) over every co-occurring pair was the model's main cost. -#}
linked as (
    select distinct
        subject.identifier_type,
        subject.identifier_value,
        other.identifier_type as linked_type,
        other.identifier_value as linked_value
    from occurrences as subject
    join {{ all_occurrences }} as other on other.record_id = subject.record_id
    where other.identifier_type in ('email', 'user_id')
      and other.identifier_type <> subject.identifier_type
      and not other.is_blocklisted
),

co_occurring as (
    select
        identifier_type,
        identifier_value,
        count(case when linked_type = 'email' then 1 end) as linked_emails,
        count(case when linked_type = 'user_id' then 1 end) as linked_user_ids
    from linked
    group by identifier_type, identifier_value
),

limits as (
    {%- for identifier_type, limit in limits.items() %}
    select '{{ identifier_type }}' as identifier_type, {{ limit }} as link_limit
    {%- if not loop.last %} union all{% endif %}
    {%- endfor %}
),

computed as (
    select
        {{ lifeline.stable_key("seen.identifier_type || ':' || seen.identifier_value") }} as identifier_key,
        seen.identifier_type,
        seen.identifier_value,
        seen.first_seen_at,
        seen.last_seen_at,
        greatest(coalesce(co_occurring.linked_emails, 0), coalesce(co_occurring.linked_user_ids, 0)) as linked_count,
        limits.link_limit,
        greatest(coalesce(co_occurring.linked_emails, 0), coalesce(co_occurring.linked_user_ids, 0)) > limits.link_limit as is_excluded,
        case when coalesce(co_occurring.linked_emails, 0) >= coalesce(co_occurring.linked_user_ids, 0) then 'email' else 'user_id' end as linked_type
    from seen
    left join co_occurring
        on co_occurring.identifier_type = seen.identifier_type
        and co_occurring.identifier_value = seen.identifier_value
    join limits on limits.identifier_type = seen.identifier_type
),

{% if mark is not none %}
stored as (
    select identifier_key, is_excluded, exclusion_changed_at
    from {{ this }}
),

final as (
    select
        computed.*,
        case when stored.is_excluded = computed.is_excluded then stored.exclusion_changed_at
             else {{ lifeline.run_stamp() }} end as exclusion_changed_at,
        {{ lifeline.run_stamp() }} as changed_at
    from computed
    left join stored on stored.identifier_key = computed.identifier_key
    union all
    {#- Grown identifiers nothing else touched (a blocklisted one has no stored row). #}
    select
        kept.identifier_key,
        kept.identifier_type,
        kept.identifier_value,
        case when grown.first_seen_at < kept.first_seen_at then grown.first_seen_at else kept.first_seen_at end,
        case when grown.last_seen_at > kept.last_seen_at then grown.last_seen_at else kept.last_seen_at end,
        kept.linked_count,
        kept.link_limit,
        kept.is_excluded,
        kept.linked_type,
        kept.exclusion_changed_at,
        {{ lifeline.run_stamp() }}
    from grown
    join {{ this }} as kept on kept.identifier_key = grown.identifier_key
    left join touched
        on touched.identifier_type = grown.identifier_type
        and touched.identifier_value = grown.identifier_value
    where touched.identifier_type is null
    union all
    {#- Touched identifiers with no usable occurrence left: tombstones. #}
    select
        {{ lifeline.stable_key("touched.identifier_type || ':' || touched.identifier_value") }},
        cast(null as {{ dbt.type_string() }}),
        cast(null as {{ dbt.type_string() }}),
        cast(null as {{ dbt.type_timestamp() }}),
        cast(null as {{ dbt.type_timestamp() }}),
        cast(null as {{ dbt.type_bigint() }}),
        cast(null as {{ dbt.type_int() }}),
        cast(null as {{ dbt.type_boolean() }}),
        cast(null as {{ dbt.type_string() }}),
        cast(null as {{ dbt.type_timestamp() }}),
        {{ lifeline.run_stamp() }}
    from touched
    left join seen
        on seen.identifier_type = touched.identifier_type
        and seen.identifier_value = touched.identifier_value
    where seen.identifier_type is null
)
{% else %}
final as (
    select
        computed.*,
        {{ lifeline.run_stamp() }} as exclusion_changed_at,
        {{ lifeline.run_stamp() }} as changed_at
    from computed
)
{% endif %}

select * from final
