{#- Usable events up to as_of, one per event_id.

    Incremental (macros/incremental_events.sql, staged_slice): a run re-stages the usable
    base_events rows based (rewritten by base_events) since its last run, those after the newest
    stored occurred_at (as_of moved forward) and, in a partition run, those in the window (vars
    partition_start / partition_end minus var event_lookback_days), delete+insert on event_id: a
    duplicate that now wins replaces the stored copy. The rows outside that slice must be the ones
    stored (counted), else every row is re-read; when as_of moves back, the post-hook deletes the
    rows after it. staged_at is the start of the run that wrote the row. -#}
{{ config(
    materialized='incremental',
    unique_key='event_id',
    incremental_strategy=('merge' if target.type == 'bigquery' else 'delete+insert'),
    on_schema_change='fail',
    post_hook="delete from {{ this }} where occurred_at > {{ lifeline.as_of() }}"
) }}
{%- set usable -%}
(select * from {{ ref('base_events') }} where drop_reason is null and occurred_at <= {{ lifeline.as_of() }})
{%- endset -%}
{%- set checked_relation = lifeline.staged_slice(usable, 'stg_events_slice', 'event_id', 'stg_events') %}
with checked as (
    select * from {{ checked_relation }} as usable
),

final as (
    select
        event_id,
        event_type,
        occurred_at,
        anonymous_id,
        user_id,
        email,
        {{ lifeline.canonical_gmail('email') }} as email_canonical,
        phone,
        session_id,
        product_id,
        cart_id,
        order_id,
        value,
        properties,
        {#- When this row was (re)written: the run's start. Downstream incremental models read the
            rows staged since their last run through it (int_profile_events). #}
        {{ lifeline.run_stamp() }} as staged_at
    from checked
)

select * from final
