{#- Every raw customer row, typed and normalised, with the reason it is not used (drop_reason) and
    the identifiers that were repaired. stg_customers keeps the usable rows; quarantine lists the rest.

    Incremental (macros/incremental_orders.sql, stamped_slice): a run reads the raw rows loaded
    since its last run (load stamp), every raw row sharing a customer_key with them (so a newer
    record of a customer is ranked against the stored ones, as in a full refresh), and replaces the
    stored rows of those keys (customer_key: customer_id, or 'row:' || md5 of the raw row when
    there is none). Raw rows without load stamps, or a count that does not match (rows deleted,
    table replaced): every raw row is re-read. based_at is the start of the run that wrote the row. -#}
{{ config(
    materialized='incremental',
    unique_key='customer_key',
    incremental_strategy=('merge' if target.type == 'bigquery' else 'lifeline_slice'),
    on_schema_change='fail',
    post_hook="{{ lifeline.store_load_mark(source('raw', 'customers'), 'base_customers_slice') }}"
) }}
{%- set raw_columns = ['customer_id', 'email', 'phone', 'first_name', 'last_name', 'created_at', 'country',
                       'postal_code', 'email_consent', 'sms_consent', 'updated_at'] -%}
{%- set key_sql = "coalesce(" ~ lifeline.clean_text('source.customer_id') ~ ", 'row:' || "
                  ~ lifeline.raw_row_hash('source', raw_columns) ~ ")" -%}
{%- set raw_relation = lifeline.stamped_slice(
        source('raw', 'customers'), 'base_customers_slice', key_sql, 'customer_key',
        'cast(source.customer_id as ' ~ dbt.type_string() ~ ')', 'base_customers') %}
with source as (
    select * from {{ raw_relation }}
),

calling_codes as (
    select country_code, lower(country_name) as country_name, calling_code
    from {{ ref('country_calling_codes') }}
),

default_country as (
    select calling_code from calling_codes where country_code = '{{ var("default_country") }}'
),

typed as (
    select
        {{ lifeline.clean_text('source.customer_id') }} as customer_id,
        {{ lifeline.clean_text('source.email') }} as email_raw,
        {{ lifeline.clean_text('source.phone') }} as phone_raw,
        nullif(trim(cast(source.first_name as {{ dbt.type_string() }})), '') as first_name,
        nullif(trim(cast(source.last_name as {{ dbt.type_string() }})), '') as last_name,
        {{ lifeline.parse_timestamp('source.created_at') }} as created_at,
        nullif(trim(cast(source.country as {{ dbt.type_string() }})), '') as country,
        nullif(trim(cast(source.postal_code as {{ dbt.type_string() }})), '') as postal_code,
        lower(trim(cast(source.email_consent as {{ dbt.type_string() }}))) as email_consent_raw,
        lower(trim(cast(source.sms_consent as {{ dbt.type_string() }}))) as sms_consent_raw,
        {{ lifeline.parse_timestamp('source.updated_at') }} as updated_at,
        {{ key_sql }} as customer_key
    from source
),

with_country as (
    select
        typed.*,
        coalesce(by_code.country_code, by_name.country_code) as country_code,
        coalesce(by_code.calling_code, by_name.calling_code, default_country.calling_code) as calling_code
    from typed
    cross join default_country
    left join calling_codes as by_code on upper(typed.country) = by_code.country_code
    left join calling_codes as by_name on lower(typed.country) = by_name.country_name
),

normalised as (
    select
        with_country.*,
        {{ lifeline.normalize_email('email_raw') }} as email,
        {{ lifeline.normalize_phone('phone_raw', 'calling_code') }} as phone,
        case when email_consent_raw in ('subscribed', 'unsubscribed', 'never_subscribed')
             then email_consent_raw end as email_consent,
        case when sms_consent_raw in ('subscribed', 'unsubscribed', 'never_subscribed')
             then sms_consent_raw end as sms_consent,
        coalesce(updated_at, created_at) as record_at
    from with_country
),

ranked as (
    select
        normalised.*,
        row_number() over (
            partition by customer_id order by record_at desc nulls last, email, phone
        ) as customer_rank
    from normalised
),

final as (
    select
        customer_key,
        customer_id,
        email,
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
        case
            when customer_id is null then 'missing_customer_id'
            when customer_rank > 1 then 'superseded_customer_record'
        end as drop_reason,
        case when email_raw is not null and email is null then 'malformed_email' end as email_issue,
        case when phone_raw is not null and phone is null then 'malformed_phone' end as phone_issue,
        {#- When this row was (re)written: the run's start. stg_customers re-stages the rows based
            since its last run through it. #}
        {{ lifeline.run_stamp() }} as based_at
    from ranked
)

select * from final
