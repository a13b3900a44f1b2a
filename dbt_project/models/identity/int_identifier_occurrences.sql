{#- One row per identifier on a record (the records unpivoted), junk values flagged.

    Incremental (delete+insert on record_id; macros/identity_incremental.sql): a run unpivots only
    the records int_identity_records wrote after this model's newest changed_at, and drops the
    rows of the records it removed since (int_identity_records__removed), through tombstones
    (identifier_type null) the post-hook deletes. When the records were rebuilt in full since, every
    row is rebuilt. changed_at is the start of the run that wrote the row. -#}
{{ config(
    materialized='incremental',
    unique_key='record_id',
    incremental_strategy=('merge' if target.type == 'bigquery' else 'delete+insert'),
    on_schema_change='fail',
    post_hook="{{ lifeline.identity_chain_post_hook('identifier_type is null') }}"
) }}
{%- do lifeline.identity_require_columns(['changed_at']) -%}
{%- set mark = lifeline.identity_chain_mark('int_identifier_occurrences') -%}
with records as (
    select * from {{ ref('int_identity_records') }}
    {%- if mark is not none %}
    where changed_at > {{ lifeline.stamp_literal(mark) }}
    {%- endif %}
),

unpivoted as (
    {{ lifeline.unpivot_identifiers('records', ', first_seen_at, last_seen_at') }}
),

blocklist as (
    select identifier_type, lower(identifier_value) as identifier_value, reason
    from {{ ref('identifier_blocklist') }}
),

flagged as (
    select
        unpivoted.*,
        blocklist.identifier_value is not null as is_blocklisted,
        blocklist.reason as blocklist_reason
    from unpivoted
    left join blocklist
        on blocklist.identifier_type = unpivoted.identifier_type
        and blocklist.identifier_value = lower(unpivoted.identifier_value)
),

{% if mark is not none %}
written as (
    select * from flagged
    union all
    select distinct
        removed.record_id,
        cast(null as {{ dbt.type_string() }}),
        cast(null as {{ dbt.type_string() }}),
        cast(null as {{ dbt.type_timestamp() }}),
        cast(null as {{ dbt.type_timestamp() }}),
        false,
        cast(null as {{ dbt.type_string() }})
    from {{ lifeline.identity_removed_relation() }} as removed
    where removed.removed_at > {{ lifeline.stamp_literal(mark) }}
      and removed.record_id not in (select record_id from records)
),
{% else %}
written as (
    select * from flagged
),
{% endif %}

final as (
    select written.*, {{ lifeline.run_stamp() }} as changed_at
    from written
)

select * from final
