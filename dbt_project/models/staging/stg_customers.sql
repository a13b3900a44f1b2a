{#- Usable customers, one per customer_id: those created up to as_of (or without created_at).

    Incremental (macros/incremental_orders.sql, based_slice = staged_slice on created_at): a run
    re-stages the usable base_customers rows based (rewritten by base_customers) since its last run
    and those created after the newest stored created_at (as_of moved forward), delete+insert on
    customer_id. The rows outside that slice must be the ones stored (counted), else every row is
    re-read; when as_of moves back, the post-hook deletes the rows created after it. staged_at is
    the start of the run that wrote the row. -#}
{{ config(
    materialized='incremental',
    unique_key='customer_id',
    incremental_strategy=('merge' if target.type == 'bigquery' else 'delete+insert'),
    on_schema_change='fail',
    post_hook="delete from {{ this }} where created_at > {{ lifeline.as_of() }}"
) }}
{%- set usable -%}
(select * from {{ ref('base_customers') }}
 where drop_reason is null and (created_at is null or created_at <= {{ lifeline.as_of() }}))
{%- endset -%}
{%- set checked_relation = lifeline.based_slice(usable, 'stg_customers_slice', 'customer_id', 'created_at', 'stg_customers') %}
with checked as (
    select * from {{ checked_relation }} as usable
),

final as (
    select
        customer_id,
        email,
        {{ lifeline.canonical_gmail('email') }} as email_canonical,
        phone,
        first_name,
        last_name,
        created_at,
        country,
        country_code,
        postal_code,
        email_consent,
        sms_consent,
        updated_at,
        record_at,
        {#- When this row was (re)written: the run's start. #}
        {{ lifeline.run_stamp() }} as staged_at
    from checked
)

select * from final
