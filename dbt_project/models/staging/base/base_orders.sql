{#- Every raw order row, typed and normalised, with the reason it is not used (drop_reason) and the
    identifiers that were repaired. stg_orders keeps the usable rows; quarantine lists the rest.

    Incremental (macros/incremental_orders.sql, stamped_slice): a run reads the raw rows loaded
    since its last run (load stamp), every raw row sharing an order_key with them (a corrected copy
    of an order is ranked against the stored ones, as in a full refresh), and the orders whose
    phone was read with a calling code that is no longer their customer's (a customer's country
    changed, appeared or vanished); it replaces the stored rows of those keys (order_key: order_id,
    or 'row:' || md5 of the raw row when there is none). Raw rows without load stamps, or a count
    that does not match (rows deleted, table replaced): every raw row is re-read. based_at is the
    start of the run that wrote the row; phone_calling_code the code the phone was read with. -#}
{{ config(
    materialized='incremental',
    unique_key='order_key',
    incremental_strategy=('merge' if target.type == 'bigquery' else 'lifeline_slice'),
    on_schema_change='fail',
    post_hook="{{ lifeline.store_load_mark(source('raw', 'orders'), 'base_orders_slice') }}"
) }}
{%- set raw_columns = ['order_id', 'ordered_at', 'customer_id', 'email', 'phone', 'anonymous_id', 'status',
                       'total', 'currency'] -%}
{%- set key_sql = "coalesce(" ~ lifeline.clean_text('source.order_id') ~ ", 'row:' || "
                  ~ lifeline.raw_row_hash('source', raw_columns) ~ ")" -%}
{%- set calling_codes -%}
(select customers.customer_id, calling_codes.calling_code
    from {{ ref('base_customers') }} as customers
    join {{ ref('country_calling_codes') }} as calling_codes
        on calling_codes.country_code = customers.country_code
    where customers.drop_reason is null and customers.customer_id is not null)
{%- endset -%}
{%- set default_code -%}
(select calling_code from {{ ref('country_calling_codes') }} where country_code = '{{ var("default_country") }}')
{%- endset -%}
{%- set raw_relation = lifeline.stamped_slice(
        source('raw', 'orders'), 'base_orders_slice', key_sql, 'order_key',
        'cast(source.order_id as ' ~ dbt.type_string() ~ ')', 'base_orders',
        recheck_sql='order_key in (select stored.order_key from ' ~ this ~ ' as stored left join ' ~ calling_codes
            ~ ' as codes on codes.customer_id = stored.customer_id where stored.phone_calling_code is not null'
            ~ ' and stored.phone_calling_code <> coalesce(codes.calling_code, ' ~ default_code ~ '))') %}
with source as (
    select * from {{ raw_relation }}
),

default_country as (
    select calling_code from {{ ref('country_calling_codes') }}
    where country_code = '{{ var("default_country") }}'
),

{#- Phones are read with the country of the customer the row belongs to, where known. -#}
customer_calling_codes as (
    select * from {{ calling_codes }} as codes
),

typed as (
    select
        {{ lifeline.clean_text('source.order_id') }} as order_id,
        {{ lifeline.parse_timestamp('source.ordered_at') }} as ordered_at,
        {{ lifeline.clean_text('source.customer_id') }} as customer_id,
        {{ lifeline.clean_text('source.email') }} as email_raw,
        {{ lifeline.clean_text('source.phone') }} as phone_raw,
        {{ lifeline.clean_text('source.anonymous_id') }} as anonymous_id,
        coalesce(lower(nullif(trim(cast(source.status as {{ dbt.type_string() }})), '')), 'completed') as status,
        {{ lifeline.parse_number('source.total') }} as total,
        upper(nullif(trim(cast(source.currency as {{ dbt.type_string() }})), '')) as currency,
        coalesce(customer_calling_codes.calling_code, default_country.calling_code) as default_calling_code,
        {{ key_sql }} as order_key
    from source
    cross join default_country
    left join customer_calling_codes
        on customer_calling_codes.customer_id = {{ lifeline.clean_text('source.customer_id') }}
),

normalised as (
    select
        typed.*,
        {{ lifeline.normalize_email('email_raw') }} as email,
        {{ lifeline.normalize_phone('phone_raw', 'default_calling_code') }} as phone
    from typed
),

ranked as (
    select
        normalised.*,
        row_number() over (partition by order_id order by ordered_at nulls last, total desc nulls last) as order_rank
    from normalised
),

final as (
    select
        order_key,
        order_id,
        ordered_at,
        customer_id,
        email,
        phone,
        anonymous_id,
        status,
        status = 'completed' as is_purchase,
        total,
        currency,
        case
            when order_id is null then 'missing_order_id'
            when ordered_at is null then 'unparseable_timestamp'
            when order_rank > 1 then 'duplicate_order_id'
        end as drop_reason,
        case when email_raw is not null and email is null then 'malformed_email' end as email_issue,
        case when phone_raw is not null and phone is null then 'malformed_phone' end as phone_issue,
        case when phone_raw is not null then default_calling_code end as phone_calling_code,
        {#- When this row was (re)written: the run's start. stg_orders re-stages the rows based
            since its last run through it. #}
        {{ lifeline.run_stamp() }} as based_at
    from ranked
)

select * from final
