{#- Edges between identifiers seen together on one record, as integer keys: each identifier on a
    record is linked to the record's anchor (its first usable identifier in the order user_id,
    email, phone, anonymous_id), a star rather than every pair. Excluded identifiers link nobody.
    Each (src, dst) pair once, however many records produce it.

    Incremental (delete+insert on (src, dst); macros/identity_incremental.sql). The touched records
    are those int_identity_records created or removed after this model's newest changed_at (not
    every record it wrote: one rewritten because new rows of its combination arrived holds the
    same identifiers, so it produces the same edges), plus the records holding an identifier
    whose is_excluded flipped since (int_identifiers.exclusion_changed_at); K is the set of their
    identifiers. Every edge a touched record produced
    before or produces now has both ends in K, and an edge with both ends in K can only come from a
    record holding an identifier of K. So a run recomputes the star edges of the records holding an
    identifier of K, keeps those with both ends in K, and writes them plus tombstones (changed_at
    null, deleted by the post-hook) for the stored edges with both ends in K that no record
    produces any more; every other edge comes from untouched records and stays. -#}
{{ config(
    materialized='incremental',
    unique_key=['src', 'dst'],
    incremental_strategy=('merge' if target.type == 'bigquery' else 'delete+insert'),
    on_schema_change='fail',
    post_hook="{{ lifeline.identity_chain_post_hook('changed_at is null') }}"
) }}
-- depends_on: {{ ref('int_identity_records') }}
{%- do lifeline.identity_require_columns(['changed_at']) -%}
{%- set mark = lifeline.identity_chain_mark('int_identity_edges', ['int_identifier_occurrences', 'int_identifiers']) -%}
{%- set all_occurrences = ref('int_identifier_occurrences') %}
{#- Nothing created, removed or flipped since the mark (new events of known combinations only):
    no edge can change, so the run writes nothing instead of reading every occurrence to find no
    record (1M people: ~1.6 s alone). #}
{%- set unchanged = namespace(on=false) %}
{%- if mark is not none and execute %}
  {%- set since = lifeline.stamp_literal(mark) %}
  {%- set counts = run_query('select (select count(*) from ' ~ ref('int_identity_records') ~ ' where created_at > ' ~ since ~ '),
      (select count(*) from ' ~ lifeline.identity_removed_relation() ~ ' where removed_at > ' ~ since ~ '),
      (select count(*) from ' ~ ref('int_identifiers') ~ ' where exclusion_changed_at > ' ~ since ~ ')').rows[0] %}
  {%- if (counts[0] | int) + (counts[1] | int) + (counts[2] | int) == 0 %}
    {{ log("int_identity_edges (incremental): no record created or removed and no exclusion changed since "
           ~ mark.strftime("%Y-%m-%d %H:%M:%S.%f") ~ ": no edge changes", info=True) }}
    {%- set unchanged.on = true %}
  {%- endif %}
{%- endif %}
{%- if unchanged.on %}
select src, dst, changed_at from {{ this }} where 1 = 0
{%- else %}
with
{% if mark is not none %}
{%- set since = lifeline.stamp_literal(mark) %}
touched_records as (
    select record_id, anonymous_id, user_id, email, phone
    from {{ ref('int_identity_records') }}
    where created_at > {{ since }}
    union all
    select record_id, anonymous_id, user_id, email, phone
    from {{ lifeline.identity_removed_relation() }}
    where removed_at > {{ since }}
),

{#- The records holding an identifier whose is_excluded flipped (or that is new) since the mark. #}
flipped_records as (
    select flipped_occurrences.record_id
    from {{ all_occurrences }} as flipped_occurrences
    join {{ ref('int_identifiers') }} as flipped
        on flipped.identifier_type = flipped_occurrences.identifier_type
        and flipped.identifier_value = flipped_occurrences.identifier_value
    where flipped.exclusion_changed_at > {{ since }}
),

touched_identifiers as (
    select distinct
        identifier_type,
        identifier_value,
        {{ lifeline.stable_key("identifier_type || ':' || identifier_value") }} as identifier_key
    from (
        select identifier_type, identifier_value from ({{ lifeline.unpivot_identifiers('touched_records') }}) as unpivoted
        union all
        select identifier_type, identifier_value from {{ all_occurrences }}
        where record_id in (select record_id from flipped_records)
    ) as touched
),

occurrences as (
    select all_occurrences.*
    from {{ all_occurrences }} as all_occurrences
    where not all_occurrences.is_blocklisted
      and all_occurrences.record_id in (
          select holding.record_id
          from {{ all_occurrences }} as holding
          join touched_identifiers
              on touched_identifiers.identifier_type = holding.identifier_type
              and touched_identifiers.identifier_value = holding.identifier_value
      )
),
{% else %}
occurrences as (
    select * from {{ all_occurrences }}
    where not is_blocklisted
),
{% endif %}

usable as (
    select
        occurrences.record_id,
        identifiers.identifier_key,
        case occurrences.identifier_type
            when 'user_id' then 1 when 'email' then 2 when 'phone' then 3 else 4
        end as type_rank
    from occurrences
    join {{ ref('int_identifiers') }} as identifiers
        on identifiers.identifier_type = occurrences.identifier_type
        and identifiers.identifier_value = occurrences.identifier_value
    where not identifiers.is_excluded
),

anchored as (
    select
        record_id,
        identifier_key,
        first_value(identifier_key) over (
            partition by record_id order by type_rank, identifier_key
            rows between unbounded preceding and unbounded following
        ) as anchor_key
    from usable
),

edges as (
    select distinct
        anchor_key as src,
        identifier_key as dst
    from anchored
    where identifier_key <> anchor_key
),

{% if mark is not none %}
recomputed as (
    select edges.src, edges.dst
    from edges
    where edges.src in (select identifier_key from touched_identifiers)
      and edges.dst in (select identifier_key from touched_identifiers)
),

final as (
    select src, dst, {{ lifeline.run_stamp() }} as changed_at
    from recomputed
    union all
    select stored.src, stored.dst, cast(null as {{ dbt.type_timestamp() }})
    from {{ this }} as stored
    left join recomputed on recomputed.src = stored.src and recomputed.dst = stored.dst
    where stored.src in (select identifier_key from touched_identifiers)
      and stored.dst in (select identifier_key from touched_identifiers)
      and recomputed.src is null
)
{% else %}
final as (
    select src, dst, {{ lifeline.run_stamp() }} as changed_at
    from edges
)
{% endif %}

select * from final
{%- endif %}
